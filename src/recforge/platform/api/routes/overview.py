"""Queues and quota usage as the scheduler holds them now."""

from __future__ import annotations

from fastapi import APIRouter

from recforge.platform.api.auth import UserDep
from recforge.platform.api.routes import ServiceDep
from recforge.platform.api.schemas import OverviewOut

router = APIRouter(tags=["overview"])


@router.get("/overview", response_model=OverviewOut)
def overview(service: ServiceDep, user: UserDep) -> OverviewOut:
    """Each queue's pending jobs in scheduling order with held and admitted counts, and each
    cluster's capacity, free amount and per-group usage beside the group's quota. Non-admins
    see only their group's queues and usage rows."""
    return OverviewOut.model_validate(service.overview(user))
