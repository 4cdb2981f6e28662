"""The service façade's typed errors; the REST API maps each to one HTTP status
(:mod:`recforge.platform.api.errors`), the CLI prints their message."""

from __future__ import annotations

__all__ = [
    "Conflict", "Forbidden", "Invalid", "NotFound", "ServiceError", "Unavailable", "field_of",
]


class ServiceError(Exception):
    """Base class; ``field`` names the offending input when there is one."""

    def __init__(self, detail: str, *, field: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field


class Invalid(ServiceError, ValueError):
    """Malformed input (a spec, a value, a name): nothing was stored."""


class NotFound(ServiceError, LookupError):
    """No such thing, or one the caller may not see (the same answer, so ids do not leak)."""


class Forbidden(ServiceError, PermissionError):
    """The caller is known but may not do this."""


class Conflict(ServiceError):
    """The request is well formed but cannot be applied now (quota, state, references)."""


class Unavailable(ServiceError):
    """A dependency (the store, a backend) does not answer."""


def field_of(message: str) -> str | None:
    """The first ``  - path: msg`` field path of a spec error's message, if any."""
    for line in message.splitlines():
        line = line.strip()
        if line.startswith("- ") and ":" in line:
            return line[2:].split(":", 1)[0]
    return None
