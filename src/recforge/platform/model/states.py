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

Side effects belong to the rules too (the table below is the one place that says what happens
when a job moves): each rule lists its :class:`Effect` s. The store applies the time stamps in the
same transaction as the move (:meth:`recforge.platform.store.Store.transition`); the runtime
applies the others (:mod:`recforge.platform.runtime.transitions`): ``STOP`` before the move is
recorded (a crash in between leaves a job whose processes are gone, which recovery settles),
the scheduler effects after it.

This module is pure: :func:`transition` validates a move and returns the event to record.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "ACTIVE_STATES",
    "RULES",
    "TERMINAL_STATES",
    "Effect",
    "InvalidTransition",
    "JobState",
    "Rule",
    "TransitionEvent",
    "allowed_targets",
    "is_terminal",
    "rule_for",
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


class Effect(StrEnum):
    """What happens, besides the state change, when a rule applies."""

    STAMP_ADMITTED = "stamp admitted_at"  # store: the time of the move
    STAMP_STARTED = "stamp started_at"
    STAMP_FINISHED = "stamp finished_at"
    STOP = "stop replicas"  # runtime, before the move: the backend stops what still runs
    RELEASE = "release quota"  # runtime, after: the scheduler forgets the job, frees its quota
    EVICT = "evict"  # runtime, after: the scheduler takes the quota back, the job waits (backoff)
    REQUEUE = "requeue"  # runtime, after: the scheduler queues the job again

    @property
    def column(self) -> str | None:
        """The job column a stamp effect sets to the time of the move."""
        return self.value.removeprefix("stamp ") if self.value.startswith("stamp ") else None


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
    effects: tuple[Effect, ...] = ()

    def matches(self, current: JobState, target: JobState) -> bool:
        return current in self.sources and target in self.targets


def _rule(
    name: str,
    sources: set[JobState],
    targets: set[JobState],
    allow: bool,
    why: str,
    *effects: Effect,
) -> Rule:
    return Rule(name, frozenset(sources), frozenset(targets), allow, why, effects)


_ALL = set(JobState)
S = JobState
E = Effect

#: ordered policies; the first match wins.
RULES: tuple[Rule, ...] = (
    _rule("terminal-is-final", set(TERMINAL_STATES), _ALL, False, "a finished job never changes"),
    _rule("admit", {S.PENDING}, {S.ADMITTED}, True, "quota reserved", E.STAMP_ADMITTED),
    _rule("launch", {S.ADMITTED}, {S.STARTING}, True, "launched on a backend"),
    _rule("all-replicas-running", {S.STARTING}, {S.RUNNING}, True, "gang is up", E.STAMP_STARTED),
    _rule(
        "succeed",
        {S.STARTING, S.RUNNING},
        {S.SUCCEEDED},
        True,
        "every replica exited 0 (short jobs may finish before RUNNING is observed)",
        E.STAMP_FINISHED,
        E.RELEASE,
    ),
    _rule(
        "fail",
        {S.STARTING, S.RUNNING},
        {S.FAILED},
        True,
        "a replica failed or a deadline expired, and no retries are left",
        E.STOP,
        E.STAMP_FINISHED,
        E.RELEASE,
    ),
    _rule(
        "launch-failed",
        {S.ADMITTED},
        {S.FAILED},
        True,
        "the backend refused the launch and no retries are left",
        E.STAMP_FINISHED,
        E.RELEASE,
    ),
    _rule(
        "evict-or-retry",
        {S.ADMITTED, S.STARTING, S.RUNNING},
        {S.BACKOFF},
        True,
        "evicted (pending deadline, preemption) or failed with retries left",
        E.STOP,
        E.EVICT,
    ),
    _rule("backoff-expired", {S.BACKOFF}, {S.PENDING}, True, "backoff elapsed", E.REQUEUE),
    _rule(
        "give-up",
        {S.PENDING, S.BACKOFF},
        {S.FAILED},
        True,
        "admission impossible/deadline",
        E.STAMP_FINISHED,
        E.RELEASE,
    ),
    _rule(
        "cancel",
        _ALL - set(TERMINAL_STATES),
        {S.CANCELLED},
        True,
        "cancelled",
        E.STOP,
        E.STAMP_FINISHED,
        E.RELEASE,
    ),
)


_SELF = Rule("no-self-transition", frozenset(), frozenset(), False,
             "no-op transitions are not recorded")  # fmt: skip
_DENY = Rule("default-deny", frozenset(), frozenset(), False, "no rule allows it")


def rule_for(current: JobState, target: JobState) -> Rule:
    """The rule that decides ``current -> target`` (a denying one when the move is illegal)."""
    if current == target and current not in TERMINAL_STATES:
        return _SELF
    for rule in RULES:
        if rule.matches(current, target):
            return rule
    return _DENY


def _check(current: JobState, target: JobState) -> tuple[bool, str, str]:
    """Return ``(allowed, rule_name, why)`` for a move."""
    rule = rule_for(current, target)
    return rule.allow, rule.name, rule.why


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
    effects: tuple[Effect, ...] = ()


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
    rule = rule_for(cur, tgt)
    if not rule.allow:
        raise InvalidTransition(cur, tgt, rule.why)
    return TransitionEvent(cur, tgt, reason.strip(), rule.name, rule.effects)
