"""Request and response bodies of the REST API (pydantic)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field

from recforge.platform.model.names import NAME_PATTERN
from recforge.platform.model.resources import Resources
from recforge.platform.model.states import JobState
from recforge.platform.runtime.accounts import MAX_TOKEN_TTL
from recforge.platform.store import DEFAULT_TOKEN_TTL


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @classmethod
    def of(cls, record: Any) -> Self:
        """This model from the same-named attributes of a store record (other ones ignored)."""
        return cls.model_validate(record, from_attributes=True)


class JobOut(_Out):
    """A job as the API shows it (its rendered spec, state and timestamps)."""

    id: int
    name: str
    owner: str
    group: str
    queue: str
    state: JobState
    reason: str
    attempts: int
    cluster: str | None
    admission: dict[str, Any] | None
    cancel_requested: bool
    preemptions: int
    not_before: float | None
    created_at: float
    updated_at: float
    admitted_at: float | None
    started_at: float | None
    finished_at: float | None
    spec: dict[str, Any]


class JobPage(_Out):
    """One page of jobs, newest first; pass ``next_cursor`` as ``cursor`` for the next page."""

    items: list[JobOut]
    next_cursor: str | None


class EventOut(_Out):
    """One recorded state change of a job."""

    id: int
    from_state: JobState | None
    to_state: JobState
    reason: str
    version: int
    at: float


class ShortageOut(_Out):
    """A resource the job cannot get now, what it needs and what is free to it, and why."""

    resource: str
    needed: float
    available: float
    limited_by: str
    cluster: str | None = None


class WhyOut(_Out):
    """Why a job is where it is; for a pending job, what blocks it and its place in line."""

    job_id: int
    state: JobState
    reason: str
    queue: str
    queue_position: int | None = Field(
        default=None,
        description="1-based position among the queue's pending jobs (None if not pending)",
    )
    blocking: list[ShortageOut] = Field(default_factory=list)
    detail: dict[str, Any] = Field(default_factory=dict)


class LogsOut(_Out):
    """The last ``tail`` lines of one replica's output."""

    job_id: int
    replica: int
    tail: int
    text: str


class TemplateSubmission(BaseModel):
    """Submit a job rendered from an admin-owned template with the user's values."""

    model_config = ConfigDict(extra="forbid")

    template: str = Field(pattern=NAME_PATTERN)
    values: dict[str, Any] = Field(default_factory=dict)


