"""DAG runs: submit a DAG, list, read (with node states), events, cancel, artefacts."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from fastapi import Path as PathParam
from fastapi.responses import StreamingResponse

from recforge.platform.api.auth import UserDep
from recforge.platform.api.routes import MAX_JOB_ID, ServiceDep, err
from recforge.platform.api.schemas import (
    ArtifactOut,
    DagEventOut,
    DagNodeOut,
    DagRunOut,
    DagRunPage,
)
from recforge.platform.model.dag_states import RunState
from recforge.platform.model.names import NAME_PATTERN
from recforge.platform.runtime.dags import RunView
from recforge.platform.store.dags import DagRunRecord

router = APIRouter(tags=["dags"])

RunId = Annotated[int, PathParam(ge=1, le=MAX_JOB_ID, description="DAG run id")]
Name = Annotated[str, PathParam(pattern=NAME_PATTERN)]


def _run_out(run: DagRunRecord, view: RunView | None = None) -> DagRunOut:
    out = DagRunOut.of(run)
    out.dag = run.spec.get("dag", {})
    if view is not None:
        out.nodes = [
            DagNodeOut(name=n.name, state=n.state.value, reason=n.reason, job_id=n.job_id,
                       job_state=view.jobs[n.job_id].state if n.job_id in view.jobs else None,
                       updated_at=n.updated_at)
            for n in view.nodes
        ]  # fmt: skip
    return out


@router.post("/dags", status_code=201, response_model=DagRunOut,
             responses=err(s403="a queue of another group", s404="unknown template",
                           s409="a node can never be admitted, or no run directory"))  # fmt: skip
def submit_dag(
    service: ServiceDep,
    user: UserDep,
    body: Annotated[dict[str, Any], Body(description="a DAG spec (nodes, edges, ...)")],
) -> DagRunOut:
    """Submit a DAG: the whole graph and every node's job are checked now (cycles, unknown or
    duplicate names are refused, naming them); the run starts at once."""
    run = service.dags.submit(user, body, source="body")
    return _run_out(run, service.dags.view(user, run.id))


@router.get("/dags", response_model=DagRunPage, responses=err(s403="another group's runs"))
def list_dags(
    service: ServiceDep,
    user: UserDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: Annotated[str | None, Query(pattern=r"^[0-9]{1,10}$")] = None,
    state: Annotated[list[RunState] | None, Query()] = None,
    group: Annotated[str | None, Query(pattern=NAME_PATTERN)] = None,
    schedule_id: Annotated[int | None, Query(ge=1, le=MAX_JOB_ID)] = None,
) -> DagRunPage:
    """DAG runs of the caller's group (admins: all, or ``group``), newest first."""
    if cursor is not None and int(cursor) > MAX_JOB_ID:
        cursor = None
    runs, nxt = service.dags.list_runs(user, limit=limit, cursor=cursor, states=state,
                                       group=group, schedule_id=schedule_id)  # fmt: skip
    return DagRunPage(items=[_run_out(r) for r in runs], next_cursor=nxt)


@router.get("/dags/{run_id}", response_model=DagRunOut, responses=err(404))
def get_dag(service: ServiceDep, user: UserDep, run_id: RunId) -> DagRunOut:
    """A run with its nodes (and each node's job state)."""
    view = service.dags.view(user, run_id)
    return _run_out(view.run, view)


@router.get("/dags/{run_id}/events", response_model=list[DagEventOut], responses=err(404))
def dag_events(service: ServiceDep, user: UserDep, run_id: RunId) -> list[DagEventOut]:
    return [DagEventOut.of(e) for e in service.dags.events(user, run_id)]


@router.post("/dags/{run_id}/cancel", response_model=DagRunOut,
             responses=err(s403="not the run's owner (nor an admin)", s404="no such run",
                           s409="the run already finished"))  # fmt: skip
def cancel_dag(service: ServiceDep, user: UserDep, run_id: RunId) -> DagRunOut:
    """Cancel a run: nothing new starts, running node jobs are cancelled; the run is CANCELLED
    once none runs any more."""
    run = service.dags.cancel(user, run_id)
    return _run_out(run, service.dags.view(user, run_id))


@router.get("/dags/{run_id}/artifacts", response_model=list[ArtifactOut], responses=err(404))
def artifacts(service: ServiceDep, user: UserDep, run_id: RunId) -> list[ArtifactOut]:
    """Every declared output of the run's nodes: files and sizes, and what was left out."""
    return [ArtifactOut.model_validate(a) for a in service.dags.artifacts(user, run_id)]


@router.get(
    "/dags/{run_id}/artifacts/{node}/{name}",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/gzip": {}},
                     "description": "a gzip-compressed tar of the artefact's files"},
               **err(404, 409)},
)  # fmt: skip
def artifact(service: ServiceDep, user: UserDep, run_id: RunId, node: Name,
             name: Name) -> StreamingResponse:  # fmt: skip
    """One artefact as a gzip-compressed tar (relative names; symbolic links and files not
    owned by the run's user are left out, as the listing says)."""
    stream = service.dags.artifact_archive(user, run_id, node, name)
    filename = f"dag-{run_id}-{node}-{name}.tar.gz"
    return StreamingResponse(stream, media_type="application/gzip",
                             headers={"Content-Disposition": f'attachment; filename="{filename}"'})
