"""Start-up after a crash (``kill -9``) or a clean stop: rebuild memory from the store.

:func:`recover` rebuilds the scheduler (the reservations of admitted and running jobs, the
pending queue), re-attaches launched jobs through their backend, and leaves jobs that ended while
the service was down to the next poll (their exit codes are on disk). Nothing is relaunched while
its processes live: STARTING and RUNNING jobs are only polled.

A crash between ``ADMITTED -> STARTING`` (committed before the launch) and storing the handle
leaves a STARTING job without a handle: the backend rebuilds it (``recover_handle``: the local
replicas' pid files once the old host has drained its input, Ray's deterministic submission id).
If nothing of the attempt was started and the backend is sure of it
(``Backend.recovers_launches``), the same attempt is launched again: the crash was the
platform's, not the job's, so it costs no attempt. A backend that cannot tell leaves the attempt
counted as failed (retried if the job's policy allows). Jobs admitted but never launched are
launched now; jobs in backoff resume their wait; cancellations requested before the crash are
applied.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from recforge.platform.backends.base import BackendError
from recforge.platform.model.admission import admission_from_json
from recforge.platform.model.specs import JobSpec
from recforge.platform.model.states import JobState
from recforge.platform.runtime.reconciler import TickReport

if TYPE_CHECKING:
    from recforge.platform.runtime.service import PlatformService

__all__ = ["rebuild_scheduler", "recover"]

log = logging.getLogger("recforge.platform.service")
S = JobState


def rebuild_scheduler(service: PlatformService) -> None:
    """Replace the scheduler with one built from the current configuration and the store's
    admitted, running and pending jobs; jobs it cannot take back fail, naming why."""
    store = service.store

    def jobs() -> tuple[list, list]:  # type: ignore[type-arg]
        admitted = [
            (admission_from_json(j.id, j.admission), JobSpec.model_validate(j.spec))
            for j in store.iter_jobs([S.ADMITTED, S.STARTING, S.RUNNING])
            if j.admission is not None
        ]
        pending = [
            (j.id, JobSpec.model_validate(j.spec), j.updated_at)
            for j in store.iter_jobs([S.PENDING])
        ]
        return admitted, pending

    failed = service.gate.rebuild(service.config, jobs, service.clock())
    for job_id, exc in failed:
        log.error("cannot restore job in the scheduler", extra={"job_id": job_id,
                                                                "error": str(exc)})  # fmt: skip
        job = store.get_job(job_id)
        if job.state is S.PENDING:
            service.transitions.move(job, S.FAILED, f"cannot be scheduled: {exc}")


def recover(service: PlatformService) -> dict[str, list[int]]:
    """Rebuild in-memory state after a (re)start; returns job ids per outcome: ``reattached``,
    ``relaunch`` (admitted, never started), ``lost`` (processes gone; settled by the next tick
    from exit codes, or retried)."""
    store, loop = service.store, service.reconciler
    now = service.clock()
    rebuild_scheduler(service)
    out: dict[str, list[int]] = {"reattached": [], "relaunch": [], "lost": []}
    report = TickReport()
    for job in store.iter_jobs([S.ADMITTED, S.STARTING, S.RUNNING]):
        backend = service.transitions.backend_of(job)
        if backend is None:
            log.error("no backend for job", extra={"job_id": job.id})
            continue
        if job.state is S.ADMITTED:
            # Never launched (STARTING is written before launching): launch it now.
            out["relaunch"].append(job.id)
            assert job.admission is not None
            loop.launch(job, admission_from_json(job.id, job.admission), now, report)
            continue
        handle = job.handle
        if handle is None:
            try:
                handle = backend.recover_handle(job.id, job.attempts)
                certain = backend.recovers_launches
            except BackendError as exc:
                log.warning("cannot recover an interrupted launch", extra={"job_id": job.id,
                                                                           "error": str(exc)})
                handle, certain = None, False
            if handle is None and certain and job.admission is not None:
                out["relaunch"].append(job.id)
                log.info("interrupted launch started nothing: launching the attempt again",
                         extra={"job_id": job.id, "attempt": job.attempts})  # fmt: skip
                loop.relaunch(job, admission_from_json(job.id, job.admission), now, report)
                continue
            if handle is None:
                out["lost"].append(job.id)
                loop.retry_or_fail(job, now, "launch interrupted by a restart", report)
                continue
            handle = {**handle, "launched_at": job.updated_at}
            store.update_job(job.id, handle=handle)
        if backend.reattach(handle):
            out["reattached"].append(job.id)
        else:
            out["lost"].append(job.id)  # the next tick settles it from the poll
    for job in store.iter_jobs([S.STARTING, S.RUNNING]):
        loop.track(job)  # watched from memory from now on
    for job in store.iter_jobs([S.BACKOFF]):
        loop.backoff_until(job.id, job.not_before or now)
    for job in store.iter_jobs([S.PENDING, S.ADMITTED, S.STARTING, S.RUNNING, S.BACKOFF],
                               cancel_requested=True):  # fmt: skip
        service.cancel_now(job, "cancel requested before the restart")
    log.info("recovered", extra=dict(out))
    return out
