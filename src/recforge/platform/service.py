"""The platform service: store + scheduler + backends, driven by an event loop.

:class:`PlatformService` is the one place that wires the runtime together:

* :meth:`~PlatformService.submit` validates a spec against the core (unknown queue, infeasible
  gang, over quota, wrong group) *before* anything is stored, then stores the rendered spec in
  PENDING and queues it in the scheduler.
* :meth:`~PlatformService.tick` is one step of the loop: requeue jobs whose backoff elapsed,
  let the scheduler admit gangs, reserve (PENDING -> ADMITTED), launch through the backend of the
  cluster's type (ADMITTED -> STARTING), poll the backends of STARTING/RUNNING jobs and act:
  STARTING -> RUNNING once every replica runs; SUCCEEDED/FAILED when replicas end; pending
  deadline (gang not all running in time) -> evict and requeue with the RetryPolicy's exponential
  backoff, FAILED after ``max_attempts``; run deadline -> cancel + FAILED; no heartbeat for
  ``heartbeat_timeout`` -> the replica is lost -> retry or FAILED; quota is released whenever a
  job leaves the active states.
* :meth:`~PlatformService.recover` (on start-up) rebuilds the scheduler from the store
  (reservations of admitted/running jobs, the pending queue), reattaches running jobs through
  ``backend.reattach`` and lets the next poll settle jobs that ended while the service was down
  (from their exit-code files). Nothing is relaunched while its processes live: jobs in
  STARTING/RUNNING are only ever polled, and every state change is a compare-and-set in the
  store, so a second writer cannot apply a move twice.

Crash safety of a launch: the job moves ADMITTED -> STARTING (attempt number incremented)
*before* the backend starts anything, and the handle is stored right after. A service killed in
between leaves a STARTING job without a handle; :meth:`recover` asks the backend to rebuild the
handle for that attempt (``recover_handle``: pid files of the local sidecars, the deterministic
Ray submission id) and only if nothing was started does it count the attempt as failed.

Pending deadline semantics (after Kueue's waitForPodsReady): it runs from the launch of an
attempt until every gang replica reports running; a job waiting in the queue for quota is not
evicted by it. Other processes (e.g. the REST API) may submit and cancel through their own
:class:`PlatformService` on the same store; the loop process picks their changes up from the
event table (an id cursor), so only one process should run :meth:`run_forever`.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recforge.platform.backends.base import Backend, BackendStatus, LaunchError, ReplicaPhase
from recforge.platform.resources import PlatformConfig, QuotaError
from recforge.platform.scheduler import Admission, ReplicaSlot, Scheduler
from recforge.platform.specs import JobSpec, Resources, SpecError, parse_job_spec
from recforge.platform.states import TERMINAL_STATES, JobState
from recforge.platform.store import ConcurrentTransition, JobNotFound, JobRecord, Store, User

__all__ = [
    "PermissionDenied",
    "PlatformService",
    "ServiceSettings",
    "SubmitError",
    "TickReport",
    "load_config",
    "main",
    "save_config",
]

log = logging.getLogger("recforge.platform.service")
S = JobState


class SubmitError(ValueError):
    """A submission was refused before anything was stored; the message says why."""


class PermissionDenied(PermissionError):
    """The user may not act on this job or queue."""


@dataclass(frozen=True)
class ServiceSettings:
    """Loop timing and health thresholds.

    ``heartbeat_timeout``: a running replica whose last heartbeat (or launch, before the first
    one) is older than this is lost; None disables heartbeat checks (backends without sidecar
    heartbeats). ``default_pending_deadline``: used when a spec sets none (None: no deadline).
    """

    tick_interval: float = 1.0
    heartbeat_timeout: float | None = 30.0
    default_pending_deadline: float | None = 600.0


@dataclass
class TickReport:
    """What one :meth:`PlatformService.tick` did (job ids per action)."""

    admitted: list[int] = field(default_factory=list)
    running: list[int] = field(default_factory=list)
    succeeded: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    retried: list[int] = field(default_factory=list)
    requeued: list[int] = field(default_factory=list)
    cancelled: list[int] = field(default_factory=list)

    def busy(self) -> bool:
        return any(getattr(self, f) for f in self.__dataclass_fields__)


def load_config(store: Store) -> PlatformConfig:
    """The cluster/group/queue configuration kept in the store."""
    return PlatformConfig.model_validate(
        {
            "clusters": list(store.get_config("cluster").values()),
            "groups": list(store.get_config("group").values()),
            "queues": list(store.get_config("queue").values()),
        }
    )


def save_config(store: Store, config: PlatformConfig) -> None:
    """Write every cluster/group/queue of ``config`` to the store (replacing same names)."""
    for kind, items in (
        ("cluster", config.clusters),
        ("group", config.groups),
        ("queue", config.queues),
    ):
        for item in items:
            store.put_config(kind, item.name, item.model_dump(mode="json"))


def _admission_to_json(a: Admission) -> dict[str, Any]:
    return {
        "cluster": a.cluster,
        "cluster_type": a.cluster_type,
        "queue": a.queue,
        "group": a.group,
        "gang_size": a.gang_size,
        "replicas": [
            {"role": r.role, "index": r.index, "resources": r.resources.as_dict()}
            for r in a.replicas
        ],
        "total": a.total.as_dict(),
        "waited_seconds": a.waited_seconds,
    }


def _admission_from_json(job_id: int, d: Mapping[str, Any]) -> Admission:
    return Admission(
        job_id=str(job_id),
        cluster=d["cluster"],
        cluster_type=d["cluster_type"],
        queue=d["queue"],
        group=d["group"],
        replicas=tuple(
            ReplicaSlot(r["role"], r["index"], Resources.from_dict(r["resources"]))
            for r in d["replicas"]
        ),
        gang_size=d["gang_size"],
        total=Resources.from_dict(d["total"]),
        waited_seconds=d.get("waited_seconds", 0.0),
    )


class PlatformService:
    """Runtime of the job platform (see the module docstring).

    ``backends`` maps a cluster type (``"local"``, ``"ray"``) to its backend. ``config`` defaults
    to the configuration stored in ``store``; ``scheduler_factory`` builds the scheduler from it.
    """

    def __init__(
        self,
        store: Store,
        backends: Mapping[str, Backend],
        *,
        config: PlatformConfig | None = None,
        scheduler_factory: Callable[[PlatformConfig], Scheduler] = Scheduler,
        settings: ServiceSettings | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.backends = dict(backends)
        self.settings = settings or ServiceSettings()
        self.clock = clock
        self.scheduler_factory = scheduler_factory
        self.config = config if config is not None else load_config(store)
        self.scheduler = scheduler_factory(self.config)
        self._event_cursor = store.last_event_id()
        self._lock = threading.RLock()

    # -- helpers ------------------------------------------------------------------------------
    def _log(self, level: int, msg: str, job_id: int | None = None, **fields: Any) -> None:
        log.log(level, msg, extra={"job_id": job_id, **fields})

    @staticmethod
    def _spec(job: JobRecord) -> JobSpec:
        return JobSpec.model_validate(job.spec)

    def _backend(self, cluster_type: str) -> Backend:
        backend = self.backends.get(cluster_type)
        if backend is None:
            raise LaunchError(
                f"no backend for cluster type {cluster_type!r}; configured: {sorted(self.backends)}"
            )
        return backend

    def _backend_of(self, job: JobRecord) -> Backend | None:
        ctype = (job.admission or {}).get("cluster_type")
        return self.backends.get(ctype) if ctype else None

    def _forget(self, job_id: int) -> None:
        """Drop a job from the scheduler (releases its quota if it holds any)."""
        key = str(job_id)
        if key in self.scheduler:
            self.scheduler.remove(key)

    # -- public API ---------------------------------------------------------------------------
    def reload_config(self) -> None:
        """Rebuild the scheduler from the stored configuration (and the jobs in the store)."""
        with self._lock:
            self.config = load_config(self.store)
            self.scheduler = self.scheduler_factory(self.config)
            self._rebuild_scheduler(self.clock())

    def submit(
        self,
        user: User,
        spec: JobSpec | Mapping[str, Any] | str,
        *,
        source: str = "<submission>",
    ) -> int:
        """Validate and store a job for ``user``; returns its id. Raises :class:`SubmitError`.

        ``spec`` is a :class:`JobSpec`, a mapping or YAML/JSON text. A mapping
        ``{"template": name, "values": {...}}`` is rendered from a stored template first.
        """
        try:
            if isinstance(spec, Mapping) and "template" in spec:
                spec = self._render_template(spec)
            job_spec = spec if isinstance(spec, JobSpec) else parse_job_spec(spec, source)
        except SpecError as exc:
            raise SubmitError(str(exc)) from None
        queue = next((q for q in self.config.queues if q.name == job_spec.queue), None)
        if queue is None:
            known = sorted(q.name for q in self.config.queues)
            raise SubmitError(f"unknown queue {job_spec.queue!r}; known queues: {known}")
        if queue.group != user.group and not user.is_admin:
            raise PermissionDenied(
                f"user {user.name!r} (group {user.group!r}) may not submit to queue "
                f"{queue.name!r} of group {queue.group!r}"
            )
        with self._lock:
            try:
                self.scheduler.validate(job_spec, job_spec.name)
            except (QuotaError, ValueError) as exc:
                raise SubmitError(str(exc)) from None
            now = self.clock()
            job = self.store.create_job(
                name=job_spec.name,
                owner=user.name,
                group=queue.group,
                queue=queue.name,
                spec=job_spec.canonical(),
                reason=f"submitted by {user.name}",
            )
            self.scheduler.submit(str(job.id), job_spec, now)
        self._log(logging.INFO, "job submitted", job.id, queue=queue.name, owner=user.name)
        return job.id

    def _render_template(self, ref: Mapping[str, Any]) -> JobSpec:
        """Render ``{"template": name, "values": {...}}`` from the stored template."""
        from recforge.platform.templates import parse_template, render

        name = ref["template"]
        extra = sorted(set(ref) - {"template", "values"})
        if extra:
            raise SpecError(f"template submission: unknown field(s) {extra}")
        stored = self.store.get_template(str(name))
        if stored is None:
            raise SpecError(f"unknown template {name!r}")
        data = dict(stored["body"])
        if "body" not in data:  # stored as a bare body: wrap it
            data = {"name": stored["name"], "owner": stored["owner"], "body": data}
        return render(parse_template(data, f"template {name!r}"), ref.get("values") or {})

    def cancel(self, user: User, job_id: int) -> JobRecord:
        """Cancel a job (any member of its group, or an admin). Pending jobs end at once;
        running ones are stopped."""
        job = self.store.get_job(job_id)
        if job.group != user.group and not user.is_admin:
            raise PermissionDenied(
                f"user {user.name!r} of group {user.group!r} may not cancel job {job_id} "
                f"of group {job.group!r}"
            )
        if job.state in TERMINAL_STATES:
            return job
        self.store.request_cancel(job_id)
        with self._lock:
            self._cancel_now(self.store.get_job(job_id), self.clock(), f"cancelled by {user.name}")
        return self.store.get_job(job_id)

    def _cancel_now(self, job: JobRecord, now: float, reason: str) -> bool:
        """Stop a job flagged for cancellation; True if this call moved it to CANCELLED."""
        if job.state in TERMINAL_STATES:
            return False
        if job.state is S.STARTING and job.handle is None:
            # A launch is in flight (or was cut short by a crash): the process that launches
            # stores the handle first and then sees the cancel flag; recover() covers crashes.
            return False
        if job.state in (S.STARTING, S.RUNNING) and job.handle is not None:
            backend = self._backend_of(job)
            if backend is None:
                return False  # another process owns this backend; its loop will finish it
            backend.cancel(job.handle)
        try:
            self.store.transition(
                job.id, S.CANCELLED, reason, expected_from=job.state, at=now, finished_at=now
            )
        except ConcurrentTransition:
            return False
        self._forget(job.id)
        self._log(logging.INFO, "job cancelled", job.id, reason=reason)
        return True

    def explain(self, job_id: int) -> str:
        """Why a job is where it is (the scheduler's explanation while it waits)."""
        job = self.store.get_job(job_id)
        if job.state in (S.PENDING, S.ADMITTED) and str(job_id) in self.scheduler:
            return self.scheduler.explain(str(job_id), self.clock()).message
        if job.state is S.BACKOFF and job.not_before is not None:
            wait = max(0.0, job.not_before - self.clock())
            return f"job {job_id} is in backoff ({job.reason}); requeued in {wait:.1f}s"
        return f"job {job_id} is {job.state.value}: {job.reason}"

    def logs(self, job_id: int, replica: int, tail: int = 100) -> str:
        """The last ``tail`` lines of one replica's output (current/last attempt)."""
        job = self.store.get_job(job_id)
        backend = self._backend_of(job)
        if job.handle is None or backend is None:
            return ""
        return backend.logs(job.handle, replica, tail)

    # -- the loop -----------------------------------------------------------------------------
    def tick(self) -> TickReport:
        """One event-driven step (see the module docstring)."""
        with self._lock:
            report = TickReport()
            now = self.clock()
            self._ingest_events()
            self._handle_cancels(now, report)
            self._requeue_backoff(now, report)
            for admission in self.scheduler.schedule(now):
                try:
                    self._admit(admission, now, report)
                except Exception:  # one bad job must not stall the others
                    log.exception("admission failed", extra={"job_id": admission.job_id})
                    self._unadmit(int(admission.job_id), now)
            self._monitor(now, report)
            return report

    def run_forever(self, stop_event: threading.Event) -> None:
        """Tick until ``stop_event`` is set; ticks back to back while there is work."""
        while not stop_event.is_set():
            try:
                report = self.tick()
            except Exception:  # keep the loop alive; the error is logged with its traceback
                log.exception("tick failed")
                report = TickReport()
            if not report.busy():
                stop_event.wait(self.settings.tick_interval)

    def _ingest_events(self) -> None:
        """Apply submissions/cancellations made by other processes to the scheduler."""
        while True:
            events = self.store.events_since(self._event_cursor, limit=500)
            if not events:
                return
            for ev in events:
                self._event_cursor = ev.id
                key = str(ev.job_id)
                if ev.from_state is None and key not in self.scheduler:
                    job = self.store.get_job(ev.job_id)
                    if job.state is S.PENDING:
                        self._queue_job(job, ev.at)
                elif ev.to_state in TERMINAL_STATES and key in self.scheduler:
                    self.scheduler.remove(key)

    def _queue_job(self, job: JobRecord, enqueued_at: float) -> None:
        try:
            self.scheduler.submit(str(job.id), self._spec(job), enqueued_at)
        except (QuotaError, ValueError) as exc:
            # The configuration changed under a stored job: it can never run now.
            self._try(job, S.FAILED, f"cannot be scheduled: {exc}", finished_at=self.clock())

    def _try(self, job: JobRecord, to: JobState, reason: str, **fields: Any) -> bool:
        """A conditional transition from the state we read; False if someone else moved it."""
        try:
            self.store.transition(job.id, to, reason, expected_from=job.state, **fields)
        except ConcurrentTransition:
            return False
        return True

    def _handle_cancels(self, now: float, report: TickReport) -> None:
        active = [S.PENDING, S.BACKOFF, S.ADMITTED, S.STARTING, S.RUNNING]
        for job in self.store.iter_jobs(active, cancel_requested=True):
            if self._cancel_now(job, now, "cancel requested"):
                report.cancelled.append(job.id)

    def _requeue_backoff(self, now: float, report: TickReport) -> None:
        for job in self.store.iter_jobs([S.BACKOFF]):
            if job.not_before is not None and job.not_before > now:
                continue
            if not self._try(job, S.PENDING, f"backoff over, attempt {job.attempts + 1} queued"):
                continue
            report.requeued.append(job.id)
            if str(job.id) not in self.scheduler:  # e.g. after a restart
                self._queue_job(self.store.get_job(job.id), now)

    def _unadmit(self, job_id: int, now: float) -> None:
        """After an error while admitting: if the store still says PENDING, queue it afresh."""
        try:
            job = self.store.get_job(job_id)
        except Exception:
            log.exception("cannot read job after a failed admission", extra={"job_id": job_id})
            return
        if job.state is S.PENDING:
            self._forget(job_id)
            self._queue_job(job, now)

    def _admit(self, admission: Admission, now: float, report: TickReport) -> None:
        job_id = int(admission.job_id)
        try:
            self.store.transition(
                job_id,
                S.ADMITTED,
                f"admitted on cluster {admission.cluster} after {admission.waited_seconds:.1f}s",
                expected_from=S.PENDING,
                at=now,
                cluster=admission.cluster,
                admission=_admission_to_json(admission),
                admitted_at=now,
            )
        except (ConcurrentTransition, JobNotFound) as exc:
            # Cancelled meanwhile (or gone): give the reservation back.
            self._log(logging.INFO, "admission dropped", job_id, reason=str(exc))
            self._forget(job_id)
            return
        report.admitted.append(job_id)
        self._log(logging.INFO, "job admitted", job_id, cluster=admission.cluster)
        self._launch(self.store.get_job(job_id), admission, now, report)

    def _launch(self, job: JobRecord, admission: Admission, now: float, report: TickReport) -> None:
        attempt = job.attempts + 1
        spec = self._spec(job)
        # STARTING is recorded *before* anything runs: a crash can then never lead to a second
        # launch of the same attempt (see recover()).
        if not self._try(
            job, S.STARTING, f"launching attempt {attempt}", at=now, attempts=attempt, handle=None
        ):
            self._forget(job.id)
            return
        self.store.reset_replicas(job.id, attempt, [(i, r.role) for i, r in
                                                    enumerate(admission.replicas)])  # fmt: skip
        try:
            backend = self._backend(admission.cluster_type)
            handle = backend.launch(job.id, spec, admission, attempt=attempt)
        except Exception as exc:  # LaunchError, or a backend bug: the attempt failed either way
            self._log(logging.WARNING, "launch failed", job.id, error=str(exc))
            self._retry_or_fail(self.store.get_job(job.id), now, f"launch failed: {exc}", report)
            return
        handle = {**handle, "launched_at": now}
        self.store.update_job(job.id, handle=handle)
        self.store.set_replica_handles(
            job.id, {int(r["index"]): r for r in handle.get("replicas", []) if "pid" in r}
        )
        self._log(
            logging.INFO, "job launched", job.id, attempt=attempt, backend=backend.cluster_type
        )

    def _retry_or_fail(self, job: JobRecord, now: float, reason: str, report: TickReport) -> None:
        """After a failed/evicted attempt: BACKOFF (and requeue later) or FAILED for good."""
        policy = self._spec(job).retry
        attempts = max(1, job.attempts)
        if policy.can_retry(attempts):
            delay = policy.delay(attempts)
            if self._try(
                job,
                S.BACKOFF,
                f"{reason}; retry {attempts + 1}/{policy.max_attempts} in {delay:g}s",
                at=now,
                not_before=now + delay,
            ):
                key = str(job.id)
                if self.scheduler.admission(key) is not None:
                    self.scheduler.evict(key, now, not_before=now + delay)
                else:
                    self._forget(job.id)  # requeued from the store when the backoff ends
                report.retried.append(job.id)
                self._log(logging.WARNING, "job retried", job.id, reason=reason, delay=delay)
        else:
            detail = f"{reason}; gave up after {attempts} attempt(s)"
            if self._try(job, S.FAILED, detail, at=now, finished_at=now):
                self._forget(job.id)
                report.failed.append(job.id)
                self._log(logging.WARNING, "job failed", job.id, reason=detail)

    def _monitor(self, now: float, report: TickReport) -> None:
        for job in self.store.iter_jobs([S.STARTING, S.RUNNING]):
            backend = self._backend_of(job)
            if backend is None or job.handle is None:
                continue  # launch in flight elsewhere, or another process's backend
            try:
                self._settle(job, backend, backend.poll(job.handle), now, report)
            except Exception:  # one bad job must not stall the others; retried next tick
                log.exception("monitoring failed", extra={"job_id": job.id})

    def _settle(
        self,
        job: JobRecord,
        backend: Backend,
        status: BackendStatus,
        now: float,
        report: TickReport,
    ) -> None:
        spec = self._spec(job)
        if status.all_succeeded:
            if self._try(job, S.SUCCEEDED, "all replicas exited 0", at=now, finished_at=now):
                self._forget(job.id)
                report.succeeded.append(job.id)
                self._log(logging.INFO, "job succeeded", job.id)
            return
        problem = self._problem(job, status, now)
        if problem is not None:
            backend.cancel(job.handle or {})  # stop what is left of the gang
            self._retry_or_fail(job, now, problem, report)
            return
        launched = float((job.handle or {}).get("launched_at", job.updated_at))
        if job.state is S.STARTING:
            if status.all_running:
                if self._try(job, S.RUNNING, "all gang replicas running", at=now, started_at=now):
                    report.running.append(job.id)
                    self._log(logging.INFO, "job running", job.id)
                return
            deadline = spec.pending_deadline_seconds or self.settings.default_pending_deadline
            if deadline is not None and now - launched > deadline:
                backend.cancel(job.handle or {})
                waiting = sorted(
                    r.index for r in status.replicas if r.phase is not ReplicaPhase.RUNNING
                )
                self._retry_or_fail(
                    job,
                    now,
                    f"evicted: pending deadline {deadline:g}s exceeded "
                    f"(replicas {waiting} not running)",
                    report,
                )
            return
        limit = spec.run_deadline_seconds
        if limit is not None and job.started_at is not None and now - job.started_at > limit:
            backend.cancel(job.handle or {})
            reason = f"run deadline {limit:g}s exceeded"
            if self._try(job, S.FAILED, reason, at=now, finished_at=now):
                self._forget(job.id)
                report.failed.append(job.id)
                self._log(logging.WARNING, "job failed", job.id, reason=reason)

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
        if timeout is None:
            return None
        running = {r.index for r in status.replicas if r.phase is ReplicaPhase.RUNNING}
        if not running:
            return None
        launched = float((job.handle or {}).get("launched_at", job.updated_at))
        for rep in self.store.replicas(job.id):
            if rep.index in running and rep.attempt == job.attempts:
                last = rep.last_heartbeat if rep.last_heartbeat is not None else launched
                if now - last > timeout:
                    return f"replica {rep.index} lost: no heartbeat for {now - last:.1f}s"
        return None

    # -- start-up -----------------------------------------------------------------------------
    def _rebuild_scheduler(self, now: float) -> None:
        for job in self.store.iter_jobs([S.ADMITTED, S.STARTING, S.RUNNING]):
            if job.admission is None or str(job.id) in self.scheduler:
                continue
            try:
                admission = _admission_from_json(job.id, job.admission)
                self.scheduler.restore(admission, self._spec(job), now)
            except (QuotaError, ValueError) as exc:
                self._log(logging.ERROR, "cannot restore reservation", job.id, error=str(exc))
        for job in self.store.iter_jobs([S.PENDING]):
            if str(job.id) not in self.scheduler:
                self._queue_job(job, job.created_at)

    def recover(self) -> dict[str, list[int]]:
        """Rebuild in-memory state from the store after a (re)start; see the module docstring.

        Returns job ids per outcome: ``reattached``, ``relaunch`` (admitted, never started),
        ``lost`` (processes gone; settled by the next tick from exit codes or as lost).
        """
        with self._lock:
            now = self.clock()
            self._event_cursor = self.store.last_event_id()
            self.scheduler = self.scheduler_factory(self.config)
            self._rebuild_scheduler(now)
            out: dict[str, list[int]] = {"reattached": [], "relaunch": [], "lost": []}
            report = TickReport()
            for job in self.store.iter_jobs([S.ADMITTED, S.STARTING, S.RUNNING]):
                backend = self._backend_of(job)
                if backend is None:
                    self._log(logging.ERROR, "no backend for job", job.id)
                    continue
                if job.state is S.ADMITTED:
                    # Never launched (STARTING is written before launching): launch it now.
                    out["relaunch"].append(job.id)
                    assert job.admission is not None
                    self._launch(job, _admission_from_json(job.id, job.admission), now, report)
                    continue
                handle = job.handle
                if handle is None:
                    finder = getattr(backend, "recover_handle", None)
                    handle = finder(job.id, job.attempts) if finder is not None else None
                    if handle is None:
                        out["lost"].append(job.id)
                        self._retry_or_fail(job, now, "launch interrupted by a restart", report)
                        continue
                    handle = {**handle, "launched_at": job.updated_at}
                    self.store.update_job(job.id, handle=handle)
                if backend.reattach(handle):
                    out["reattached"].append(job.id)
                else:
                    out["lost"].append(job.id)  # the next tick settles it from the poll
            self._log(logging.INFO, "recovered", None, **{k: v for k, v in out.items()})
            return out


# -- command line -----------------------------------------------------------------------------
class JsonLogFormatter(logging.Formatter):
    """One JSON object per log line, with the ``extra`` fields of the record."""

    _SKIP = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for k, v in record.__dict__.items():
            if k not in self._SKIP and v is not None:
                out[k] = v
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def build_backends(args: argparse.Namespace) -> dict[str, Backend]:
    """Backends for the command line: local always, Ray when ``--ray-address`` is given."""
    from recforge.platform.backends.local import LocalBackend

    backends: dict[str, Backend] = {
        "local": LocalBackend(
            args.runtime_dir,
            store_url=args.store,
            heartbeat_interval=args.heartbeat_interval,
        )
    }
    if args.ray_address:
        from recforge.platform.backends.ray import RayBackend

        backends["ray"] = RayBackend(
            args.ray_address, store_url=args.store, heartbeat_interval=args.heartbeat_interval
        )
    return backends


def main(argv: list[str] | None = None) -> int:
    """``python -m recforge.platform.service --store URL --runtime-dir DIR``: run the loop."""
    p = argparse.ArgumentParser(prog="python -m recforge.platform.service")
    p.add_argument("--store", required=True, help="store URL (sqlite:///... or postgresql+...)")
    p.add_argument("--runtime-dir", type=Path, required=True, help="logs/exit files of replicas")
    p.add_argument("--ray-address", default=None, help="Ray dashboard URL (enables Ray)")
    p.add_argument("--tick", type=float, default=1.0, help="seconds between idle ticks")
    p.add_argument("--heartbeat-interval", type=float, default=5.0)
    p.add_argument("--heartbeat-timeout", type=float, default=30.0, help="<= 0 disables")
    p.add_argument("--pending-deadline", type=float, default=600.0, help="<= 0 disables")
    args = p.parse_args(argv)

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLogFormatter())
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    store = Store(args.store)
    settings = ServiceSettings(
        tick_interval=args.tick,
        heartbeat_timeout=args.heartbeat_timeout if args.heartbeat_timeout > 0 else None,
        default_pending_deadline=args.pending_deadline if args.pending_deadline > 0 else None,
    )
    service = PlatformService(store, build_backends(args), settings=settings)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    service.recover()
    log.info("service started", extra={"store": store.dialect, "pid": __import__("os").getpid()})
    service.run_forever(stop)
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
