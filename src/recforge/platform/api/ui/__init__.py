"""The web UI: static pages served by the API server under ``/ui/``.

Plain HTML, one stylesheet, one shared ES module (``app.js``: token login, the bearer-token
``fetch``, DOM building, the hash router) and one small ES module per page under ``pages/``;
no build step, no CDN, nothing fetched from anywhere but this server. The pages call only the
REST API with the user's token, so they show exactly what that token may see. Every response
carries a Content-Security-Policy that allows scripts, styles and requests from this origin only
(no inline script), so even a missed escape could not run injected code.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from starlette.staticfiles import StaticFiles

__all__ = ["CSP", "STATIC_DIR", "install_ui"]

STATIC_DIR = Path(__file__).with_name("static")
#: the UI's Content-Security-Policy: this origin only, no inline script or style, no framing.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-cache"),
]

_Receive = Callable[[], Awaitable[Any]]
_Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class _UiFiles(StaticFiles):
    """The static files, each answer with the UI's security headers."""

    async def __call__(self, scope: MutableMapping[str, Any], receive: _Receive,
                       send: _Send) -> None:  # fmt: skip
        async def send_with_headers(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *_HEADERS]
            await send(message)

        await super().__call__(scope, receive, send_with_headers)


def install_ui(app: FastAPI) -> None:
    """Serve the UI at ``/ui/`` (``/ui`` redirects there); not part of the OpenAPI document."""

    def ui_root() -> RedirectResponse:
        return RedirectResponse("/ui/", status_code=307)

    app.add_api_route("/ui", ui_root, methods=["GET"], include_in_schema=False)
    app.mount("/ui", _UiFiles(directory=STATIC_DIR, html=True), name="ui")
