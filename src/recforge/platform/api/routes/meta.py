"""Liveness and identity."""

from __future__ import annotations

import logging

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from recforge.platform.api.auth import UserDep
from recforge.platform.api.errors import error_response
from recforge.platform.api.routes import ServiceDep, err
from recforge.platform.api.schemas import Health, WhoAmI

router = APIRouter(tags=["meta"])
log = logging.getLogger("recforge.platform.api")


@router.get("/healthz", response_model=Health,
            responses=err(s503="the store does not answer"))  # fmt: skip
def healthz(service: ServiceDep) -> Health | JSONResponse:
    """Liveness plus a trivial store query (503 if the database does not answer)."""
    try:
        dialect = service.health()
    except Exception as exc:  # any database failure means "unhealthy", not a crash
        log.warning("health check: store failed: %s", exc)
        return error_response(503, f"store unavailable: {type(exc).__name__}")
    return Health(status="ok", store=dialect)


@router.get("/whoami", response_model=WhoAmI)
def whoami(user: UserDep) -> WhoAmI:
    return WhoAmI(user=user.name, group=user.group, admin=user.is_admin)
