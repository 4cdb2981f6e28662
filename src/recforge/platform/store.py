"""Durable platform state in SQL (SQLAlchemy 2.0 Core): SQLite by default, PostgreSQL for real use.

Tables: ``jobs`` (rendered spec, state, version, attempts, cluster, admission, backend handle),
``events`` (every state change, append-only), ``replicas`` (per-replica heartbeat/exit code of the
current attempt), ``templates``, ``users``/``tokens`` (sha256 of the token only), and ``config``
(cluster/group/queue definitions as JSON).

Every job state change goes through :meth:`Store.transition`: it validates the move against
:mod:`recforge.platform.states`, applies it with a compare-and-set on ``(state, version)`` so two
writers can never both apply a move from the same state, and appends the event row, all in one
database transaction. Listing is paginated in the database with a keyset cursor (``id``), so no
call ever loads the whole archive.

SQLite runs in WAL mode with a busy timeout, and write transactions start with ``BEGIN
IMMEDIATE`` so a read-then-write transaction never dies on a lock upgrade.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from recforge.platform.states import JobState, TransitionEvent, transition

__all__ = [
    "ConcurrentTransition",
    "Event",
    "JobNotFound",
    "JobRecord",
    "Page",
    "ReplicaRecord",
    "Store",
    "StoreError",
    "User",
]

DEFAULT_URL = "sqlite:///recforge-platform.db"
CONFIG_KINDS = ("cluster", "group", "queue")

metadata = sa.MetaData()

jobs_t = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("owner", sa.String(200), nullable=False),
    sa.Column("group_name", sa.String(200), nullable=False),
    sa.Column("queue", sa.String(200), nullable=False),
    sa.Column("spec", sa.JSON(none_as_null=True), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("version", sa.Integer, nullable=False, default=0),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("cluster", sa.String(200)),
    sa.Column("admission", sa.JSON(none_as_null=True)),
    sa.Column("handle", sa.JSON(none_as_null=True)),
    sa.Column("reason", sa.Text, nullable=False, default=""),
    sa.Column("cancel_requested", sa.Boolean, nullable=False, default=False),
    sa.Column("not_before", sa.Double),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
    sa.Column("admitted_at", sa.Double),
    sa.Column("started_at", sa.Double),
    sa.Column("finished_at", sa.Double),
    sa.Index("ix_jobs_state_id", "state", "id"),
    sa.Index("ix_jobs_owner_id", "owner", "id"),
    sa.Index("ix_jobs_queue_id", "queue", "id"),
)

events_t = sa.Table(
    "events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("job_id", sa.Integer, sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    sa.Column("from_state", sa.String(16)),
    sa.Column("to_state", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("at", sa.Double, nullable=False),
    sa.Index("ix_events_job_id", "job_id", "id"),
)

replicas_t = sa.Table(
    "replicas",
    metadata,
    sa.Column("job_id", sa.Integer, sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("idx", sa.Integer, primary_key=True),
    sa.Column("role", sa.String(100), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("last_heartbeat", sa.Double),
    sa.Column("pid", sa.Integer),
    sa.Column("exit_code", sa.Integer),
    sa.Column("handle", sa.JSON(none_as_null=True)),
)

templates_t = sa.Table(
    "templates",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("owner", sa.String(200), nullable=False),
    sa.Column("body", sa.JSON(none_as_null=True), nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
)

users_t = sa.Table(
    "users",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("group_name", sa.String(200), nullable=False),
    sa.Column("is_admin", sa.Boolean, nullable=False, default=False),
    sa.Column("created_at", sa.Double, nullable=False),
)

tokens_t = sa.Table(
    "tokens",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column(
        "user_name", sa.String(200), sa.ForeignKey("users.name", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("label", sa.String(200), nullable=False, default=""),
    sa.Column("created_at", sa.Double, nullable=False),
)

config_t = sa.Table(
    "config",
    metadata,
    sa.Column("kind", sa.String(16), primary_key=True),
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("body", sa.JSON(none_as_null=True), nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
)


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


_JOB_FIELDS = {
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


def _job(row: sa.Row[Any]) -> JobRecord:
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
        not_before=m["not_before"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        admitted_at=m["admitted_at"],
        started_at=m["started_at"],
        finished_at=m["finished_at"],
    )


def _event(row: sa.Row[Any]) -> Event:
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


def _replica(row: sa.Row[Any]) -> ReplicaRecord:
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


def hash_token(token: str) -> str:
    """sha256 hex digest of a bearer token (only the digest is stored)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _parse_cursor(cursor: str | None) -> int | None:
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


