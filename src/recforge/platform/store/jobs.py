"""Jobs, their events and replicas: every job state change goes through
:meth:`JobsStore.transition` (validate the rule, compare-and-set on state and version, append
the event, all in one transaction). Listing is paginated in the database with a keyset cursor
(``id``), so no call ever loads the whole archive."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, NamedTuple

import sqlalchemy as sa

from recforge.platform.model.states import JobState, TransitionEvent, transition
from recforge.platform.store.engine import StoreBase
from recforge.platform.store.records import (
    JOB_FIELDS,
    ConcurrentTransition,
    Event,
    JobNotFound,
    JobRecord,
    Page,
    ReplicaRecord,
    event_from_row,
    job_from_row,
    parse_cursor,
    replica_from_row,
)
from recforge.platform.store.tables import events_t, jobs_t, replicas_t

__all__ = ["JobsStore", "NewJob"]


class NewJob(NamedTuple):
    """A job to create (:meth:`JobsStore.create_jobs`)."""

    name: str
    owner: str
    group: str
    queue: str
    spec: dict[str, Any]
    reason: str = "submitted"

# Statements built once with bound parameters: building and keying a statement per call costs
# more than running it, and the service runs these for every job.
_INSERT_JOB = jobs_t.insert().returning(jobs_t.c.id)
_INSERT_JOBS = jobs_t.insert().returning(jobs_t.c.id, sort_by_parameter_order=True)
_INSERT_EVENT = events_t.insert().returning(events_t.c.id)
_INSERT_EVENTS = events_t.insert()
_GET_JOB = sa.select(jobs_t).where(jobs_t.c.id == sa.bindparam("_jid"))
_LOCK_JOB = (
    sa.select(jobs_t.c.state, jobs_t.c.version)
    .where(jobs_t.c.id == sa.bindparam("_jid"))
    .with_for_update()  # row lock on PostgreSQL; SQLite holds BEGIN IMMEDIATE
)
_DELETE_REPLICAS = replicas_t.delete().where(replicas_t.c.job_id == sa.bindparam("_jid"))
_INSERT_REPLICA = replicas_t.insert()
_REPLICA_STATE = (
    replicas_t.update()
    .where(replicas_t.c.job_id == sa.bindparam("_jid"), replicas_t.c.idx == sa.bindparam("_idx"),
           replicas_t.c.attempt == sa.bindparam("_attempt"))
    .values(state=sa.bindparam("state"), exit_code=sa.bindparam("exit_code"))
)  # fmt: skip
_REPLICA_HANDLE = (
    replicas_t.update()
    .where(replicas_t.c.job_id == sa.bindparam("_jid"), replicas_t.c.idx == sa.bindparam("_idx"))
    .values(handle=sa.bindparam("handle"), pid=sa.bindparam("pid"))
)
_JOB_HANDLE = (
    jobs_t.update()
    .where(jobs_t.c.id == sa.bindparam("_jid"))
    .values(handle=sa.bindparam("handle"), updated_at=sa.bindparam("_at"))
)
_MOVE_COLUMNS = ("state", "version", "reason", "updated_at")
_moves: dict[tuple[str, ...], sa.Update] = {}
_fast_moves: dict[tuple[str, ...], sa.Update] = {}


def _fast_move_stmt(columns: tuple[str, ...]) -> sa.Update:
    """The compare-and-set UPDATE of a move from one known state: ``version`` is incremented
    in the statement, so no read comes first (cached per column set)."""
    stmt = _fast_moves.get(columns)
    if stmt is None:
        stmt = _fast_moves[columns] = (
            jobs_t.update()
            .where(jobs_t.c.id == sa.bindparam("_jid"), jobs_t.c.state == sa.bindparam("_state"))
            .values({**{c: sa.bindparam(c) for c in columns}, "version": jobs_t.c.version + 1})
            .returning(*jobs_t.c)
        )
    return stmt


def _move_stmt(columns: tuple[str, ...]) -> sa.Update:
    """The compare-and-set UPDATE of a move setting ``columns`` (cached per column set)."""
    stmt = _moves.get(columns)
    if stmt is None:
        stmt = _moves[columns] = (
            jobs_t.update()
            .where(
                jobs_t.c.id == sa.bindparam("_jid"),
                jobs_t.c.version == sa.bindparam("_version"),
                jobs_t.c.state == sa.bindparam("_state"),
            )
            .values({c: sa.bindparam(c) for c in columns})
            .returning(*jobs_t.c)
        )
    return stmt


class JobsStore(StoreBase):
    """Jobs, events and replicas (see the module docstring)."""

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
        return self.create_jobs([NewJob(name, owner, group, queue, spec, reason)])[0]

    def create_jobs(self, jobs: Sequence[NewJob]) -> list[JobRecord]:
        """Store new jobs in PENDING with their creation events, in one transaction (the
        current batch's, when one is open) and two statements, whatever their number."""
        if not jobs:
            return []
        now = self.clock()
        rows = [{"name": j.name, "owner": j.owner, "group_name": j.group, "queue": j.queue,
                 "spec": j.spec, "state": JobState.PENDING.value, "version": 0, "attempts": 0,
                 "reason": j.reason, "cancel_requested": False, "preemptions": 0,
                 "created_at": now, "updated_at": now} for j in jobs]  # fmt: skip
        with self._write() as conn:
            if len(rows) == 1:  # the statement without the ordering guarantee is cheaper
                ids = [conn.execute(_INSERT_JOB, rows[0]).scalar_one()]
            else:
                ids = list(conn.execute(_INSERT_JOBS, rows).scalars())
            conn.execute(_INSERT_EVENTS, [
                {"job_id": job_id, "from_state": None, "to_state": JobState.PENDING.value,
                 "reason": j.reason, "version": 0, "at": now}
                for job_id, j in zip(ids, jobs, strict=True)
            ])  # fmt: skip
        return [
            JobRecord(
                id=job_id, name=j.name, owner=j.owner, group=j.group, queue=j.queue,
                spec=j.spec, state=JobState.PENDING, version=0, attempts=0, cluster=None,
                admission=None, handle=None, reason=j.reason, cancel_requested=False,
                preemptions=0, not_before=None, created_at=now, updated_at=now,
                admitted_at=None, started_at=None, finished_at=None,
            )
            for job_id, j in zip(ids, jobs, strict=True)
        ]  # fmt: skip

    def get_job(self, job_id: int) -> JobRecord:
        """The job with ``job_id``; raise :class:`JobNotFound`."""
        with self._read() as conn:
            row = conn.execute(_GET_JOB, {"_jid": job_id}).first()
        if row is None:
            raise JobNotFound(f"no job with id {job_id}")
        return job_from_row(row)

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
        """:meth:`move`, returning only the event."""
        return self.move(job_id, to_state, reason, expected_from=expected_from,
                         expected_version=expected_version, at=at, **fields)[0]  # fmt: skip

    def move(
        self,
        job_id: int,
        to_state: JobState | str,
        reason: str,
        *,
        expected_from: JobState | str | Iterable[JobState | str] | None = None,
        expected_version: int | None = None,
        at: float | None = None,
        **fields: Any,
    ) -> tuple[Event, JobRecord]:
        """The one way a job changes state: validate, compare-and-set, append the event; the
        event and the job as it is now.

        ``expected_from`` (one state or several) and ``expected_version`` make the move
        conditional; if the job is elsewhere (another writer won), :class:`ConcurrentTransition`
        is raised and nothing changes. Illegal moves raise
        :class:`~recforge.platform.model.states.InvalidTransition`. ``fields`` update other job
        columns in the same transaction (``cluster``, ``admission``, ``handle``, ``attempts``,
        ``not_before``, ``preemptions``, ``cancel_requested``, ...); the rule's stamp effects set
        ``admitted_at``/``started_at``/``finished_at`` to the time of the move.
        """
        unknown = set(fields) - JOB_FIELDS
        if unknown:
            raise ValueError(
                f"Store.transition got unknown job fields {sorted(unknown)}; "
                f"allowed: {sorted(JOB_FIELDS)}"
            )
        expected: set[JobState] | None = None
        if expected_from is not None:
            if isinstance(expected_from, str | JobState):
                expected = {JobState(expected_from)}
            else:
                expected = {JobState(s) for s in expected_from}
        now = self.clock() if at is None else at
        if expected is not None and len(expected) == 1 and expected_version is None:
            moved = self._move_from(job_id, next(iter(expected)), to_state, reason, now, fields)
            if moved is not None:
                return moved
        with self._write() as conn:
            row = conn.execute(_LOCK_JOB, {"_jid": job_id}).first()
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
            for effect in ev.effects:  # the rule's time stamps, unless the caller set them
                column = effect.column
                if column is not None and column not in fields:
                    fields[column] = now
            values = {"state": ev.to_state.value, "version": version + 1, "reason": ev.reason,
                      "updated_at": now, **fields}  # fmt: skip
            stmt = _move_stmt(_MOVE_COLUMNS + tuple(sorted(fields)))
            result = conn.execute(
                stmt, {**values, "_jid": job_id, "_version": version, "_state": current.value}
            )
            row = result.first()
            if row is None:
                # Defensive: the row lock / write lock above should make this unreachable.
                raise ConcurrentTransition(f"job {job_id} changed concurrently; move not applied")
            event_id = conn.execute(_INSERT_EVENT, {"job_id": job_id,
                                                    "from_state": ev.from_state.value,
                                                    "to_state": ev.to_state.value,
                                                    "reason": ev.reason, "version": version + 1,
                                                    "at": now}).scalar_one()  # fmt: skip
        event = Event(event_id, job_id, ev.from_state, ev.to_state, ev.reason, version + 1, now)
        return event, job_from_row(row)

    def _move_from(
        self,
        job_id: int,
        current: JobState,
        to_state: JobState | str,
        reason: str,
        now: float,
        fields: dict[str, Any],
    ) -> tuple[Event, JobRecord] | None:
        """:meth:`move` from the one expected state in two statements (the compare-and-set
        UPDATE, the event) instead of three. None when the rule does not allow the move or the
        job is not in ``current``: the caller's general path then names the error."""
        try:
            ev: TransitionEvent = transition(current, to_state, reason)
        except ValueError:  # InvalidTransition: let the general path report it
            return None
        fields = dict(fields)
        for effect in ev.effects:
            column = effect.column
            if column is not None and column not in fields:
                fields[column] = now
        values = {"state": ev.to_state.value, "reason": ev.reason, "updated_at": now, **fields}
        stmt = _fast_move_stmt(("state", "reason", "updated_at", *sorted(fields)))
        with self._write() as conn:
            row = conn.execute(stmt, {**values, "_jid": job_id, "_state": current.value}).first()
            if row is None:
                return None  # elsewhere or gone; nothing was written
            version = int(row.version)
            event_id = conn.execute(_INSERT_EVENT, {"job_id": job_id,
                                                    "from_state": current.value,
                                                    "to_state": ev.to_state.value,
                                                    "reason": ev.reason, "version": version,
                                                    "at": now}).scalar_one()  # fmt: skip
        event = Event(event_id, job_id, current, ev.to_state, ev.reason, version, now)
        return event, job_from_row(row)

    def update_job(
        self, job_id: int, *, expected_version: int | None = None, **fields: Any
    ) -> None:
        """Update non-state columns (e.g. ``handle``, ``cancel_requested``); no event recorded."""
        unknown = set(fields) - JOB_FIELDS
        if unknown or not fields:
            raise ValueError(
                f"Store.update_job needs fields among {sorted(JOB_FIELDS)}; got {sorted(fields)}"
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
        return job_from_row(row)

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
        after = parse_cursor(cursor)
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
        items = [job_from_row(r) for r in rows[:limit]]
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
        return [event_from_row(r) for r in rows]

    def events_since(self, after_id: int, *, limit: int = 1000) -> list[Event]:
        """Events with ``id > after_id`` (all jobs), oldest first, at most ``limit``."""
        with self._read() as conn:
            rows = conn.execute(
                sa.select(events_t)
                .where(events_t.c.id > after_id)
                .order_by(events_t.c.id)
                .limit(limit)
            ).all()
        return [event_from_row(r) for r in rows]

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
            conn.execute(_DELETE_REPLICAS, {"_jid": job_id})
            if rows:
                conn.execute(_INSERT_REPLICA, rows)

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

    def set_replica_states(
        self, job_id: int, attempt: int, states: Iterable[tuple[int, str, int | None]]
    ) -> None:
        """Record how the replicas of ``attempt`` stand: ``(index, state, exit code)``."""
        rows = [{"_jid": job_id, "_idx": i, "_attempt": attempt, "state": st, "exit_code": code}
                for i, st, code in states]  # fmt: skip
        if rows:
            with self._write() as conn:
                conn.execute(_REPLICA_STATE, rows)

    def set_replica_handles(self, job_id: int, handles: dict[int, dict[str, Any]]) -> None:
        """Store per-replica backend details (pid, log paths) after a launch."""
        rows = [{"_jid": job_id, "_idx": i, "handle": h, "pid": h.get("pid")}
                for i, h in handles.items()]  # fmt: skip
        if rows:
            with self._write() as conn:
                conn.execute(_REPLICA_HANDLE, rows)

    def record_launches(self, handles: dict[int, dict[str, Any]]) -> None:
        """Store the handles of launched jobs (``job id -> handle``) and their replicas'
        backend details: two statements for all of them (a tick's launches), not two per job."""
        if not handles:
            return
        at = self.clock()
        jobs = [{"_jid": j, "handle": h, "_at": at} for j, h in handles.items()]
        reps = [{"_jid": j, "_idx": int(r["index"]), "handle": r, "pid": r.get("pid")}
                for j, h in handles.items()
                for r in h.get("replicas", []) if "pid" in r]  # fmt: skip
        with self._write() as conn:
            conn.execute(_JOB_HANDLE, jobs)
            if reps:
                conn.execute(_REPLICA_HANDLE, reps)

    def replicas(self, job_id: int) -> list[ReplicaRecord]:
        """The job's replicas (current attempt), by index."""
        with self._read() as conn:
            rows = conn.execute(
                sa.select(replicas_t)
                .where(replicas_t.c.job_id == job_id)
                .order_by(replicas_t.c.idx)
            ).all()
        return [replica_from_row(r) for r in rows]
