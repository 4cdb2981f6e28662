"""The one door to the in-memory scheduler: every call holds its lock, and only for the call.

The scheduler is not thread-safe; the API threads (submit, explain, config changes) and the
reconciler (the pass, quota releases) share it through this gate. Nothing slow happens under the
lock: no database access, no launch, no backend call. A configuration change replaces the
scheduler at once (:meth:`SchedulerGate.rebuild`), so the next pass uses it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from recforge.platform.model.admission import Admission
from recforge.platform.model.config import PlatformConfig
from recforge.platform.model.specs import JobSpec
from recforge.platform.scheduling import Explanation, Preemption, Scheduler, UnknownJob

__all__ = ["PassResult", "SchedulerGate"]


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

    def validate(self, spec: JobSpec, job_id: str) -> list[str]:
        """Clusters ``spec`` could ever run on (raises what :meth:`Scheduler.validate` raises)."""
        with self._lock:
            return self._scheduler.validate(spec, job_id)

    def submit(self, job_id: int, spec: JobSpec, now: float) -> bool:
        """Queue a job (no-op if already queued); raises what :meth:`Scheduler.submit` raises."""
        with self._lock:
            if str(job_id) in self._scheduler:
                return False
            self._scheduler.submit(str(job_id), spec, now)
            return True

    def restore(self, admission: Admission, spec: JobSpec, now: float) -> None:
        with self._lock:
            if admission.job_id not in self._scheduler:
                self._scheduler.restore(admission, spec, now)

    def forget(self, job_id: int) -> None:
        """Drop a job in any state, releasing its quota (no-op if unknown)."""
        with self._lock, contextlib.suppress(UnknownJob):
            self._scheduler.remove(str(job_id))

    def knows(self, job_id: int) -> bool:
        with self._lock:
            return str(job_id) in self._scheduler

    def schedule(self, now: float) -> PassResult:
        with self._lock:
            admissions = self._scheduler.schedule(now)
            return PassResult(
                admissions, self._scheduler.take_preemptions(), self._scheduler.next_event_time()
            )

    def explain(self, job_id: int, now: float) -> Explanation | None:
        """The scheduler's explanation, or None if it does not hold the job."""
        with self._lock:
            if str(job_id) not in self._scheduler:
                return None
            return self._scheduler.explain(str(job_id), now)

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
        return failed

    @property
    def stats(self) -> object:
        return self._scheduler.stats
