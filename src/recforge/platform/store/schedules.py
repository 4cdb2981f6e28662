"""Schedules, their recorded instants and events.

An instant is recorded once (the primary key is ``(schedule_id, instant)``), in the transaction
that moves the schedule's ``cursor`` past it and starts its run, so a crash either left nothing
of it (it is dealt with again after the restart) or all of it (it is never run twice)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from recforge.platform.store.engine import StoreBase
from recforge.platform.store.records import ConcurrentTransition, StoreError
from recforge.platform.store.tables import schedule_events_t, schedule_instants_t, schedules_t

__all__ = ["InstantRecord", "ScheduleNotFound", "ScheduleRecord", "ScheduleStore"]


class ScheduleNotFound(StoreError, KeyError):
    """No schedule with that id."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "schedule not found"


@dataclass(frozen=True)
class ScheduleRecord:
    """One schedule: its spec (targets rendered), state, cursor and next instant."""

    id: int
    name: str
    owner: str
    group: str
    spec: dict[str, Any]
    state: str  # ACTIVE, SUSPENDED, FINISHED
    version: int
    cursor: float
    next_at: float | None
    created_at: float
    updated_at: float


@dataclass(frozen=True)
class InstantRecord:
    """One recorded instant and what became of it."""

    schedule_id: int
    instant: float
    state: str  # QUEUED, STARTED, DONE, SKIPPED, FAILED
    backfill: bool
    run_kind: str | None
    run_id: int | None
    outcome: str | None
    reason: str
    created_at: float
    updated_at: float


def _schedule(row: Any) -> ScheduleRecord:
    m = row._mapping
    return ScheduleRecord(m["id"], m["name"], m["owner"], m["group_name"], m["spec"], m["state"],
                          m["version"], m["cursor"], m["next_at"], m["created_at"],
                          m["updated_at"])  # fmt: skip


def _instant(row: Any) -> InstantRecord:
    m = row._mapping
    return InstantRecord(m["schedule_id"], m["instant"], m["state"], bool(m["backfill"]),
                         m["run_kind"], m["run_id"], m["outcome"], m["reason"], m["created_at"],
                         m["updated_at"])  # fmt: skip


