"""Jobs: submit, list, read, why, logs, cancel, events."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request

from recforge.platform.api.auth import UserDep
from recforge.platform.api.routes import MAX_JOB_ID, JobId, ServiceDep, err
from recforge.platform.api.schemas import EventOut, JobOut, JobPage, LogsOut, ShortageOut, WhyOut
from recforge.platform.model.names import NAME_PATTERN
from recforge.platform.model.states import JobState

router = APIRouter(tags=["jobs"])

_SUBMIT_SCHEMA = {
    "requestBody": {
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        {"$ref": "#/components/schemas/JobSpec"},
                        {"$ref": "#/components/schemas/TemplateSubmission"},
                    ]
                }
            }
        }
    }
}


@router.post(
    "/jobs",
    status_code=201,
    response_model=JobOut,
    openapi_extra=_SUBMIT_SCHEMA,
    responses=err(s403="a queue of another group", s404="unknown template",
                  s409="can never be admitted (quota/capacity)"),
)
async def submit_job(
    request: Request,
    user: UserDep,
    body: Annotated[dict[str, Any], Body(description="a JobSpec or {template, values}")],
) -> JobOut:
    """Submit a job spec, or ``{"template": name, "values": {...}}`` to render a template."""
    # On the event loop, not the thread pool: a submission is CPU work plus a share of one
    # short write (it never waits for the scheduling pass, see runtime/gate.py; submissions
    # arriving together share a commit, see api/group_commit.py), and in one interpreter the
    # hop to a worker thread and back cost more than the submission itself.
    job = await request.app.state.group_commit.submit(user, body, source="body")
    return JobOut.of(job)


@router.get("/jobs", response_model=JobPage, responses=err(s403="another group's jobs"))
def list_jobs(
    service: ServiceDep,
    user: UserDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: Annotated[
        str | None,
        Query(pattern=r"^[0-9]{1,10}$", description="next_cursor of the previous page"),
    ] = None,
    state: Annotated[list[JobState] | None, Query()] = None,
    queue: Annotated[str | None, Query(pattern=NAME_PATTERN)] = None,
    group: Annotated[
        str | None, Query(pattern=NAME_PATTERN, description="admins only; others: own")
    ] = None,
) -> JobPage:
    """Jobs of the caller's group (admins: all, or ``group``), newest first, paginated."""
    if cursor is not None and int(cursor) > MAX_JOB_ID:
        cursor = None  # every id is below it: the same page as no cursor
    page = service.list_jobs(user, limit=limit, cursor=cursor, states=state, queue=queue,
                             group=group)  # fmt: skip
    return JobPage(items=[JobOut.of(j) for j in page.items], next_cursor=page.next_cursor)


@router.get("/jobs/{job_id}", response_model=JobOut, responses=err(404))
def get_job(service: ServiceDep, user: UserDep, job_id: JobId) -> JobOut:
    return JobOut.of(service.get_job(user, job_id))


@router.get("/jobs/{job_id}/why", response_model=WhyOut, responses=err(404))
def why(service: ServiceDep, user: UserDep, job_id: JobId) -> WhyOut:
    """Why the job is in its state; for a pending job the blocking resources and its place in
    the queue, for a preempting job its victims, for a preempted one who preempted it."""
    w = service.why(user, job_id)
    return WhyOut(
        job_id=w.job_id,
        state=w.state,
        reason=w.reason,
        queue=w.queue,
        queue_position=w.queue_position,
        blocking=[
            ShortageOut(resource=s.resource, needed=s.needed, available=s.available,
                        limited_by=s.limited_by, cluster=cluster)
            for cluster, s in w.blocking
        ],
        detail=w.detail,
    )


@router.get("/jobs/{job_id}/logs", response_model=LogsOut, responses=err(404, 409))
def logs(
    service: ServiceDep,
    user: UserDep,
    job_id: JobId,
    replica: Annotated[int, Query(ge=0, le=100_000)] = 0,
    tail: Annotated[int, Query(ge=1, le=100_000)] = 100,
) -> LogsOut:
    """The last ``tail`` lines of replica ``replica`` (0 is the master, or the first worker),
    on every backend."""
    text = service.logs(user, job_id, replica, tail)
    return LogsOut(job_id=job_id, replica=replica, tail=tail, text=text)


@router.post("/jobs/{job_id}/cancel", response_model=JobOut,
             responses=err(s403="not the job's owner (nor an admin)", s404="no such job",
                           s409="the job already finished"))  # fmt: skip
def cancel(service: ServiceDep, user: UserDep, job_id: JobId) -> JobOut:
    """Cancel a job: its owner or an admin. A job without processes ends at once; a launched
    one is stopped right after (``cancel_requested`` shows it)."""
    return JobOut.of(service.cancel(user, job_id))


@router.get("/jobs/{job_id}/events", response_model=list[EventOut], responses=err(404))
def events(service: ServiceDep, user: UserDep, job_id: JobId) -> list[EventOut]:
    return [EventOut.of(e) for e in service.events(user, job_id)]
