"""The job state machine: states, legal transitions and the event they produce.

States (minimal set; a job is in exactly one)::

    PENDING   stored, waiting for the scheduler to admit it (quota not reserved)
    ADMITTED  quota for the whole gang reserved on one cluster, not yet launched
    STARTING  launched on the backend, not every replica reported running yet
    RUNNING   every replica of the gang runs
    BACKOFF   evicted or failed with retries left; waits ``not_before`` then goes back to PENDING
    SUCCEEDED terminal: every replica exited 0
    FAILED    terminal: a replica failed/was lost with no retries left, or a deadline expired
    CANCELLED terminal: cancelled by a user or an admin

Rules are an ordered list of policies in the spirit of Prefect's orchestration rules: the first
policy that matches ``(current, target)`` decides; if none matches, the move is illegal. Nothing
leaves a terminal state, and a state never "transitions" to itself (callers must not record
no-op events).

This module is pure: :func:`transition` validates a move and returns the event to record. Storing
the event together with the new state (atomically, with a compare-and-set on the job's version) is
the job of :meth:`recforge.platform.store.Store.transition`, the only place job state changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "ACTIVE_STATES",
    "RULES",
    "TERMINAL_STATES",
    "InvalidTransition",
    "JobState",
    "Rule",
    "TransitionEvent",
    "allowed_targets",
    "is_terminal",
    "transition",
]


class JobState(StrEnum):
    """Lifecycle states of a job (stored by value in the database)."""

    PENDING = "PENDING"
    ADMITTED = "ADMITTED"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    BACKOFF = "BACKOFF"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


TERMINAL_STATES: frozenset[JobState] = frozenset(
    {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED}
)
#: states that hold a quota reservation (and, from STARTING on, processes on a backend).
ACTIVE_STATES: frozenset[JobState] = frozenset(
    {JobState.ADMITTED, JobState.STARTING, JobState.RUNNING}
)


class InvalidTransition(ValueError):
    """Raised for a move the rules forbid, e.g. SUCCEEDED -> RUNNING."""

    def __init__(self, current: JobState | str, target: JobState | str, why: str) -> None:
        self.current = JobState(current)
        self.target = JobState(target)
        super().__init__(f"illegal job state transition {self.current} -> {self.target}: {why}")


@dataclass(frozen=True)
class Rule:
    """One orchestration policy: ``allow`` decides every move from ``sources`` to ``targets``."""

    name: str
    sources: frozenset[JobState]
    targets: frozenset[JobState]
    allow: bool
    why: str

    def matches(self, current: JobState, target: JobState) -> bool:
        return current in self.sources and target in self.targets


def _rule(name: str, sources: set[JobState], targets: set[JobState], allow: bool, why: str) -> Rule:
    return Rule(name, frozenset(sources), frozenset(targets), allow, why)


_ALL = set(JobState)
S = JobState

#: ordered policies; the first match wins.
RULES: tuple[Rule, ...] = (
    _rule("terminal-is-final", set(TERMINAL_STATES), _ALL, False, "a finished job never changes"),
    _rule("admit", {S.PENDING}, {S.ADMITTED}, True, "quota reserved"),
    _rule("launch", {S.ADMITTED}, {S.STARTING}, True, "launched on a backend"),
    _rule("all-replicas-running", {S.STARTING}, {S.RUNNING}, True, "gang is up"),
    _rule(
        "finish",
        {S.STARTING, S.RUNNING},
        {S.SUCCEEDED, S.FAILED},
        True,
        "replicas finished (short jobs may finish before RUNNING is observed)",
    ),
    _rule(
        "launch-failed",
        {S.ADMITTED},
        {S.FAILED},
        True,
        "the backend refused the launch and no retries are left",
    ),
    _rule(
        "evict-or-retry",
        {S.ADMITTED, S.STARTING, S.RUNNING},
        {S.BACKOFF},
        True,
        "evicted (pending deadline) or failed with retries left",
    ),
    _rule("backoff-expired", {S.BACKOFF}, {S.PENDING}, True, "backoff elapsed, requeued"),
    _rule("give-up", {S.PENDING, S.BACKOFF}, {S.FAILED}, True, "admission impossible/deadline"),
    _rule("cancel", _ALL - set(TERMINAL_STATES), {S.CANCELLED}, True, "cancelled"),
)


def _check(current: JobState, target: JobState) -> tuple[bool, str, str]:
    """Return ``(allowed, rule_name, why)`` for a move."""
    if current == target and current not in TERMINAL_STATES:
        return False, "no-self-transition", "no-op transitions are not recorded"
    for rule in RULES:
        if rule.matches(current, target):
            return rule.allow, rule.name, rule.why
    return False, "default-deny", "no rule allows it"


def allowed_targets(current: JobState | str) -> frozenset[JobState]:
    """Every state reachable from ``current`` in one legal move."""
    cur = JobState(current)
    return frozenset(t for t in JobState if _check(cur, t)[0])


def is_terminal(state: JobState | str) -> bool:
    """Whether ``state`` is SUCCEEDED, FAILED or CANCELLED."""
    return JobState(state) in TERMINAL_STATES


@dataclass(frozen=True)
class TransitionEvent:
    """A validated move, ready to be stored as an event row."""

    from_state: JobState
    to_state: JobState
    reason: str
    rule: str


def transition(current: JobState | str, target: JobState | str, reason: str) -> TransitionEvent:
    """Validate ``current -> target`` and return the event; raise :class:`InvalidTransition`.

    ``reason`` is a short human-readable cause ("admitted on cluster local", "replica 1 lost").
    """
    try:
        cur, tgt = JobState(current), JobState(target)
    except ValueError as exc:
        known = ", ".join(s.value for s in JobState)
        raise ValueError(
            f"unknown job state in transition {current!r} -> {target!r}; known states: {known}"
        ) from exc
    if not reason or not reason.strip():
        raise ValueError(f"transition {cur} -> {tgt} needs a non-empty reason")
    allowed, rule, why = _check(cur, tgt)
    if not allowed:
        raise InvalidTransition(cur, tgt, why)
    return TransitionEvent(cur, tgt, reason.strip(), rule)
