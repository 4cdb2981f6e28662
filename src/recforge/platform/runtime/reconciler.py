"""The service loop: admit, launch, watch, and settle jobs.

One :meth:`Reconciler.tick`:

1. applies requested cancellations of launched jobs (the loop owns their processes);
2. requeues jobs whose backoff elapsed (BACKOFF -> PENDING), then runs the extra ``phases``
   (schedules firing their instants, DAG runs submitting their next nodes);
3. runs one scheduling pass; each admission is recorded (PENDING -> ADMITTED -> STARTING, the
   attempt number incremented) *before* the backend launches anything, and the handle is stored
   right after, so a crash can never start an attempt twice (see :mod:`.recovery`); preemption
   plans stop their victims, which go to BACKOFF with the reason naming the preemptor;
4. polls launched jobs and acts: STARTING -> RUNNING once every replica runs, SUCCEEDED when all
   exited 0, a failed, lost or silent replica (no heartbeat for ``heartbeat_timeout``) stops the
   gang and retries with the RetryPolicy's exponential backoff or fails for good; the pending
   deadline (counted from the launch until every gang replica runs, Kueue's semantics) evicts;
   the run deadline fails.

Nothing here holds the scheduler's lock except the pass itself, so submissions never wait for
launches or polls, and the store writes of a tick go in a few transactions (one for all
admissions, one for all handles, one for all settled jobs) instead of several per job.
Launched jobs are watched from memory (no query per tick): a job is polled when its backend
reports news (the local spawner tells when a sidecar exits) and at least every
``tick_interval``. :meth:`Reconciler.run_forever` ticks whenever something happened (a
submission, a cancel, a backend notification, a timer) and at least every ``tick_interval``.
"""

from __future__ import annotations

import dataclasses
import heapq
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from recforge.platform.backends.base import Backend, BackendStatus, Launch, ReplicaPhase
from recforge.platform.backends.users import RunAs, UserPolicy
from recforge.platform.model.admission import Admission, admission_to_json
from recforge.platform.model.config import PlatformConfig
from recforge.platform.model.specs import JobSpec
from recforge.platform.model.states import JobState
from recforge.platform.runtime.gate import SchedulerGate
from recforge.platform.runtime.transitions import Transitions
from recforge.platform.scheduling import Preemption
from recforge.platform.store import ConcurrentTransition, Event, JobNotFound, JobRecord, Store

__all__ = ["LoopSettings", "Reconciler", "TickReport"]

log = logging.getLogger("recforge.platform.service")
S = JobState


@dataclass(frozen=True)
class LoopSettings:
    """Loop timing and health thresholds.

    ``heartbeat_timeout``: a running replica whose last heartbeat (or launch, before the first
    one) is older than this is lost; None disables heartbeat checks. ``default_pending_deadline``:
    used when a spec sets none (None: no deadline).
    """

    tick_interval: float = 1.0
    heartbeat_timeout: float | None = 30.0
    default_pending_deadline: float | None = 600.0


@dataclass
class TickReport:
    """What one tick did (job ids per action)."""

    admitted: list[int] = field(default_factory=list)
    running: list[int] = field(default_factory=list)
    succeeded: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    retried: list[int] = field(default_factory=list)
    requeued: list[int] = field(default_factory=list)
    cancelled: list[int] = field(default_factory=list)
    preempted: list[int] = field(default_factory=list)
    stepped: list[str] = field(default_factory=list)  # extra phases that moved something

    def busy(self) -> bool:
        return any(getattr(self, f) for f in self.__dataclass_fields__)


