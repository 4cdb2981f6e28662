"""Moving a job: the rule's effects around one compare-and-set in the store.

:meth:`Transitions.move` is how the runtime changes a job's state. It looks up the rule of the
move (:func:`recforge.platform.model.states.rule_for`) and applies the rule's effects: ``STOP``
(the backend stops what still runs) before the move is recorded, the time stamps inside the
store's transaction, and ``RELEASE`` / ``EVICT`` (the scheduler frees the job's quota) and
``REQUEUE`` (the scheduler queues it again) after it has committed (at the end of the store's
batch when there is one); then it logs the move. A move that lost a race (the job was elsewhere
already) changes nothing and returns None.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from recforge.platform.backends.base import Backend
from recforge.platform.model.specs import JobSpec
from recforge.platform.model.states import TERMINAL_STATES, Effect, JobState, rule_for
from recforge.platform.runtime.gate import SchedulerGate
from recforge.platform.store import ConcurrentTransition, Event, JobRecord, Store

__all__ = ["Transitions"]

log = logging.getLogger("recforge.platform.service")
_WARN = {JobState.FAILED, JobState.BACKOFF}


class Transitions:
    """Applies moves with their effects (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        gate: SchedulerGate,
        backends: Mapping[str, Backend],
        clock: Callable[[], float],
    ) -> None:
        self.store = store
        self.gate = gate
        self.backends = backends
        self.clock = clock
        #: called after every applied move with the job as it is now and the event (the
        #: reconciler keeps its view of launched jobs up to date this way).
        self.listeners: list[Callable[[JobRecord, Event], None]] = []

    def backend_of(self, job: JobRecord) -> Backend | None:
        ctype = (job.admission or {}).get("cluster_type")
        return self.backends.get(ctype) if ctype else None

    def move(
        self,
        job: JobRecord,
        to: JobState,
        reason: str,
        *,
        at: float | None = None,
        **fields: Any,
    ) -> Event | None:
        """Move ``job`` (as read) to ``to``; None if it was not in that state any more."""
        now = self.clock() if at is None else at
        rule = rule_for(job.state, to)  # an illegal move raises in the store, before any effect
        if rule.allow and Effect.STOP in rule.effects and job.handle is not None:
            backend = self.backend_of(job)
            if backend is not None:
                try:
                    backend.cancel(job.handle)
                except Exception:  # the move must happen; recovery settles what is left
                    log.exception("stopping replicas failed", extra={"job_id": job.id})
        try:
            event, moved = self.store.move(
                job.id, to, reason, expected_from=job.state, at=now, **fields
            )
        except ConcurrentTransition:
            return None
        effects = rule.effects

        def after() -> None:
            if Effect.RELEASE in effects or Effect.EVICT in effects:
                self.gate.forget(job.id)
            if Effect.REQUEUE in effects:
                self.requeue(job, now)
            level = logging.WARNING if to in _WARN else logging.INFO
            log.log(level, f"job {to.value.lower()}", extra={"job_id": job.id, "reason": reason})
            for listener in self.listeners:
                listener(moved, event)

        self.store.after_commit(after)  # in a batch: once it has committed
        return event

    def requeue(self, job: JobRecord, now: float) -> None:
        """Queue a PENDING job in the scheduler; a job that can no longer be scheduled (the
        configuration changed under it) fails, naming why."""
        try:
            self.gate.submit(job.id, JobSpec.model_validate(job.spec), now)
        except ValueError as exc:  # QuotaError, UnknownQueue, InfeasibleJob
            self.refuse(job, exc)

    def refuse(self, job: JobRecord, exc: Exception) -> None:
        """The scheduler refused to queue ``job``: it fails, naming why (unless it ended)."""
        current = self.store.get_job(job.id)
        if current.state not in TERMINAL_STATES:
            self.move(current, JobState.FAILED, f"cannot be scheduled: {exc}")
