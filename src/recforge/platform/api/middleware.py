"""ASGI middleware: the request body limit (413) and one access-log line per request."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from recforge.platform.api.errors import error_response

__all__ = ["AccessLog", "BodyLimit", "access_log"]

access_log = logging.getLogger("recforge.platform.access")

_ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
    Awaitable[None],
]


class _BodyTooLarge(Exception):
    pass


class BodyLimit:
    """ASGI middleware: refuse request bodies over ``max_bytes`` with 413.

    A declared Content-Length is checked before anything is read; a body sent without one is
    counted as it arrives and cut off at the limit (FastAPI then answers 400, as for any body
    it cannot read).
    """

    def __init__(self, app: _ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.max_bytes:
                    response = error_response(
                        413, f"request body of {declared} bytes exceeds {self.max_bytes} bytes"
                    )
                    await response(scope, receive, send)
                    return
        seen = 0

        async def counted() -> Any:
            nonlocal seen
            message = await receive()
            if message.get("type") == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _BodyTooLarge
            return message

        await self.app(scope, counted, send)


class AccessLog:
    """ASGI middleware: one JSON line per HTTP request (user, group, path, status, duration)."""

    def __init__(self, app: _ASGIApp) -> None:
        self.app = app

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http" or not access_log.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            user = scope.get("state", {}).get("user")
            fields = {
                "method": scope.get("method"),
                "path": scope.get("path"),
                "status": status,
                "duration_ms": round((time.perf_counter() - start) * 1000, 3),
                "user": getattr(user, "name", None),
                "group": getattr(user, "group", None),
            }
            # The fields go in ``extra`` so a JSON formatter (``serve`` installs one) writes
            # them as top-level keys of the request's one log line.
            access_log.info(
                "%s %s -> %d (%.1f ms)",
                fields["method"],
                fields["path"],
                status,
                fields["duration_ms"],
                extra=fields,
            )
