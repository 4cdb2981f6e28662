"""The audit log of admin actions (admins only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from recforge.platform.api.auth import AdminDep
from recforge.platform.api.routes import ServiceDep, err
from recforge.platform.api.schemas import AuditOut, AuditPage

router = APIRouter(tags=["audit"])


@router.get("/audit", response_model=AuditPage, responses=err(403))
def audit(
    service: ServiceDep,
    admin: AdminDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(pattern=r"^[0-9]{1,10}$")] = None,
    action: Annotated[str | None, Query(pattern=r"^[a-z-]{1,64}$")] = None,
) -> AuditPage:
    """Admin actions, newest first: configuration changes, templates, tokens, cancellations of
    other users' jobs."""
    items, nxt = service.audit_log(admin, limit=limit, cursor=cursor, action=action)
    return AuditPage(items=[AuditOut.of(e) for e in items], next_cursor=nxt)