class Store:
    """Platform persistence over one engine (``sqlite:///...`` or ``postgresql+psycopg://...``).

    ``clock`` supplies timestamps (seconds since the epoch) so tests and the service share one
    notion of time. Tables are created on construction if missing.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        clock: Callable[[], float] = time.time,
        busy_timeout_s: float = 30.0,
        create: bool = True,
    ) -> None:
        self.url = url
        self.clock = clock
        self.engine = self._make_engine(url, busy_timeout_s)
        if create:
            metadata.create_all(self.engine)

    # -- engine -------------------------------------------------------------------------------
    @staticmethod
    def _make_engine(url: str, busy_timeout_s: float) -> Engine:
        parsed = sa.make_url(url)
        if parsed.get_backend_name() == "sqlite":
            engine = sa.create_engine(
                url,
                connect_args={"timeout": busy_timeout_s, "check_same_thread": False},
            )
            busy_ms = int(busy_timeout_s * 1000)

            @sa.event.listens_for(engine, "connect")
            def _on_connect(dbapi_conn: Any, _record: Any) -> None:
                # Manage transactions ourselves (pysqlite's implicit BEGIN is deferred).
                dbapi_conn.isolation_level = None
                cur = dbapi_conn.cursor()
                if parsed.database not in (None, "", ":memory:"):
                    cur.execute("PRAGMA journal_mode=WAL")
                cur.execute(f"PRAGMA busy_timeout={busy_ms}")
                cur.execute("PRAGMA foreign_keys=ON")
                cur.execute("PRAGMA synchronous=NORMAL")
                cur.close()

            @sa.event.listens_for(engine, "begin")
            def _on_begin(conn: Connection) -> None:
                readonly = conn.get_execution_options().get("recforge_readonly", False)
                conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

            return engine
        if parsed.get_backend_name() == "postgresql":
            return sa.create_engine(url, pool_pre_ping=True)
        raise ValueError(
            f"unsupported store URL {url!r}: use sqlite:///path or postgresql+psycopg://..."
        )

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    def close(self) -> None:
        """Release pooled connections."""
        self.engine.dispose()

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.engine.connect() as raw:
            conn = raw.execution_options(recforge_readonly=True)
            with conn.begin():
                yield conn

    # -- jobs ---------------------------------------------------------------------------------
    def create_job(
        self,
        *,
        name: str,
        owner: str,
        group: str,
        queue: str,
        spec: dict[str, Any],
        reason: str = "submitted",
    ) -> JobRecord:
        """Store a new job in PENDING and record its creation event."""
        now = self.clock()
        with self._write() as conn:
            job_id = conn.execute(
                jobs_t.insert()
                .values(
                    name=name,
                    owner=owner,
                    group_name=group,
                    queue=queue,
                    spec=spec,
                    state=JobState.PENDING.value,
                    version=0,
                    attempts=0,
                    reason=reason,
                    cancel_requested=False,
                    created_at=now,
                    updated_at=now,
                )
                .returning(jobs_t.c.id)
            ).scalar_one()
            conn.execute(
                events_t.insert().values(
                    job_id=job_id,
                    from_state=None,
                    to_state=JobState.PENDING.value,
                    reason=reason,
                    version=0,
                    at=now,
                )
            )
            row = conn.execute(sa.select(jobs_t).where(jobs_t.c.id == job_id)).one()
        return _job(row)

    def get_job(self, job_id: int) -> JobRecord:
        """The job with ``job_id``; raise :class:`JobNotFound`."""
        with self._read() as conn:
            row = conn.execute(sa.select(jobs_t).where(jobs_t.c.id == job_id)).first()
        if row is None:
            raise JobNotFound(f"no job with id {job_id}")
        return _job(row)

    def transition(
        self,
        job_id: int,
        to_state: JobState | str,
        reason: str,
        *,
        expected_from: JobState | str | Iterable[JobState | str] | None = None,
        expected_version: int | None = None,
        at: float | None = None,
        **fields: Any,
    ) -> Event:
        """The one way a job changes state: validate, compare-and-set, append the event.

        ``expected_from`` (one state or several) and ``expected_version`` make the move
        conditional; if the job is elsewhere (another writer won), :class:`ConcurrentTransition`
        is raised and nothing changes. Illegal moves raise
        :class:`~recforge.platform.states.InvalidTransition`. ``fields`` update other job columns
        in the same transaction (``cluster``, ``admission``, ``handle``, ``attempts``,
        ``not_before``, ``admitted_at``, ``started_at``, ``finished_at``, ``cancel_requested``).
        """
        unknown = set(fields) - _JOB_FIELDS
        if unknown:
            raise ValueError(
                f"Store.transition got unknown job fields {sorted(unknown)}; "
                f"allowed: {sorted(_JOB_FIELDS)}"
            )
        expected: set[JobState] | None = None
        if expected_from is not None:
            if isinstance(expected_from, str | JobState):
                expected = {JobState(expected_from)}
            else:
                expected = {JobState(s) for s in expected_from}
        now = self.clock() if at is None else at
        with self._write() as conn:
            row = conn.execute(
                sa.select(jobs_t.c.state, jobs_t.c.version)
                .where(jobs_t.c.id == job_id)
                .with_for_update()  # row lock on PostgreSQL; SQLite holds BEGIN IMMEDIATE
            ).first()
            if row is None:
                raise JobNotFound(f"no job with id {job_id}")
            current, version = JobState(row.state), int(row.version)
            if expected is not None and current not in expected:
                raise ConcurrentTransition(
                    f"job {job_id} is {current}, expected {'/'.join(sorted(expected))} "
                    f"(wanted -> {JobState(to_state)})"
                )
            if expected_version is not None and version != expected_version:
                raise ConcurrentTransition(
                    f"job {job_id} is at version {version}, expected {expected_version}"
                )
            ev: TransitionEvent = transition(current, to_state, reason)
            result = conn.execute(
                jobs_t.update()
                .where(
                    jobs_t.c.id == job_id,
                    jobs_t.c.version == version,
                    jobs_t.c.state == current.value,
                )
                .values(
                    state=ev.to_state.value,
                    version=version + 1,
                    reason=ev.reason,
                    updated_at=now,
                    **fields,
                )
            )
            if result.rowcount != 1:
                # Defensive: the row lock / write lock above should make this unreachable.
                raise ConcurrentTransition(f"job {job_id} changed concurrently; move not applied")
            event_id = conn.execute(
                events_t.insert()
                .values(
                    job_id=job_id,
                    from_state=ev.from_state.value,
                    to_state=ev.to_state.value,
                    reason=ev.reason,
                    version=version + 1,
                    at=now,
                )
                .returning(events_t.c.id)
            ).scalar_one()
        return Event(event_id, job_id, ev.from_state, ev.to_state, ev.reason, version + 1, now)

    def update_job(
        self, job_id: int, *, expected_version: int | None = None, **fields: Any
    ) -> None:
        """Update non-state columns (e.g. ``handle``, ``cancel_requested``); no event recorded."""
        unknown = set(fields) - _JOB_FIELDS
        if unknown or not fields:
            raise ValueError(
                f"Store.update_job needs fields among {sorted(_JOB_FIELDS)}; got {sorted(fields)}"
            )
        stmt = jobs_t.update().where(jobs_t.c.id == job_id)
        if expected_version is not None:
            stmt = stmt.where(jobs_t.c.version == expected_version)
        with self._write() as conn:
            result = conn.execute(stmt.values(updated_at=self.clock(), **fields))
        if result.rowcount != 1:
            self.get_job(job_id)  # raises JobNotFound if missing
            raise ConcurrentTransition(f"job {job_id} changed concurrently; update not applied")

    def request_cancel(self, job_id: int) -> JobRecord:
        """Flag a job for cancellation (the service loop acts on it); returns the updated job."""
        with self._write() as conn:
            result = conn.execute(
                jobs_t.update()
                .where(jobs_t.c.id == job_id)
                .values(cancel_requested=True, updated_at=self.clock())
            )
            if result.rowcount != 1:
                raise JobNotFound(f"no job with id {job_id}")
            row = conn.execute(sa.select(jobs_t).where(jobs_t.c.id == job_id)).one()
        return _job(row)

    def list_jobs(
        self,
        *,
        limit: int = 50,
        cursor: str | None = None,
        states: Iterable[JobState | str] | None = None,
        owner: str | None = None,
        group: str | None = None,
        queue: str | None = None,
        cancel_requested: bool | None = None,
        newest_first: bool = True,
    ) -> Page:
        """One page of jobs matching the filters, keyset-paginated on ``id``."""
        if not 1 <= limit <= 1000:
            raise ValueError(f"list_jobs limit must be in 1..1000, got {limit}")
        after = _parse_cursor(cursor)
        stmt = sa.select(jobs_t)
        if states is not None:
            stmt = stmt.where(jobs_t.c.state.in_([JobState(s).value for s in states]))
        if owner is not None:
            stmt = stmt.where(jobs_t.c.owner == owner)
        if group is not None:
            stmt = stmt.where(jobs_t.c.group_name == group)
        if queue is not None:
            stmt = stmt.where(jobs_t.c.queue == queue)
        if cancel_requested is not None:
            stmt = stmt.where(jobs_t.c.cancel_requested == cancel_requested)
        if after is not None:
            stmt = stmt.where(jobs_t.c.id < after if newest_first else jobs_t.c.id > after)
        order = jobs_t.c.id.desc() if newest_first else jobs_t.c.id.asc()
        stmt = stmt.order_by(order).limit(limit + 1)
        with self._read() as conn:
            rows = conn.execute(stmt).all()
        items = [_job(r) for r in rows[:limit]]
        next_cursor = str(items[-1].id) if len(rows) > limit else None
        return Page(items, next_cursor)

    def iter_jobs(
        self,
        states: Iterable[JobState | str],
        *,
        batch: int = 200,
        cancel_requested: bool | None = None,
    ) -> Iterator[JobRecord]:
        """Every job in ``states``, oldest first, fetched in keyset batches."""
        wanted = list(states)
        cursor: str | None = None
        while True:
            page = self.list_jobs(
                limit=batch,
                cursor=cursor,
                states=wanted,
                cancel_requested=cancel_requested,
                newest_first=False,
            )
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def count_jobs(self, states: Iterable[JobState | str] | None = None) -> dict[str, int]:
        """Job counts per state (database-side aggregation)."""
        stmt = sa.select(jobs_t.c.state, sa.func.count()).group_by(jobs_t.c.state)
        if states is not None:
            stmt = stmt.where(jobs_t.c.state.in_([JobState(s).value for s in states]))
        with self._read() as conn:
            return {state: int(n) for state, n in conn.execute(stmt).all()}

    # -- events -------------------------------------------------------------------------------
    def events(self, job_id: int) -> list[Event]:
        """All events of one job, in order."""
        with self._read() as conn:
            rows = conn.execute(
                sa.select(events_t).where(events_t.c.job_id == job_id).order_by(events_t.c.id)
            ).all()
        return [_event(r) for r in rows]

    def events_since(self, after_id: int, *, limit: int = 1000) -> list[Event]:
        """Events with ``id > after_id`` (all jobs), oldest first, at most ``limit``."""
        with self._read() as conn:
            rows = conn.execute(
                sa.select(events_t)
                .where(events_t.c.id > after_id)
                .order_by(events_t.c.id)
                .limit(limit)
            ).all()
        return [_event(r) for r in rows]

    def last_event_id(self) -> int:
        """Id of the newest event (0 if none)."""
        with self._read() as conn:
            return int(conn.execute(sa.select(sa.func.max(events_t.c.id))).scalar() or 0)

    # -- replicas -----------------------------------------------------------------------------
    def reset_replicas(
        self, job_id: int, attempt: int, replicas: Iterable[tuple[int, str]]
    ) -> None:
        """Replace the job's replica rows with fresh ones (``(index, role)``) for ``attempt``."""
        rows = [
            {"job_id": job_id, "idx": i, "role": role, "attempt": attempt, "state": "pending"}
            for i, role in replicas
        ]
        with self._write() as conn:
            conn.execute(replicas_t.delete().where(replicas_t.c.job_id == job_id))
            if rows:
                conn.execute(replicas_t.insert(), rows)

    def heartbeat(
        self,
        job_id: int,
        index: int,
        *,
        attempt: int | None = None,
        state: str = "running",
        pid: int | None = None,
        exit_code: int | None = None,
        at: float | None = None,
    ) -> bool:
        """Record a replica heartbeat; False if no such replica row (e.g. a stale attempt)."""
        values: dict[str, Any] = {
            "last_heartbeat": self.clock() if at is None else at,
            "state": state,
        }
        if pid is not None:
            values["pid"] = pid
        if exit_code is not None:
            values["exit_code"] = exit_code
        stmt = replicas_t.update().where(replicas_t.c.job_id == job_id, replicas_t.c.idx == index)
        if attempt is not None:
            stmt = stmt.where(replicas_t.c.attempt == attempt)
        with self._write() as conn:
            return conn.execute(stmt.values(**values)).rowcount == 1

    def set_replica_handles(self, job_id: int, handles: dict[int, dict[str, Any]]) -> None:
        """Store per-replica backend details (pid, log paths) after a launch."""
        with self._write() as conn:
            for index, handle in handles.items():
                conn.execute(
                    replicas_t.update()
                    .where(replicas_t.c.job_id == job_id, replicas_t.c.idx == index)
                    .values(handle=handle, pid=handle.get("pid"))
                )

    def replicas(self, job_id: int) -> list[ReplicaRecord]:
        """The job's replicas (current attempt), by index."""
        with self._read() as conn:
            rows = conn.execute(
                sa.select(replicas_t)
                .where(replicas_t.c.job_id == job_id)
                .order_by(replicas_t.c.idx)
            ).all()
        return [_replica(r) for r in rows]

    # -- templates ----------------------------------------------------------------------------
    def put_template(self, name: str, owner: str, body: dict[str, Any]) -> None:
        """Create or replace a template."""
        now = self.clock()
        with self._write() as conn:
            exists = conn.execute(
                sa.select(templates_t.c.name).where(templates_t.c.name == name)
            ).first()
            if exists:
                conn.execute(
                    templates_t.update()
                    .where(templates_t.c.name == name)
                    .values(owner=owner, body=body, updated_at=now)
                )
            else:
                conn.execute(
                    templates_t.insert().values(
                        name=name, owner=owner, body=body, created_at=now, updated_at=now
                    )
                )

    def get_template(self, name: str) -> dict[str, Any] | None:
        """``{"name", "owner", "body"}`` or None."""
        with self._read() as conn:
            row = conn.execute(sa.select(templates_t).where(templates_t.c.name == name)).first()
        if row is None:
            return None
        return {"name": row.name, "owner": row.owner, "body": row.body}

    def list_templates(self) -> list[dict[str, Any]]:
        """All templates by name."""
        with self._read() as conn:
            rows = conn.execute(sa.select(templates_t).order_by(templates_t.c.name)).all()
        return [{"name": r.name, "owner": r.owner, "body": r.body} for r in rows]

    def delete_template(self, name: str) -> bool:
        """Delete a template; False if it did not exist."""
        with self._write() as conn:
            return (
                conn.execute(templates_t.delete().where(templates_t.c.name == name)).rowcount == 1
            )

    # -- users and tokens ---------------------------------------------------------------------
    def add_user(self, name: str, group: str, *, is_admin: bool = False) -> User:
        """Create a user (error if the name exists)."""
        if not name or not group:
            raise ValueError("add_user needs a non-empty user name and group")
        with self._write() as conn:
            if conn.execute(sa.select(users_t.c.name).where(users_t.c.name == name)).first():
                raise ValueError(f"user {name!r} already exists")
            conn.execute(
                users_t.insert().values(
                    name=name, group_name=group, is_admin=is_admin, created_at=self.clock()
                )
            )
        return User(name, group, is_admin)

    def get_user(self, name: str) -> User | None:
        """The user or None."""
        with self._read() as conn:
            row = conn.execute(sa.select(users_t).where(users_t.c.name == name)).first()
        return None if row is None else User(row.name, row.group_name, bool(row.is_admin))

    def issue_token(self, user: str, *, label: str = "") -> str:
        """Create a bearer token for ``user``; the plaintext is returned once, the hash kept."""
        if self.get_user(user) is None:
            raise ValueError(f"cannot issue a token: unknown user {user!r}")
        token = secrets.token_urlsafe(32)
        with self._write() as conn:
            conn.execute(
                tokens_t.insert().values(
                    token_hash=hash_token(token),
                    user_name=user,
                    label=label,
                    created_at=self.clock(),
                )
            )
        return token

    def authenticate(self, token: str) -> User | None:
        """The user owning ``token``, or None for an unknown/revoked token."""
        with self._read() as conn:
            row = conn.execute(
                sa.select(users_t)
                .join(tokens_t, tokens_t.c.user_name == users_t.c.name)
                .where(tokens_t.c.token_hash == hash_token(token))
            ).first()
        return None if row is None else User(row.name, row.group_name, bool(row.is_admin))

    def revoke_token(self, token: str) -> bool:
        """Delete a token; False if unknown."""
        with self._write() as conn:
            stmt = tokens_t.delete().where(tokens_t.c.token_hash == hash_token(token))
            return conn.execute(stmt).rowcount == 1

    # -- cluster/group/queue config -----------------------------------------------------------
    def put_config(self, kind: str, name: str, body: dict[str, Any]) -> None:
        """Create or replace one cluster/group/queue definition."""
        if kind not in CONFIG_KINDS:
            raise ValueError(f"config kind must be one of {CONFIG_KINDS}, got {kind!r}")
        now = self.clock()
        with self._write() as conn:
            conn.execute(config_t.delete().where(config_t.c.kind == kind, config_t.c.name == name))
            conn.execute(config_t.insert().values(kind=kind, name=name, body=body, updated_at=now))

    def get_config(self, kind: str) -> dict[str, dict[str, Any]]:
        """All definitions of one kind, ``{name: body}``."""
        if kind not in CONFIG_KINDS:
            raise ValueError(f"config kind must be one of {CONFIG_KINDS}, got {kind!r}")
        with self._read() as conn:
            rows = conn.execute(
                sa.select(config_t.c.name, config_t.c.body)
                .where(config_t.c.kind == kind)
                .order_by(config_t.c.name)
            ).all()
        return {r.name: r.body for r in rows}

    def delete_config(self, kind: str, name: str) -> bool:
        """Delete one definition; False if absent."""
        with self._write() as conn:
            stmt = config_t.delete().where(config_t.c.kind == kind, config_t.c.name == name)
            return conn.execute(stmt).rowcount == 1
