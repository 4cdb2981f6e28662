"""The one door to the in-memory scheduler: every call holds its lock, and only for the call.

The scheduler is not thread-safe; the API threads (submit, explain, config changes) and the
reconciler (the pass, quota releases) share it through this gate. Nothing slow happens under the
lock: no database access, no launch, no backend call. A configuration change replaces the
scheduler at once (:meth:`SchedulerGate.rebuild`), so the next pass uses it.

Submissions never wait for a pass: :meth:`SchedulerGate.validate` asks a second scheduler built
from the same configuration (one that never schedules, so only its configuration is read, under
its own lock), and :meth:`SchedulerGate.enqueue` puts a stored job in an inbox that every locked
call empties into the scheduler first (a pass, an explanation, a release), so the scheduler sees
jobs in the order they were stored and nobody sees a stale queue.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from recforge.platform.model.admission import Admission
from recforge.platform.model.config import PlatformConfig
from recforge.platform.model.specs import JobSpec
from recforge.platform.scheduling import Explanation, Preemption, Scheduler, UnknownJob
from recforge.platform.scheduling.overview import Overview, overview

__all__ = ["PassResult", "SchedulerGate"]

log = logging.getLogger("recforge.platform.service")
#: what to do when a job from the inbox cannot be queued (the configuration changed under it).
OnError = Callable[[Exception], None]


@dataclass(frozen=True)
class PassResult:
    """What one pass decided."""

    admissions: list[Admission]
    preemptions: list[Preemption]
    next_event_time: float | None


class SchedulerGate:
    """Thread-safe access to the scheduler built by ``factory`` from the configuration."""

    def __init__(
        self, config: PlatformConfig, factory: Callable[[PlatformConfig], Scheduler]
    ) -> None:
        self.factory = factory
        self._lock = threading.Lock()
        self._scheduler = factory(config)
        self._validator_lock = threading.Lock()
        self._validator = factory(config)  # same configuration, never schedules
        # (job id, spec, enqueued at, on_error); deque appends and pops are atomic.
        self._inbox: deque[tuple[int, JobSpec, float, OnError]] = deque()

    def validate(self, spec: JobSpec, job_id: str) -> list[str]:
        """Clusters ``spec`` could ever run on (raises what :meth:`Scheduler.validate` raises);
        never waits for a pass."""
        with self._validator_lock:
            return self._validator.validate(spec, job_id)

    def submit(self, job_id: int, spec: JobSpec, now: float) -> bool:
        """Queue a job (no-op if already queued); raises what :meth:`Scheduler.submit` raises."""
        with self._locked():
            return self._submit(job_id, spec, now)

    def enqueue(self, job_id: int, spec: JobSpec, now: float, on_error: OnError) -> None:
        """Queue a stored job without waiting for the scheduler's lock: it goes in at the start
        of the next locked call. If the scheduler refuses it then (the configuration changed
        since the job was checked), ``on_error(exc)`` is called, outside the lock."""
        self._inbox.append((job_id, spec, now, on_error))

    def _submit(self, job_id: int, spec: JobSpec, now: float) -> bool:
        if str(job_id) in self._scheduler:
            return False
        self._scheduler.submit(str(job_id), spec, now)
        return True

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the lock with the inbox emptied into the scheduler; refusals are reported once
        the lock is released."""
        refused: list[tuple[OnError, Exception]] = []
        with self._lock:
            while self._inbox:
                job_id, spec, now, on_error = self._inbox.popleft()
                try:
                    self._submit(job_id, spec, now)
                except ValueError as exc:  # QuotaError, UnknownQueue, InfeasibleJob
                    refused.append((on_error, exc))
            yield
        for on_error, why in refused:
            try:
                on_error(why)
            except Exception:  # the job stays PENDING in the store; a rebuild retries it
                log.exception("handling a refused job failed")

    def restore(self, admission: Admission, spec: JobSpec, now: float) -> None:
        with self._locked():
            if admission.job_id not in self._scheduler:
                self._scheduler.restore(admission, spec, now)

    def forget(self, job_id: int) -> None:
        """Drop a job in any state, releasing its quota (no-op if unknown)."""
        with self._locked(), contextlib.suppress(UnknownJob):
            self._scheduler.remove(str(job_id))

    def knows(self, job_id: int) -> bool:
        with self._locked():
            return str(job_id) in self._scheduler

    def schedule(self, now: float) -> PassResult:
        with self._locked():
            admissions = self._scheduler.schedule(now)
            return PassResult(
                admissions, self._scheduler.take_preemptions(), self._scheduler.next_event_time()
            )

    def explain(self, job_id: int, now: float) -> Explanation | None:
        """The scheduler's explanation, or None if it does not hold the job."""
        with self._locked():
            if str(job_id) not in self._scheduler:
                return None
            return self._scheduler.explain(str(job_id), now)

    def overview(self) -> Overview:
        """Queues and quota usage as the scheduler holds them now (:mod:`~recforge.platform.
        scheduling.overview`), the inbox emptied into it first."""
        with self._locked():
            return overview(self._scheduler)

    def rebuild(
        self,
        config: PlatformConfig,
        jobs: Callable[[], tuple[Iterable[tuple[Admission, JobSpec]],
                                 Iterable[tuple[int, JobSpec, float]]]],
        now: float,
    ) -> list[tuple[int, Exception]]:
        """Replace the scheduler with one built from ``config``; ``jobs()`` (called under the
        lock, so no submission slips between reading and swapping) gives the admitted jobs to
        re-install and the pending ones to queue. Returns the jobs that could not be taken back,
        with why."""
        with self._lock:
            # Every job in the inbox is stored, so ``jobs()`` lists it (or it has moved on).
            self._inbox.clear()
            fresh = self.factory(config)
            admitted, pending = jobs()
            failed: list[tuple[int, Exception]] = []
            for admission, spec in admitted:
                try:
                    fresh.restore(admission, spec, now)
                except ValueError as exc:  # QuotaError included
                    failed.append((int(admission.job_id), exc))
            for job_id, spec, enqueued in pending:
                try:
                    fresh.submit(str(job_id), spec, enqueued)
                except ValueError as exc:
                    failed.append((job_id, exc))
            self._scheduler = fresh
        with self._validator_lock:
            self._validator = self.factory(config)
        return failed

    @property
    def stats(self) -> object:
        return self._scheduler.stats
