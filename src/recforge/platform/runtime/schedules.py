"""Schedules: create, suspend, resume, backfill, delete, and the loop step that fires them.

Creating a schedule checks its target as a submission would (a DAG as
:meth:`~.dags.DagRuntime.check` does, a job as :meth:`PlatformService.check_job` does) and keeps
the rendered target with the schedule, so later template edits never change it. The first
instant considered is the first after the creation.

The loop (:meth:`ScheduleRuntime.tick`) fires what is due (:mod:`recforge.platform.model.
schedules` says how the concurrency policy and the catch-up bound decide) and, for schedules
with runs going or queued, records the runs' ends and starts queued instants one at a time. The
schedule's cursor, every instant's record and the runs they start change in ONE transaction: a
``kill -9`` at any point either left nothing of a firing (it fires again after the restart) or
all of it (it never fires twice), and the primary key of an instant's record makes a second run
of one instant impossible.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from recforge.platform.model.access import may_cancel, may_see_group
from recforge.platform.model.dag import DagSpec
from recforge.platform.model.dag_states import RUN_MACHINE
from recforge.platform.model.schedules import (
    ScheduleSpec,
    iso_instant,
    iter_instants,
    parse_schedule_spec,
)
from recforge.platform.model.specs import SpecError
from recforge.platform.model.states import TERMINAL_STATES
from recforge.platform.runtime.errors import (
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    ServiceError,
    field_of,
)
from recforge.platform.store import ConcurrentTransition, JobNotFound, User
from recforge.platform.store.dags import DagRunNotFound
from recforge.platform.store.schedules import InstantRecord, ScheduleNotFound, ScheduleRecord

if TYPE_CHECKING:
    from recforge.platform.runtime.service import PlatformService

__all__ = ["ScheduleRuntime"]

log = logging.getLogger("recforge.platform.service")
ACTIVE, SUSPENDED, FINISHED = "ACTIVE", "SUSPENDED", "FINISHED"
QUEUED, STARTED, DONE, SKIPPED, FAILED = "QUEUED", "STARTED", "DONE", "SKIPPED", "FAILED"
#: how late a one-off ``at`` may be at creation and still run.
AT_GRACE_SECONDS = 60.0
#: how often schedules with runs going or queued are looked at (their runs' ends).
PROGRESS_SECONDS = 1.0
#: missed instants are counted up to this many (then "more than").
COUNT_LIMIT = 10_000




class ScheduleRuntime:
    """Schedules of one service (see the module docstring)."""

    def __init__(self, service: PlatformService) -> None:
        self.svc = service
        self.store = service.store
        self._lock = threading.Lock()
        self._next: dict[int, float] = {}  # ACTIVE schedule -> its next instant
        self._waiting: set[int] = set()  # schedules with runs going or queued
        self._last_progress = 0.0

    # -- operations -------------------------------------------------------------------------
    def create(self, user: User, spec: ScheduleSpec | Mapping[str, Any] | str,
               *, source: str = "<schedule>") -> ScheduleRecord:  # fmt: skip
        """Check and store a schedule for ``user``; :class:`Invalid`, :class:`Forbidden`,
        :class:`NotFound` or :class:`Conflict` as a submission of its target would raise (or a
        name already used in the group), nothing stored then."""
        try:
            sched = spec if isinstance(spec, ScheduleSpec) else parse_schedule_spec(spec, source)
        except SpecError as exc:
            raise Invalid(str(exc), field=field_of(str(exc))) from None
        target, group = self._check_target(user, sched, source)
        if self.store.find_schedule(group, sched.name) is not None:
            raise Conflict(f"group {group!r} has a schedule named {sched.name!r} already",
                           field="name")  # fmt: skip
        now = self.svc.clock()
        cursor = now
        if sched.at is not None:
            at = sched.at_epoch()
            if at < now - AT_GRACE_SECONDS:
                raise Invalid(f"at: {iso_instant(at)} is in the past; a one-off runs at a "
                              "future time", field="at")  # fmt: skip
            cursor = min(now, at - 1e-3)
        doc = {"schedule": sched.model_dump(mode="json"), "target": target,
               "submitted_by": {"name": user.name, "group": user.group,
                                "is_admin": user.is_admin}}  # fmt: skip
        rec = self.store.create_schedule(
            name=sched.name, owner=user.name, group=group, spec=doc,
            state=SUSPENDED if sched.suspended else ACTIVE, cursor=cursor,
            next_at=sched.next_after(cursor),
        )  # fmt: skip
        self._track(rec)
        log.info("schedule created", extra={"schedule": rec.id, "owner": user.name})
        return rec

    def _check_target(self, user: User, sched: ScheduleSpec,
                      source: str) -> tuple[dict[str, Any], str]:  # fmt: skip
        try:
            if sched.dag is not None:
                dag, jobs, group = self.svc.dags.check(user, sched.dag, source=f"{source} dag")
                return {"dag": dag.canonical(), "jobs": jobs, "group": group}, group
            assert sched.job is not None
            job, queue = self.svc.check_job(user, sched.job, source=f"{source} job")
            return {"job": job.canonical()}, queue.group
        except ServiceError as exc:
            kind = "dag" if sched.dag is not None else "job"
            raise type(exc)(exc.detail, field=f"{kind}.{exc.field}" if exc.field
                            else kind) from None  # fmt: skip

    def get(self, user: User, schedule_id: int) -> ScheduleRecord:
        try:
            rec = self.store.get_schedule(schedule_id)
        except ScheduleNotFound:
            raise NotFound(f"no schedule with id {schedule_id}", field="schedule_id") from None
        if not may_see_group(user, rec.group):
            raise NotFound(f"no schedule with id {schedule_id}", field="schedule_id")
        return rec

    def list_schedules(self, user: User) -> list[ScheduleRecord]:
        """The schedules of the caller's group (admins: all)."""
        return self.store.list_schedules(group=None if user.is_admin else user.group)

    def _owned(self, user: User, schedule_id: int, what: str) -> ScheduleRecord:
        rec = self.get(user, schedule_id)
        if not may_cancel(user, rec.owner):
            raise Forbidden(f"user {user.name!r} may not {what} schedule {schedule_id} of "
                            f"{rec.owner!r}: only its owner or an admin may")  # fmt: skip
        if user.is_admin and user.name != rec.owner:
            self.store.audit(user.name, f"{what}-schedule", f"schedule {schedule_id}",
                             {"owner": rec.owner})  # fmt: skip
        return rec

    def set_suspended(self, user: User, schedule_id: int, suspended: bool) -> ScheduleRecord:
        """Suspend (no new instant fires) or resume a schedule. Instants queued before (a
        ``queue`` backlog, a backfill) still run one after another while it is suspended (as a
        paused Airflow DAG can be backfilled; delete the schedule to drop them). Instants that
        came while it was suspended are due at once when it resumes (the catch-up bound
        applies)."""
        rec = self._owned(user, schedule_id, "suspend" if suspended else "resume")
        if rec.state == FINISHED:
            raise Conflict(f"schedule {schedule_id} is finished (a one-off that ran)")
        want = SUSPENDED if suspended else ACTIVE
        if rec.state != want:
            try:
                rec = self.store.update_schedule(rec, state=want)
            except ConcurrentTransition:
                raise Conflict(f"schedule {schedule_id} changed meanwhile; try again") from None
            self.store.schedule_event(rec.id, f"{want.lower()} by {user.name}")
        self._track(rec)
        self.svc.reconciler.wake.set()
        return rec

    def delete(self, user: User, schedule_id: int) -> None:
        """Delete a schedule and its records; runs it started are left as they are."""
        rec = self._owned(user, schedule_id, "delete")
        self.store.delete_schedule(rec.id)
        with self._lock:
            self._next.pop(rec.id, None)
            self._waiting.discard(rec.id)

    def backfill(self, user: User, schedule_id: int, start: datetime,
                 end: datetime) -> dict[str, list[float]]:  # fmt: skip
        """Record every instant of ``[start, end]`` (naive times: the schedule's zone) to run
        one after another, oldest first, whenever no run of the schedule is going. Instants
        recorded before are not run again. Returns the ``recorded`` and ``already`` instants."""
        rec = self._owned(user, schedule_id, "backfill")
        spec = ScheduleSpec.model_validate(rec.spec["schedule"])
        zone = spec.zone
        t0 = (start if start.tzinfo else start.replace(tzinfo=zone)).timestamp()
        t1 = (end if end.tzinfo else end.replace(tzinfo=zone)).timestamp()
        if t1 > self.svc.clock():
            raise Invalid("end: a backfill covers the past; future instants run on schedule",
                          field="end")  # fmt: skip
        try:
            found = iter_instants(spec, t0, t1)
        except SpecError as exc:
            raise Invalid(str(exc), field="start") from None
        out: dict[str, list[float]] = {"recorded": [], "already": []}
        with self.store.batch():
            for t in found:
                if self.store.has_instant(rec.id, t):
                    out["already"].append(t)
                    continue
                self.store.add_instant(rec.id, t, QUEUED, backfill=True,
                                       reason=f"backfill by {user.name}")  # fmt: skip
                out["recorded"].append(t)
            self.store.schedule_event(
                rec.id, f"backfill {iso_instant(t0)} .. {iso_instant(t1)} by {user.name}: "
                f"{len(out['recorded'])} instant(s) queued, {len(out['already'])} recorded "
                "before")  # fmt: skip
        with self._lock:
            self._waiting.add(rec.id)
        self.svc.reconciler.wake.set()
        return out

    def instants(self, user: User, schedule_id: int, limit: int = 1000) -> list[InstantRecord]:
        """The schedule's recorded instants, newest first."""
        self.get(user, schedule_id)
        return self.store.instants(schedule_id, limit=limit, newest_first=True)

    def events(self, user: User, schedule_id: int) -> list[tuple[float, str]]:
        self.get(user, schedule_id)
        return self.store.schedule_events(schedule_id)

    # -- the loop ---------------------------------------------------------------------------
    def _track(self, rec: ScheduleRecord) -> None:
        with self._lock:
            if rec.state == ACTIVE and rec.next_at is not None:
                self._next[rec.id] = rec.next_at
            else:
                self._next.pop(rec.id, None)

    def recover(self) -> None:
        """After a (re)start: every active schedule's next instant, and the schedules with runs
        going or queued (instants that came while the service was down are due now)."""
        for rec in self.store.list_schedules(states=[ACTIVE]):
            self._track(rec)
        with self._lock:
            self._waiting |= set(self.store.schedules_with_instants([QUEUED, STARTED]))

    def tick(self, now: float) -> bool:
        """Fire what is due; every :data:`PROGRESS_SECONDS`, follow running and queued runs."""
        with self._lock:
            due = sorted(sid for sid, t in self._next.items() if t <= now)
            progress = now - self._last_progress >= PROGRESS_SECONDS
            if progress:
                self._last_progress = now
                waiting = sorted(self._waiting)
        moved = False
        for sid in due:
            try:
                moved |= self._fire(sid, now)
            except Exception:  # looked at again next tick
                log.exception("schedule step failed", extra={"schedule": sid})
        if progress:
            for sid in waiting:
                try:
                    moved |= self._progress(sid)
                except Exception:
                    log.exception("schedule step failed", extra={"schedule": sid})
        return moved

    def _fire(self, sid: int, now: float) -> bool:
        try:
            rec = self.store.get_schedule(sid)
        except ScheduleNotFound:
            with self._lock:
                self._next.pop(sid, None)
            return False
        if rec.state != ACTIVE:
            self._track(rec)
            return False
        spec = ScheduleSpec.model_validate(rec.spec["schedule"])
        latest = spec.latest(rec.cursor, now, spec.catch_up)
        if not latest:  # nothing due after all (e.g. the clock moved back)
            self._track(self.store.update_schedule(rec, next_at=spec.next_after(rec.cursor)))
            return False
        earlier = spec.instants(rec.cursor, latest[0] - 1e-6, COUNT_LIMIT)
        deadline = spec.starting_deadline_seconds
        run = [t for t in latest if deadline is None or now - t <= deadline]
        late = [t for t in latest if t not in run]
        cursor = latest[-1]
        next_at = spec.next_after(cursor)
        try:
            with self.store.batch():
                updated = self.store.update_schedule(
                    rec, cursor=cursor, next_at=next_at,
                    **({"state": FINISHED} if next_at is None else {}),
                )  # fmt: skip
                missed = earlier + late
                if missed:
                    more = "more than " if len(earlier) >= COUNT_LIMIT else ""
                    why = []
                    if earlier:
                        why.append(f"{more}{len(earlier)} beyond the catch-up bound of "
                                   f"{spec.catch_up}")  # fmt: skip
                    if late:
                        why.append(f"{len(late)} later than the starting deadline of "
                                   f"{deadline:g}s")  # fmt: skip
                    self.store.schedule_event(
                        rec.id, f"missed {more}{len(missed)} instant(s) from "
                        f"{iso_instant(min(missed))} to {iso_instant(max(missed))}: "
                        f"{', '.join(why)}")  # fmt: skip
                for t in run:
                    self._on_time(updated, spec, t)
        except ConcurrentTransition:  # suspended or deleted meanwhile: read it again next tick
            return False
        self._track(updated)
        return True

    def _active_runs(self, rec: ScheduleRecord) -> list[InstantRecord]:
        """Instants whose run still goes; finished ones are recorded DONE on the way."""
        active = []
        for inst in self.store.instants(rec.id, states=[STARTED]):
            outcome = self._outcome(inst)
            if outcome is None:
                active.append(inst)
            else:
                self.store.set_instant(rec.id, inst.instant, state=DONE, outcome=outcome)
        return active

    def _outcome(self, inst: InstantRecord) -> str | None:
        """The final state of the instant's run, None while it goes."""
        assert inst.run_id is not None
        try:
            if inst.run_kind == "dag":
                run = self.store.get_dag_run(inst.run_id)
                return run.state.value if RUN_MACHINE.is_terminal(run.state) else None
            job = self.store.get_job(inst.run_id)
            return job.state.value if job.state in TERMINAL_STATES else None
        except (DagRunNotFound, JobNotFound):
            return "GONE"

    def _on_time(self, rec: ScheduleRecord, spec: ScheduleSpec, t: float) -> None:
        """Apply the concurrency policy to instant ``t`` (inside the firing's transaction)."""
        if self.store.has_instant(rec.id, t):  # a backfill recorded it already
            return
        active = self._active_runs(rec)
        queued = self.store.instants(rec.id, states=[QUEUED], limit=1)
        if active and spec.concurrency == "forbid":
            a = active[-1]
            self.store.add_instant(rec.id, t, SKIPPED, reason=(
                f"forbid: the {a.run_kind} run {a.run_id} of {iso_instant(a.instant)} is still "
                "going"))  # fmt: skip
            return
        if ((active or queued) and spec.concurrency == "queue") or (queued and not active):
            self.store.add_instant(rec.id, t, QUEUED, reason="queue: waiting for the run(s) "
                                                             "before it")  # fmt: skip
            with self._lock:
                self._waiting.add(rec.id)
            return
        if spec.concurrency == "replace":
            for a in active:
                self._cancel(a, f"replaced by the run of {iso_instant(t)}")
        self.store.add_instant(rec.id, t, STARTED, reason="on time")
        self._start(rec, t, STARTED)

    def _cancel(self, inst: InstantRecord, reason: str) -> None:
        assert inst.run_id is not None
        if inst.run_kind == "dag":
            self.svc.dags.request_cancel(inst.run_id, reason)
        else:
            try:
                job = self.store.request_cancel(inst.run_id)
            except JobNotFound:
                return
            self.svc.cancel_now(job, reason)

    def _start(self, rec: ScheduleRecord, t: float, expected: str) -> None:
        """Start the run of recorded instant ``t`` (in the caller's transaction)."""
        owner = User(**{k: rec.spec["submitted_by"][k] for k in ("name", "group", "is_admin")})
        target = rec.spec["target"]
        try:
            if "dag" in target:
                dag = DagSpec.model_validate(target["dag"])
                checked = (dag, target["jobs"], target["group"])
                run = self.svc.dags.submit(owner, dag, schedule_id=rec.id, scheduled_at=t,
                                           checked=checked)
                kind, run_id = "dag", run.id
            else:
                job = dict(target["job"])
                job["env"] = {**job.get("env", {}), "RECFORGE_SCHEDULED_AT": iso_instant(t)}
                job["labels"] = {**job.get("labels", {}), "schedule": rec.name,
                                 "schedule-id": str(rec.id)}  # fmt: skip
                spec, queue = self.svc.check_job(owner, job, source=f"schedule {rec.name!r}")
                why = f"scheduled by schedule {rec.id} for {iso_instant(t)}"
                record = self.svc.store_job(owner, spec, queue, reason=why)
                kind, run_id = "job", record.id
        except ServiceError as exc:  # e.g. the configuration changed under the schedule
            self.store.set_instant(rec.id, t, expected=expected, state=FAILED,
                                   reason=f"cannot start: {exc.detail}")  # fmt: skip
            self.store.schedule_event(rec.id,
                                      f"instant {iso_instant(t)} cannot start: {exc.detail}")
            return
        self.store.set_instant(rec.id, t, expected=expected, state=STARTED, run_kind=kind,
                               run_id=run_id)  # fmt: skip
        with self._lock:
            self._waiting.add(rec.id)

    def _progress(self, sid: int) -> bool:
        """Record finished runs; start the oldest queued instant when nothing runs."""
        try:
            rec = self.store.get_schedule(sid)
        except ScheduleNotFound:
            with self._lock:
                self._waiting.discard(sid)
            return False
        moved = False
        with self.store.batch():
            active = self._active_runs(rec)
            queued = self.store.instants(sid, states=[QUEUED], limit=1)
            if not active and queued:  # suspended too: queued instants are decisions made
                t = queued[0].instant
                self.store.set_instant(sid, t, expected=QUEUED, state=STARTED,
                                       reason="started after the run(s) before it")  # fmt: skip
                self._start(rec, t, STARTED)
                moved = True
            elif not active and not queued:
                with self._lock:
                    self._waiting.discard(sid)
        return moved
