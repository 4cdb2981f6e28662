"""One router per resource; each route calls one public method of the service façade.

Adding a router: a module here with ``router = APIRouter(tags=[...])`` and its routes (use
:data:`ServiceDep` for the service, :data:`~recforge.platform.api.auth.UserDep` /
:data:`~recforge.platform.api.auth.AdminDep` for the caller), then add it to :data:`ROUTERS` in
:mod:`recforge.platform.api`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi import Path as PathParam

from recforge.platform.api.errors import ErrorOut
from recforge.platform.runtime.service import PlatformService

__all__ = ["JobId", "ServiceDep", "err"]

# Job ids are INTEGER columns: 32-bit on PostgreSQL. Larger ids cannot exist, and passing one
# to the database would fail there (not a client error), so requests naming one answer 422.
MAX_JOB_ID = 2**31 - 1


async def _service(request: Request) -> PlatformService:
    # async: a plain function dependency would cost every request a hop to the thread pool.
    return request.app.state.service  # type: ignore[no-any-return]


ServiceDep = Annotated[PlatformService, Depends(_service)]
JobId = Annotated[int, PathParam(ge=1, le=MAX_JOB_ID, description="job id")]


def err(*codes: int, **described: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for error ``codes`` (``described``: ``{"409": "why"}``)."""
    out: dict[int | str, dict[str, Any]] = {c: {"model": ErrorOut} for c in codes}
    for code, text in described.items():
        out[int(code.removeprefix("s"))] = {"model": ErrorOut, "description": text}
    return out