class Reconciler:
    """Drives jobs from admission to their end (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        gate: SchedulerGate,
        transitions: Transitions,
        backends: Mapping[str, Backend],
        *,
        config: Callable[[], PlatformConfig],
        users: UserPolicy | None = None,
        settings: LoopSettings | None = None,
        clock: Callable[[], float],
    ) -> None:
        self.store = store
        self.gate = gate
        self.moves = transitions
        self.backends = backends
        self.config = config
        self.users = users or UserPolicy(switch=False)
        self.settings = settings or LoopSettings()
        self.clock = clock
        self.wake = threading.Event()
        self._cancels: dict[int, str] = {}  # job id -> reason
        self._cancels_lock = threading.Lock()
        self._backoff: list[tuple[float, int]] = []  # (not_before, job id), lazy
        self._next_timer: float | None = None
        self._active: dict[int, JobRecord] = {}  # launched jobs (STARTING/RUNNING), as stored
        self._polled: dict[int, float] = {}  # when each was last polled
        self._news: set[int] = set()  # jobs a backend reported news about
        self._news_lock = threading.Lock()
        #: extra steps of each tick, after requeueing and before the scheduling pass (DAG runs,
        #: schedules): ``fn(now) -> bool`` (True: it moved something).
        self.phases: list[Callable[[float], bool]] = []
        transitions.listeners.append(self._on_move)
        for backend in backends.values():
            backend.set_notifier(self.notify)

    def _on_move(self, job: JobRecord, event: Event) -> None:
        if event.to_state in (S.STARTING, S.RUNNING):
            if job.handle is not None or event.to_state is S.RUNNING:
                self._active[job.id] = job
        else:
            self._active.pop(job.id, None)
            self._polled.pop(job.id, None)

    def track(self, job: JobRecord) -> None:
        """Watch a launched job (after recovery)."""
        if job.state in (S.STARTING, S.RUNNING):
            self._active[job.id] = job

    # -- signals from other threads -------------------------------------------------------------
    def notify(self, job_id: int | None = None) -> None:
        """Something changed (a submission; news about launched ``job_id``): tick soon."""
        if job_id is not None:
            with self._news_lock:
                self._news.add(job_id)
        self.wake.set()

    def request_cancel(self, job_id: int, reason: str = "cancelled") -> None:
        """Stop a launched job at the next tick (the loop owns its processes)."""
        with self._cancels_lock:
            self._cancels.setdefault(job_id, reason)
        self.wake.set()

    def backoff_until(self, job_id: int, not_before: float) -> None:
        """Requeue ``job_id`` once ``not_before`` has passed."""
        heapq.heappush(self._backoff, (not_before, job_id))

    # -- the loop -------------------------------------------------------------------------------
    def run_forever(self, stop: threading.Event) -> None:
        """Tick until ``stop`` is set: right away after an event, else every tick interval."""
        while not stop.is_set():
            self.wake.clear()
            try:
                report = self.tick()
            except Exception:  # keep the loop alive; the error is logged with its traceback
                log.exception("tick failed")
                report = TickReport()
            if report.busy():
                continue
            timeout = self.settings.tick_interval
            if self._next_timer is not None:
                timeout = max(0.0, min(timeout, self._next_timer - self.clock()))
            self.wake.wait(timeout)

    def tick(self) -> TickReport:
        """One step (see the module docstring)."""
        report = TickReport()
        now = self.clock()
        self._apply_cancels(now, report)
        self._requeue_due(now, report)
        for phase in self.phases:
            try:
                if phase(now):
                    report.stepped.append(getattr(phase, "__qualname__", "phase"))
            except Exception:  # keep the loop alive; the step is tried again next tick
                log.exception("loop phase failed")
        result = self.gate.schedule(now)
        if result.admissions:
            self._admit_all(result.admissions, now, report)
        for p in result.preemptions:
            try:
                self._preempt(p, now, report)
            except Exception:
                log.exception("preemption failed", extra={"job_id": p.victim})
        self._monitor(now, report)
        timers = [t for t in (result.next_event_time,) if t is not None]
        if self._backoff:
            timers.append(self._backoff[0][0])
        self._next_timer = min(timers) if timers else None
        return report

    # -- cancellations and backoff --------------------------------------------------------------
    def _apply_cancels(self, now: float, report: TickReport) -> None:
        with self._cancels_lock:
            wanted, self._cancels = self._cancels, {}
        for job_id, reason in sorted(wanted.items()):
            try:
                job = self.store.get_job(job_id)
            except JobNotFound:
                continue
            if job.state in (S.SUCCEEDED, S.FAILED, S.CANCELLED):
                continue
            if job.state is S.STARTING and job.handle is None:
                continue  # launched by this loop after the handle is stored; see launch()
            if self.moves.move(job, S.CANCELLED, reason, at=now) is not None:
                report.cancelled.append(job_id)

    def _requeue_due(self, now: float, report: TickReport) -> None:
        while self._backoff and self._backoff[0][0] <= now:
            _, job_id = heapq.heappop(self._backoff)
            try:
                job = self.store.get_job(job_id)
            except JobNotFound:
                continue
            if job.state is not S.BACKOFF:
                continue
            if job.not_before is not None and job.not_before > now:
                self.backoff_until(job_id, job.not_before)
                continue
            reason = f"backoff over, attempt {job.attempts + 1} queued"
            if self.moves.move(job, S.PENDING, reason, at=now) is not None:
                report.requeued.append(job_id)

    # -- admission and launch -------------------------------------------------------------------
    def _unadmit(self, job_id: int, now: float) -> None:
        """After an error while admitting: if the store still says PENDING, queue it afresh."""
        try:
            job = self.store.get_job(job_id)
        except Exception:
            log.exception("cannot read job after a failed admission", extra={"job_id": job_id})
            return
        self.gate.forget(job_id)
        if job.state is S.PENDING:
            self.moves.requeue(job, now)

    def _admit_all(self, admissions: list[Admission], now: float, report: TickReport) -> None:
        """Record every admission (PENDING -> ADMITTED -> STARTING) in one transaction, launch
        them, store every handle in another."""
        starting: list[tuple[JobRecord, Admission]] = []
        with self.store.batch():
            for admission in admissions:
                try:
                    job = self._admit(admission, now, report)
                except Exception:  # one bad job must not stall the others
                    log.exception("admission failed", extra={"job_id": admission.job_id})
                    job_id = int(admission.job_id)
                    self.store.after_commit(lambda j=job_id: self._unadmit(j, now))  # type: ignore[misc]
                    continue
                if job is not None:
                    starting.append((job, admission))
        launched = self._start_all(starting, now)
        with self.store.batch():
            self.store.record_launches({job.id: outcome for job, _, outcome in launched
                                        if not isinstance(outcome, str)})  # fmt: skip
            for job, admission, outcome in launched:
                self._record_launch(job, admission, outcome, now, report, stored=True)

    def _admit(self, admission: Admission, now: float, report: TickReport) -> JobRecord | None:
        """PENDING -> ADMITTED -> STARTING; the job as STARTING, or None if it went elsewhere."""
        job_id = int(admission.job_id)
        try:
            _, job = self.store.move(
                job_id,
                S.ADMITTED,
                f"admitted on cluster {admission.cluster} after {admission.waited_seconds:.1f}s",
                expected_from=S.PENDING,
                at=now,
                cluster=admission.cluster,
                admission=admission_to_json(admission),
            )
        except (ConcurrentTransition, JobNotFound) as exc:
            # Cancelled meanwhile (or gone): give the reservation back.
            log.info("admission dropped", extra={"job_id": job_id, "reason": str(exc)})
            self.store.after_commit(lambda: self.gate.forget(job_id))
            return None
        report.admitted.append(job_id)
        return self._to_starting(job, admission, now)

    def _to_starting(self, job: JobRecord, admission: Admission, now: float) -> JobRecord | None:
        # STARTING is recorded *before* anything runs: a crash can then never lead to a second
        # launch of the same attempt (see recovery).
        attempt = job.attempts + 1
        moved = self.moves.move(
            job, S.STARTING, f"launching attempt {attempt}", at=now, attempts=attempt, handle=None
        )
        if moved is None:
            self.store.after_commit(lambda: self.gate.forget(job.id))
            return None
        self.store.reset_replicas(job.id, attempt, [(i, r.role) for i, r in
                                                    enumerate(admission.replicas)])  # fmt: skip
        return dataclasses.replace(job, state=S.STARTING, version=moved.version,
                                   attempts=attempt, handle=None)  # fmt: skip

    def _start_all(
        self, starting: list[tuple[JobRecord, Admission]], now: float
    ) -> list[tuple[JobRecord, Admission, dict[str, Any] | str]]:
        """Launch on each job's backend (a backend gets all of its jobs at once): per job the
        handle, or why the launch failed."""
        outcome: dict[int, dict[str, Any] | str] = {}
        by_type: dict[str, list[tuple[JobRecord, Admission]]] = {}
        for job, admission in starting:
            by_type.setdefault(admission.cluster_type, []).append((job, admission))
        for ctype, group in by_type.items():
            backend = self.backends.get(ctype)
            if backend is None:
                for job, _ in group:
                    outcome[job.id] = (f"launch failed: no backend for cluster type {ctype!r}; "
                                       f"configured: {sorted(self.backends)}")  # fmt: skip
                continue
            try:
                launches = [Launch(job.id, JobSpec.model_validate(job.spec), a, job.attempts,
                                   self.run_as(job)) for job, a in group]  # fmt: skip
                results: list[Any] = backend.launch_many(launches)
            except Exception as exc:  # a backend bug: every attempt of the batch failed
                results = [exc] * len(group)
            for (job, _), res in zip(group, results, strict=True):
                if isinstance(res, Exception):
                    log.warning("launch failed", extra={"job_id": job.id, "error": str(res)})
                    outcome[job.id] = f"launch failed: {res}"
                else:
                    outcome[job.id] = {**res, "launched_at": now}
        return [(job, a, outcome[job.id]) for job, a in starting]

    def _record_launch(self, job: JobRecord, admission: Admission, outcome: dict[str, Any] | str,
                       now: float, report: TickReport, *,
                       stored: bool = False) -> None:  # fmt: skip
        """After a launch: its handle (unless ``stored`` already), or the retry of a failure."""
        if isinstance(outcome, str):
            self.retry_or_fail(job, now, outcome, report)
            return
        if not stored:
            self.store.record_launches({job.id: outcome})
        log.info("job launched", extra={"job_id": job.id, "attempt": job.attempts,
                                        "backend": admission.cluster_type})  # fmt: skip
        self._active[job.id] = dataclasses.replace(job, handle=outcome)
        # A cancel that arrived while launching waits in the request list (the API also set the
        # flag); it is applied at the next tick, now that there is a handle to stop.

    def run_as(self, job: JobRecord) -> RunAs | None:
        group = next((g for g in self.config().groups if g.name == job.group), None)
        return self.users.run_as(group.run_as if group is not None else None)

    def launch(self, job: JobRecord, admission: Admission, now: float, report: TickReport) -> None:
        """ADMITTED -> STARTING (committed first), then start the gang on its backend."""
        starting = self._to_starting(job, admission, now)
        if starting is not None:
            self.relaunch(starting, admission, now, report)

    def relaunch(self, job: JobRecord, admission: Admission, now: float,
                 report: TickReport) -> None:  # fmt: skip
        """Start a STARTING job's current attempt on its backend and record the outcome; recovery
        calls it for an attempt whose interrupted launch started nothing (it keeps its number)."""
        [(_, _, outcome)] = self._start_all([(job, admission)], now)
        self._record_launch(job, admission, outcome, now, report)

    def _preempt(self, p: Preemption, now: float, report: TickReport) -> None:
        job = self.store.get_job(int(p.victim))
        if job.state not in (S.ADMITTED, S.STARTING, S.RUNNING):
            self.gate.forget(job.id)  # ended meanwhile: its quota is back anyway
            return
        spec = JobSpec.model_validate(job.spec)
        delay = spec.retry.delay(job.preemptions + 1)
        reason = f"{p.reason}; requeued in {delay:g}s"
        moved = self.moves.move(
            job, S.BACKOFF, reason, at=now, not_before=now + delay,
            preemptions=job.preemptions + 1,
        )  # fmt: skip
        if moved is not None:
            self.backoff_until(job.id, now + delay)
            report.preempted.append(job.id)

    def retry_or_fail(self, job: JobRecord, now: float, reason: str, report: TickReport) -> None:
        """After a failed or evicted attempt: BACKOFF (requeued later) or FAILED for good.

        Attempts a job lost to preemption do not count against ``max_attempts``.
        """
        policy = JobSpec.model_validate(job.spec).retry
        attempts = max(1, job.attempts - job.preemptions)
        if policy.can_retry(attempts):
            delay = policy.delay(attempts)
            moved = self.moves.move(
                job, S.BACKOFF,
                f"{reason}; retry {attempts + 1}/{policy.max_attempts} in {delay:g}s",
                at=now, not_before=now + delay,
            )  # fmt: skip
            if moved is not None:
                self.backoff_until(job.id, now + delay)
                report.retried.append(job.id)
        else:
            detail = f"{reason}; gave up after {attempts} attempt(s)"
            if self.moves.move(job, S.FAILED, detail, at=now) is not None:
                report.failed.append(job.id)

    # -- watching -------------------------------------------------------------------------------
    def _monitor(self, now: float, report: TickReport) -> None:
        """Poll launched jobs with news, and every job at least every tick interval; record the
        common outcomes (running, succeeded) in one transaction, failures one by one (they stop
        replicas first)."""
        with self._news_lock:
            news, self._news = self._news, set()
        every = self.settings.tick_interval
        due = [j for j in list(self._active.values())
               if j.id in news or now - self._polled.get(j.id, 0.0) >= every]  # fmt: skip
        polled: list[tuple[JobRecord, BackendStatus]] = []
        for job in due:
            backend = self.moves.backend_of(job)
            if backend is None or job.handle is None:
                continue  # launch in flight
            try:
                polled.append((job, backend.poll(job.handle)))
            except Exception:  # one bad job must not stall the others; retried next tick
                log.exception("monitoring failed", extra={"job_id": job.id})
            self._polled[job.id] = now
        later: list[tuple[JobRecord, BackendStatus]] = []
        with self.store.batch():
            for job, status in polled:
                try:
                    if not self._settle_common(job, status, now, report):
                        later.append((job, status))
                except Exception:
                    log.exception("monitoring failed", extra={"job_id": job.id})
        for job, status in later:
            try:
                self._settle(job, status, now, report)
            except Exception:
                log.exception("monitoring failed", extra={"job_id": job.id})

    def _settle_common(self, job: JobRecord, status: BackendStatus, now: float,
                       report: TickReport) -> bool:  # fmt: skip
        """The outcomes that stop nothing: all succeeded, or the gang is up. True if handled."""
        if status.all_succeeded:
            states = [(r.index, r.phase.value, r.exit_code) for r in status.replicas]
            self.store.set_replica_states(job.id, job.attempts, states)
            if self.moves.move(job, S.SUCCEEDED, "all replicas exited 0", at=now) is not None:
                report.succeeded.append(job.id)
            return True
        if status.failed or job.state is not S.STARTING or not status.all_running:
            return False
        if self._problem(job, status, now) is not None:
            return False
        if self.moves.move(job, S.RUNNING, "all gang replicas running", at=now) is not None:
            report.running.append(job.id)
        return True

    def _settle(self, job: JobRecord, status: BackendStatus, now: float, report: TickReport
                ) -> None:  # fmt: skip
        if status.all_succeeded or status.failed:
            states = [(r.index, r.phase.value, r.exit_code) for r in status.replicas]
            self.store.set_replica_states(job.id, job.attempts, states)
        if status.all_succeeded:
            if self.moves.move(job, S.SUCCEEDED, "all replicas exited 0", at=now) is not None:
                report.succeeded.append(job.id)
            return
        problem = self._problem(job, status, now)
        if problem is not None:
            self.retry_or_fail(job, now, problem, report)
            return
        launched = float((job.handle or {}).get("launched_at", job.updated_at))
        if job.state is S.STARTING:
            if status.all_running:
                if self.moves.move(job, S.RUNNING, "all gang replicas running", at=now):
                    report.running.append(job.id)
                return
            deadline = (_stored_field(job, "pending_deadline_seconds")
                        or self.settings.default_pending_deadline)  # fmt: skip
            if deadline is not None and now - launched > deadline:
                waiting = sorted(
                    r.index for r in status.replicas if r.phase is not ReplicaPhase.RUNNING
                )
                self.retry_or_fail(
                    job, now,
                    f"evicted: pending deadline {deadline:g}s exceeded (replicas {waiting} not "
                    "running)",
                    report,
                )  # fmt: skip
            return
        limit = _stored_field(job, "run_deadline_seconds")
        if limit is not None and job.started_at is not None and now - job.started_at > limit:
            reason = f"run deadline {limit:g}s exceeded"
            if self.moves.move(job, S.FAILED, reason, at=now) is not None:
                report.failed.append(job.id)

    def _problem(self, job: JobRecord, status: BackendStatus, now: float) -> str | None:
        """Why the current attempt is lost (a replica failed, vanished or stopped beating)."""
        for r in status.failed:
            if r.phase is ReplicaPhase.NOT_FOUND:
                return f"replica {r.index} lost: {r.detail or 'not found'}"
            code = "unknown" if r.exit_code is None else str(r.exit_code)
            return f"replica {r.index} failed with exit code {code}" + (
                f" ({r.detail})" if r.detail else ""
            )
        timeout = self.settings.heartbeat_timeout
        backend = self.moves.backend_of(job)
        if timeout is None or backend is None or not backend.heartbeats:
            return None
        running = {r.index: r for r in status.replicas if r.phase is ReplicaPhase.RUNNING}
        if not running:
            return None
        launched = float((job.handle or {}).get("launched_at", job.updated_at))
        beats: dict[int, float | None] = {
            i: r.heartbeat_at for i, r in running.items() if r.heartbeat_at is not None
        }
        if len(beats) < len(running):  # the backend does not see them: the sidecars' rows
            for rep in self.store.replicas(job.id):
                if rep.index in running and rep.attempt == job.attempts:
                    beats.setdefault(rep.index, rep.last_heartbeat)
        for index, last in sorted(beats.items()):
            seen = last if last is not None else launched
            if now - seen > timeout:
                return f"replica {index} lost: no heartbeat for {now - seen:.1f}s"
        return None

    def status_of(self, job: JobRecord) -> dict[str, Any] | None:
        """The backend's current view of a launched job (for ``why``), or None."""
        backend = self.moves.backend_of(job)
        if backend is None or job.handle is None:
            return None
        st = backend.poll(job.handle)
        return {"detail": st.detail,
                "replicas": [{"index": r.index, "phase": r.phase.value, "exit_code": r.exit_code,
                              "detail": r.detail} for r in st.replicas]}  # fmt: skip


def _stored_field(job: JobRecord, name: str) -> float | None:
    """A deadline of the job's stored spec (its canonical dump: every field is there). Read
    without validating the whole spec again: a starting job is polled at every tick."""
    value = job.spec.get(name)
    return None if value is None else float(value)
