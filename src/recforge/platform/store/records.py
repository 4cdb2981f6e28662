"""What the store returns (frozen records), its errors, and row converters."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from recforge.platform.model.states import JobState

__all__ = [
    "AuditEntry",
    "ConcurrentTransition",
    "Event",
    "JobNotFound",
    "JobRecord",
    "Page",
    "ReplicaRecord",
    "StoreError",
    "TokenInfo",
    "User",
    "hash_token",
]


class StoreError(RuntimeError):
    """Base class of store errors."""


class JobNotFound(StoreError, KeyError):
    """No job with that id."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "job not found"


class ConcurrentTransition(StoreError):
    """The compare-and-set failed: the job was not in the expected state/version any more."""


@dataclass(frozen=True)
class JobRecord:
    """One row of ``jobs``."""

    id: int
    name: str
    owner: str
    group: str
    queue: str
    spec: dict[str, Any]
    state: JobState
    version: int
    attempts: int
    cluster: str | None
    admission: dict[str, Any] | None
    handle: dict[str, Any] | None
    reason: str
    cancel_requested: bool
    preemptions: int
    not_before: float | None
    created_at: float
    updated_at: float
    admitted_at: float | None
    started_at: float | None
    finished_at: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able view (state as its string value)."""
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["state"] = self.state.value
        return out


@dataclass(frozen=True)
class Event:
    """One row of ``events``: a recorded state change."""

    id: int
    job_id: int
    from_state: JobState | None
    to_state: JobState
    reason: str
    version: int
    at: float


@dataclass(frozen=True)
class ReplicaRecord:
    """One replica of a job's current attempt."""

    job_id: int
    index: int
    role: str
    attempt: int
    state: str
    last_heartbeat: float | None
    pid: int | None
    exit_code: int | None
    handle: dict[str, Any] | None


@dataclass(frozen=True)
class User:
    """An authenticated platform user."""

    name: str
    group: str
    is_admin: bool


@dataclass(frozen=True)
class Page:
    """One page of a keyset-paginated listing; pass ``next_cursor`` to get the next one."""

    items: list[JobRecord]
    next_cursor: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


JOB_FIELDS = {
    "preemptions",
    "cluster",
    "admission",
    "handle",
    "attempts",
    "not_before",
    "admitted_at",
    "started_at",
    "finished_at",
    "cancel_requested",
}


def job_from_row(row: Any) -> JobRecord:
    m = row._mapping
    return JobRecord(
        id=m["id"],
        name=m["name"],
        owner=m["owner"],
        group=m["group_name"],
        queue=m["queue"],
        spec=m["spec"],
        state=JobState(m["state"]),
        version=m["version"],
        attempts=m["attempts"],
        cluster=m["cluster"],
        admission=m["admission"],
        handle=m["handle"],
        reason=m["reason"],
        cancel_requested=bool(m["cancel_requested"]),
        preemptions=int(m["preemptions"] or 0),
        not_before=m["not_before"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        admitted_at=m["admitted_at"],
        started_at=m["started_at"],
        finished_at=m["finished_at"],
    )


def event_from_row(row: sa.Row[Any]) -> Event:
    m = row._mapping
    return Event(
        id=m["id"],
        job_id=m["job_id"],
        from_state=JobState(m["from_state"]) if m["from_state"] else None,
        to_state=JobState(m["to_state"]),
        reason=m["reason"],
        version=m["version"],
        at=m["at"],
    )


def replica_from_row(row: sa.Row[Any]) -> ReplicaRecord:
    m = row._mapping
    return ReplicaRecord(
        job_id=m["job_id"],
        index=m["idx"],
        role=m["role"],
        attempt=m["attempt"],
        state=m["state"],
        last_heartbeat=m["last_heartbeat"],
        pid=m["pid"],
        exit_code=m["exit_code"],
        handle=m["handle"],
    )


@dataclass(frozen=True)
class TokenInfo:
    """A stored token without its secret: who owns it, its public id, label and expiry."""

    token_id: str
    user: str
    label: str
    created_at: float
    expires_at: float | None


@dataclass(frozen=True)
class AuditEntry:
    """One admin action: who did what to which target, when, with details."""

    id: int
    at: float
    actor: str
    action: str
    target: str
    detail: dict[str, Any] | None


def hash_token(token: str) -> str:
    """sha256 hex digest of a bearer token (only the digest is stored)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def parse_cursor(cursor: str | None) -> int | None:
    if cursor is None or cursor == "":
        return None
    try:
        value = int(cursor)
    except ValueError:
        raise ValueError(
            f"invalid page cursor {cursor!r}: expected the next_cursor of a page"
        ) from None
    if value < 0:
        raise ValueError(f"invalid page cursor {cursor!r}: must not be negative")
    return value