class ScheduleStore(StoreBase):
    """Schedules and instants (see the module docstring)."""

    def create_schedule(self, *, name: str, owner: str, group: str, spec: dict[str, Any],
                        state: str, cursor: float, next_at: float | None) -> ScheduleRecord:
        now = self.clock()
        with self._write() as conn:
            sid = conn.execute(schedules_t.insert().returning(schedules_t.c.id), {
                "name": name, "owner": owner, "group_name": group, "spec": spec, "state": state,
                "version": 0, "cursor": cursor, "next_at": next_at, "created_at": now,
                "updated_at": now,
            }).scalar_one()  # fmt: skip
            conn.execute(schedule_events_t.insert(), {"schedule_id": sid, "at": now,
                                                      "message": f"created by {owner}"})
        return self.get_schedule(sid)

    def find_schedule(self, group: str, name: str) -> ScheduleRecord | None:
        with self._read() as conn:
            row = conn.execute(sa.select(schedules_t).where(
                schedules_t.c.group_name == group, schedules_t.c.name == name)).first()  # fmt: skip
        return None if row is None else _schedule(row)

    def get_schedule(self, schedule_id: int) -> ScheduleRecord:
        with self._read() as conn:
            row = conn.execute(
                sa.select(schedules_t).where(schedules_t.c.id == schedule_id)).first()  # fmt: skip
        if row is None:
            raise ScheduleNotFound(f"no schedule with id {schedule_id}")
        return _schedule(row)

    def list_schedules(self, *, group: str | None = None,
                       states: Iterable[str] | None = None) -> list[ScheduleRecord]:  # fmt: skip
        stmt = sa.select(schedules_t).order_by(schedules_t.c.id)
        if group is not None:
            stmt = stmt.where(schedules_t.c.group_name == group)
        if states is not None:
            stmt = stmt.where(schedules_t.c.state.in_(list(states)))
        with self._read() as conn:
            return [_schedule(r) for r in conn.execute(stmt).all()]

    def delete_schedule(self, schedule_id: int) -> bool:
        with self._write() as conn:
            conn.execute(schedule_instants_t.delete()
                         .where(schedule_instants_t.c.schedule_id == schedule_id))  # fmt: skip
            conn.execute(schedule_events_t.delete()
                         .where(schedule_events_t.c.schedule_id == schedule_id))  # fmt: skip
            return conn.execute(
                schedules_t.delete().where(schedules_t.c.id == schedule_id)).rowcount == 1

    def update_schedule(self, schedule: ScheduleRecord, **values: Any) -> ScheduleRecord:
        """Set ``state``/``cursor``/``next_at`` (compare-and-set on the version read);
        :class:`ConcurrentTransition` if it changed meanwhile."""
        unknown = set(values) - {"state", "cursor", "next_at"}
        if unknown:
            raise ValueError(f"update_schedule: unknown field(s) {sorted(unknown)}")
        now = self.clock()
        with self._write() as conn:
            n = conn.execute(
                schedules_t.update().where(schedules_t.c.id == schedule.id,
                                           schedules_t.c.version == schedule.version)
                .values(version=schedule.version + 1, updated_at=now, **values)
            ).rowcount  # fmt: skip
            if n != 1:
                raise ConcurrentTransition(f"schedule {schedule.id} changed concurrently")
            row = conn.execute(sa.select(schedules_t).where(schedules_t.c.id == schedule.id)).one()
        return _schedule(row)

    # -- instants ---------------------------------------------------------------------------
    def has_instant(self, schedule_id: int, instant: float) -> bool:
        with self._read() as conn:
            return conn.execute(sa.select(schedule_instants_t.c.instant).where(
                schedule_instants_t.c.schedule_id == schedule_id,
                schedule_instants_t.c.instant == instant)).first() is not None  # fmt: skip

    def add_instant(self, schedule_id: int, instant: float, state: str, *, reason: str = "",
                    backfill: bool = False) -> None:  # fmt: skip
        """Record an instant; the database refuses a second record of it (IntegrityError)."""
        now = self.clock()
        with self._write() as conn:
            conn.execute(schedule_instants_t.insert(), {
                "schedule_id": schedule_id, "instant": instant, "state": state,
                "backfill": backfill, "reason": reason, "created_at": now, "updated_at": now,
            })  # fmt: skip

    def set_instant(self, schedule_id: int, instant: float, *, expected: str | None = None,
                    **values: Any) -> None:  # fmt: skip
        """Update an instant (``state``, ``run_kind``, ``run_id``, ``outcome``, ``reason``);
        with ``expected``, only if it is in that state (else :class:`ConcurrentTransition`)."""
        stmt = schedule_instants_t.update().where(
            schedule_instants_t.c.schedule_id == schedule_id,
            schedule_instants_t.c.instant == instant)  # fmt: skip
        if expected is not None:
            stmt = stmt.where(schedule_instants_t.c.state == expected)
        with self._write() as conn:
            if conn.execute(stmt.values(updated_at=self.clock(), **values)).rowcount != 1:
                raise ConcurrentTransition(f"instant {instant} of schedule {schedule_id} moved")

    def instants(self, schedule_id: int, *, states: Iterable[str] | None = None,
                 limit: int = 1000, newest_first: bool = False) -> list[InstantRecord]:  # fmt: skip
        stmt = sa.select(schedule_instants_t).where(
            schedule_instants_t.c.schedule_id == schedule_id)  # fmt: skip
        if states is not None:
            stmt = stmt.where(schedule_instants_t.c.state.in_(list(states)))
        col = schedule_instants_t.c.instant
        stmt = stmt.order_by(col.desc() if newest_first else col.asc()).limit(limit)
        with self._read() as conn:
            return [_instant(r) for r in conn.execute(stmt).all()]

    def schedules_with_instants(self, states: Iterable[str]) -> list[int]:
        """Ids of schedules with an instant in ``states``."""
        with self._read() as conn:
            rows = conn.execute(sa.select(schedule_instants_t.c.schedule_id).distinct().where(
                schedule_instants_t.c.state.in_(list(states)))).all()  # fmt: skip
        return sorted(int(r[0]) for r in rows)

    # -- events -----------------------------------------------------------------------------
    def schedule_event(self, schedule_id: int, message: str) -> None:
        with self._write() as conn:
            conn.execute(schedule_events_t.insert(), {"schedule_id": schedule_id,
                                                      "at": self.clock(), "message": message})

    def schedule_events(self, schedule_id: int, limit: int = 1000) -> list[tuple[float, str]]:
        with self._read() as conn:
            rows = conn.execute(
                sa.select(schedule_events_t.c.at, schedule_events_t.c.message)
                .where(schedule_events_t.c.schedule_id == schedule_id)
                .order_by(schedule_events_t.c.id.desc()).limit(limit)
            ).all()  # fmt: skip
        return [(float(a), str(m)) for a, m in reversed(rows)]
