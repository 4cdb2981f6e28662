"""HTTP errors: every error body is ``{"detail", "field", "errors"?}``; the service's typed
errors map to one status each."""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from recforge.platform.model.specs import SpecError
from recforge.platform.runtime.errors import (
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    ServiceError,
    Unavailable,
)

__all__ = ["STATUS", "ApiError", "ErrorOut", "error_response", "install_error_handlers"]

log = logging.getLogger("recforge.platform.api")

#: the status of each service error.
STATUS: dict[type[ServiceError], int] = {
    Invalid: 422,
    NotFound: 404,
    Forbidden: 403,
    Conflict: 409,
    Unavailable: 503,
}


class ApiError(Exception):
    """An error answered as ``{"detail", "field"}`` with an HTTP status (401 and 413 only; the
    rest comes from the service's errors)."""

    def __init__(self, status: int, detail: str, *, field: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.field = field


class ErrorOut(BaseModel):
    """Every error body: a human-readable ``detail``, the offending ``field`` when known."""

    detail: str
    field: str | None = None
    errors: list[dict[str, Any]] | None = None


def error_response(status: int, detail: str, field: str | None = None,
                   **extra: Any) -> JSONResponse:  # fmt: skip
    body: dict[str, Any] = {"detail": detail, "field": field}
    body.update(extra)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.detail, exc.field)

    @app.exception_handler(ServiceError)
    async def _service_error(_: Request, exc: ServiceError) -> JSONResponse:
        status = next((code for cls, code in STATUS.items() if isinstance(exc, cls)), 500)
        return error_response(status, exc.detail, exc.field)

    @app.exception_handler(SpecError)
    async def _spec_error(_: Request, exc: SpecError) -> JSONResponse:
        return error_response(422, str(exc))

    @app.exception_handler(OverflowError)
    async def _overflow(_: Request, exc: OverflowError) -> JSONResponse:
        # Only user-supplied numbers can overflow here (e.g. cpu=1e305 in a spec): bad input.
        return error_response(422, f"a number in the request is out of range: {exc}")

    @app.exception_handler(sa.exc.DataError)
    async def _data_error(_: Request, exc: sa.exc.DataError) -> JSONResponse:
        # The database refused a value (e.g. a NUL character in a PostgreSQL text column, a
        # number out of a column's range): the request carried it, so it is a client error.
        log.warning("database refused a request value: %s", exc.orig)
        return error_response(422, f"a value in the request cannot be stored: {exc.orig}")

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errs = []
        lines = ["invalid request:"]
        for e in exc.errors():
            loc = ".".join(str(p) for p in e.get("loc", ()))
            errs.append({"loc": loc, "msg": str(e.get("msg", "")), "type": e.get("type", "")})
            lines.append(f"  - {loc}: {e.get('msg', '')}")
        field = errs[0]["loc"] if errs else None
        return error_response(422, "\n".join(lines), field, errors=errs)