class TokenIn(BaseModel):
    """Issue a token for ``user``; the user is created in ``group`` if new (admins), or for
    oneself (users)."""

    model_config = ConfigDict(extra="forbid")

    user: str = Field(pattern=NAME_PATTERN)
    group: str | None = Field(None, pattern=NAME_PATTERN)
    admin: bool = False
    label: str = Field("", max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")
    ttl_seconds: float = Field(DEFAULT_TOKEN_TTL, gt=0, le=MAX_TOKEN_TTL, allow_inf_nan=False,
                               description="lifetime; at most a year")


class TokenOut(_Out):
    """A freshly issued token: shown once, only its hash is stored."""

    user: str
    group: str
    admin: bool
    token: str
    token_id: str
    expires_at: float | None


class TokenInfoOut(_Out):
    """A stored token without its secret."""

    token_id: str
    user: str
    label: str
    created_at: float
    expires_at: float | None


class AuditOut(_Out):
    """One admin action."""

    id: int
    at: float
    actor: str
    action: str
    target: str
    detail: dict[str, Any] | None


class AuditPage(_Out):
    items: list[AuditOut]
    next_cursor: str | None


class WhoAmI(_Out):
    user: str
    group: str
    admin: bool


class Health(_Out):
    status: str
    store: str


# -- DAG runs and their artefacts (routes/dags.py) ----------------------------------------------
class DagNodeOut(_Out):
    """One node of a run: its state and, once submitted, its job and that job's state."""

    name: str
    state: str
    reason: str
    job_id: int | None
    job_state: JobState | None = None
    updated_at: float


class DagRunOut(_Out):
    """A DAG run: its state, its nodes in topological order, and the DAG as submitted."""

    id: int
    name: str
    owner: str
    group: str
    state: str
    reason: str
    cancel_requested: bool
    schedule_id: int | None
    scheduled_at: float | None
    run_dir: str | None
    created_at: float
    updated_at: float
    started_at: float | None
    finished_at: float | None
    nodes: list[DagNodeOut] = Field(default_factory=list)
    dag: dict[str, Any] = Field(default_factory=dict)


class DagRunPage(_Out):
    """One page of DAG runs (without their nodes), newest first."""

    items: list[DagRunOut]
    next_cursor: str | None


class DagEventOut(_Out):
    """A recorded move of a run (``node`` null) or of one of its nodes."""

    id: int
    node: str | None
    from_state: str | None
    to_state: str
    reason: str
    job_id: int | None
    at: float


class ArtifactFileOut(_Out):
    path: str
    bytes: int


class ArtifactSkippedOut(_Out):
    path: str
    why: str


class ArtifactOut(_Out):
    """One declared output of a node: its files, and what was left out with why."""

    node: str
    name: str
    node_state: str
    files: list[ArtifactFileOut]
    bytes: int
    skipped: list[ArtifactSkippedOut]


class ServiceReplicaOut(BaseModel):
    """One replica slot of a service: its process, port, readiness and restarts."""

    model_config = ConfigDict(extra="ignore")

    slot: int
    pid: int | None
    port: int
    ready: bool
    restarts: int
    last_exit: int | None = None
    restart_in: float | None = None


class ServiceOut(BaseModel):
    """A service job's stable address and replicas, as its supervisor last reported them."""

    model_config = ConfigDict(extra="ignore")

    job_id: int
    job_state: JobState
    state: str = Field(description="not started | starting | running | stopped")
    address: str | None = Field(description="host:port of the service while it runs")
    desired: int
    max_replicas: int
    ready: int
    replicas: list[ServiceReplicaOut]


class ScaleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    replicas: int = Field(ge=0, le=1000, description="the wanted number of replicas")


class HeartbeatIn(BaseModel):
    """A pod sidecar's heartbeat (``POST /jobs/{id}/heartbeat``, the attempt's token)."""

    model_config = ConfigDict(extra="forbid")

    attempt: int = Field(ge=1, le=2**31 - 1, description="the attempt the replica belongs to")
    replica: int = Field(ge=0, le=2**31 - 1, description="the replica's index")


class SampleOut(BaseModel):
    """One heartbeat's resource sample of a replica's process tree."""

    model_config = ConfigDict(extra="ignore")

    t: float
    interval: float
    cpu_seconds: float
    cpu_percent: float | None
    rss_mib: float
    limit_mib: int | None
    processes: int
    output_bytes: int | None


class AnomalyOut(_Out):
    """An anomaly monitoring flagged (memory, heartbeat_jitter, no_output)."""

    id: int
    job_id: int
    attempt: int
    replica: int
    kind: str
    value: float | None
    message: str
    at: float


class MetricsOut(BaseModel):
    """A job's resource series per replica (current attempt) and its anomalies."""

    model_config = ConfigDict(extra="forbid")

    job_id: int
    attempt: int
    replicas: dict[str, list[SampleOut]]
    anomalies: list[AnomalyOut]


# -- schedules (routes/schedules.py) ------------------------------------------------------------
class ScheduleOut(_Out):
    """A schedule: ACTIVE, SUSPENDED or FINISHED (a one-off that ran); every instant up to
    ``cursor`` has been dealt with; ``next_at`` is the next one."""

    id: int
    name: str
    owner: str
    group: str
    state: str
    cursor: float
    next_at: float | None
    created_at: float
    updated_at: float
    schedule: dict[str, Any] = Field(default_factory=dict)


class InstantOut(_Out):
    """A recorded instant: QUEUED, STARTED (its run goes), DONE (``outcome``: the run's final
    state), SKIPPED (``forbid``) or FAILED (could not start; ``reason``)."""

    instant: float
    state: str
    backfill: bool
    run_kind: str | None
    run_id: int | None
    outcome: str | None
    reason: str
    created_at: float
    updated_at: float


class ScheduleEventOut(_Out):
    at: float
    message: str


class BackfillIn(BaseModel):
    """A date range to backfill: ISO 8601 times (without a zone: in the schedule's zone)."""

    model_config = ConfigDict(extra="forbid")

    start: datetime
    end: datetime


class BackfillOut(_Out):
    """The instants queued by the backfill, and those recorded before (not run again)."""

    recorded: list[float]
    already: list[float]


class QueueStatusOut(_Out):
    """A queue as the scheduler holds it now."""

    name: str
    group: str
    pending: list[int] = Field(description="pending job ids in scheduling order (starving first)")
    held: int = Field(description="jobs waiting out a backoff before they queue again")
    admitted: int = Field(description="jobs holding quota (admitted, starting or running)")


class GroupUsageOut(_Out):
    """What a group uses on a cluster, beside its quota there."""

    group: str
    used: Resources
    nominal: Resources | None
    borrowing_limit: Resources | None = Field(description="None: may borrow without limit")
    total_cap: Resources | None = Field(description="the group's cap over all clusters")


class ClusterUsageOut(_Out):
    name: str
    capacity: Resources
    free: Resources
    groups: list[GroupUsageOut]


class OverviewOut(_Out):
    """Queues and quota usage per group and cluster (non-admins: their group's only)."""

    queues: list[QueueStatusOut]
    clusters: list[ClusterUsageOut]
