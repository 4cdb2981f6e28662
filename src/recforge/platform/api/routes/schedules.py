"""Schedules: create, list, read, suspend, resume, backfill, instants, events, delete."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from fastapi import Path as PathParam

from recforge.platform.api.auth import UserDep
from recforge.platform.api.routes import MAX_JOB_ID, ServiceDep, err
from recforge.platform.api.schemas import (
    BackfillIn,
    BackfillOut,
    InstantOut,
    ScheduleEventOut,
    ScheduleOut,
)
from recforge.platform.store.schedules import ScheduleRecord

router = APIRouter(tags=["schedules"])

ScheduleId = Annotated[int, PathParam(ge=1, le=MAX_JOB_ID, description="schedule id")]
_OWNED = err(s403="not the schedule's owner (nor an admin)", s404="no such schedule")


def _out(rec: ScheduleRecord) -> ScheduleOut:
    out = ScheduleOut.of(rec)
    out.schedule = rec.spec.get("schedule", {})
    return out


@router.post("/schedules", status_code=201, response_model=ScheduleOut,
             responses=err(s403="a queue of another group", s404="unknown template",
                           s409="name taken, or the target can never be admitted"))  # fmt: skip
def create_schedule(
    service: ServiceDep,
    user: UserDep,
    body: Annotated[dict[str, Any], Body(description="cron or at, and a dag or a job")],
) -> ScheduleOut:
    """Create a schedule; its target (a DAG or a job) is checked now as a submission would be.
    The first instant considered is the first after now."""
    return _out(service.schedules.create(user, body, source="body"))


@router.get("/schedules", response_model=list[ScheduleOut])
def list_schedules(service: ServiceDep, user: UserDep) -> list[ScheduleOut]:
    """The schedules of the caller's group (admins: all)."""
    return [_out(r) for r in service.schedules.list_schedules(user)]


@router.get("/schedules/{schedule_id}", response_model=ScheduleOut, responses=err(404))
def get_schedule(service: ServiceDep, user: UserDep, schedule_id: ScheduleId) -> ScheduleOut:
    return _out(service.schedules.get(user, schedule_id))


@router.post("/schedules/{schedule_id}/suspend", response_model=ScheduleOut,
             responses={**_OWNED, **err(s409="a finished one-off")})  # fmt: skip
def suspend(service: ServiceDep, user: UserDep, schedule_id: ScheduleId) -> ScheduleOut:
    """No instant fires while suspended (runs going are left alone)."""
    return _out(service.schedules.set_suspended(user, schedule_id, True))


@router.post("/schedules/{schedule_id}/resume", response_model=ScheduleOut,
             responses={**_OWNED, **err(s409="a finished one-off")})  # fmt: skip
def resume(service: ServiceDep, user: UserDep, schedule_id: ScheduleId) -> ScheduleOut:
    """Resume: instants that came meanwhile are due at once, up to the catch-up bound."""
    return _out(service.schedules.set_suspended(user, schedule_id, False))


@router.post("/schedules/{schedule_id}/backfill", response_model=BackfillOut,
             responses={**_OWNED, **err(422)})  # fmt: skip
def backfill(service: ServiceDep, user: UserDep, schedule_id: ScheduleId,
             body: BackfillIn) -> BackfillOut:  # fmt: skip
    """Queue every instant of ``[start, end]`` (in the past) to run one after another; instants
    recorded before are not run again."""
    out = service.schedules.backfill(user, schedule_id, body.start, body.end)
    return BackfillOut(**out)


@router.get("/schedules/{schedule_id}/instants", response_model=list[InstantOut],
            responses=err(404))  # fmt: skip
def instants(service: ServiceDep, user: UserDep, schedule_id: ScheduleId,
             limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[InstantOut]:  # fmt: skip
    """Recorded instants, newest first, with their runs."""
    return [InstantOut.of(i) for i in service.schedules.instants(user, schedule_id, limit)]


@router.get("/schedules/{schedule_id}/events", response_model=list[ScheduleEventOut],
            responses=err(404))  # fmt: skip
def events(service: ServiceDep, user: UserDep, schedule_id: ScheduleId) -> list[ScheduleEventOut]:
    return [ScheduleEventOut(at=a, message=m) for a, m in service.schedules.events(user,
                                                                                 schedule_id)]


@router.delete("/schedules/{schedule_id}", status_code=204, responses=_OWNED)
def delete(service: ServiceDep, user: UserDep, schedule_id: ScheduleId) -> None:
    """Delete a schedule and its records; runs it started are left as they are."""
    service.schedules.delete(user, schedule_id)
