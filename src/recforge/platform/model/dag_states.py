"""The state machines of a DAG run and of its nodes: states, legal moves, the event they make.

A DAG run::

    PENDING    stored, not started (its directory not made yet)
    RUNNING    nodes are being submitted and watched
    SUCCEEDED  terminal: every node succeeded
    FAILED     terminal: a node failed (after its retries); the rest was skipped, cancelled or
               ran to its end, as the failure policy says
    CANCELLED  terminal: cancelled by a user, an admin or a schedule's ``replace`` policy

A run becomes terminal only once none of its node jobs runs any more, so a finished run never
leaves processes behind. A node::

    WAITING    its upstream nodes have not all succeeded yet
    SUBMITTED  its job exists (its own state: the job's); the job id is recorded with the move
    SUCCEEDED / FAILED / CANCELLED   terminal: how its job ended
    SKIPPED    terminal: an upstream node failed or was skipped, or the run stopped first

As for jobs (:mod:`recforge.platform.model.states`), the rules are an ordered list whose first
match decides; nothing leaves a terminal state and a state never moves to itself. The store
records every move with a compare-and-set and an event row
(:meth:`recforge.platform.store.dags.DagStore.move_run`, ``move_node``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar

__all__ = [
    "NODE_MACHINE",
    "RUN_MACHINE",
    "InvalidMove",
    "Machine",
    "NodeState",
    "RunState",
]


class RunState(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


class NodeState(StrEnum):
    WAITING = "WAITING"
    SUBMITTED = "SUBMITTED"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    SKIPPED = "SKIPPED"


E = TypeVar("E", bound=StrEnum)


class InvalidMove(ValueError):
    """A move the rules forbid (e.g. a SUCCEEDED run to RUNNING)."""


@dataclass(frozen=True)
class _Rule(Generic[E]):
    name: str
    sources: frozenset[E]
    targets: frozenset[E]
    allow: bool
    why: str


class Machine(Generic[E]):
    """Ordered rules over one enum of states (see the module docstring)."""

    def __init__(self, what: str, states: type[E], terminal: Iterable[E],
                 rules: list[tuple[str, set[E], set[E], bool, str]]) -> None:  # fmt: skip
        self.what = what
        self.states: type[E] = states
        self.terminal: frozenset[E] = frozenset(terminal)
        every: frozenset[E] = frozenset(states.__members__.values())
        final: _Rule[E] = _Rule("terminal-is-final", self.terminal, every, False,
                                f"a finished {what} never changes")  # fmt: skip
        listed: list[_Rule[E]] = [
            _Rule(n, frozenset(s), frozenset(t), a, w) for n, s, t, a, w in rules
        ]
        self.rules: tuple[_Rule[E], ...] = (final, *listed)

    def rule(self, current: E, target: E) -> str:
        """The name of the rule that allows ``current -> target``; :class:`InvalidMove` if
        none does."""
        if current == target:
            raise InvalidMove(f"{self.what} is {current} already: no-op moves are not recorded")
        for r in self.rules:
            if current in r.sources and target in r.targets:
                if not r.allow:
                    break
                return r.name
        else:
            r = None
        why = r.why if r is not None else "no rule allows it"
        raise InvalidMove(f"illegal {self.what} state transition {current} -> {target}: {why}")

    def is_terminal(self, state: E) -> bool:
        return state in self.terminal


R, N = RunState, NodeState

RUN_MACHINE: Machine[RunState] = Machine(
    "DAG run", RunState, {R.SUCCEEDED, R.FAILED, R.CANCELLED},
    [
        ("start", {R.PENDING}, {R.RUNNING}, True, "run directory made, nodes submitted"),
        ("succeed", {R.RUNNING}, {R.SUCCEEDED}, True, "every node succeeded"),
        ("fail", {R.RUNNING}, {R.FAILED}, True, "a node failed and nothing runs any more"),
        ("fail-to-start", {R.PENDING}, {R.FAILED}, True, "the run could not start"),
        ("cancel", {R.PENDING, R.RUNNING}, {R.CANCELLED}, True, "cancelled, nothing runs"),
    ],
)  # fmt: skip

NODE_MACHINE: Machine[NodeState] = Machine(
    "DAG node", NodeState, {N.SUCCEEDED, N.FAILED, N.CANCELLED, N.SKIPPED},
    [
        ("submit", {N.WAITING}, {N.SUBMITTED}, True, "upstream nodes succeeded: job created"),
        ("job-ended", {N.SUBMITTED}, {N.SUCCEEDED, N.FAILED, N.CANCELLED}, True,
         "the node's job ended"),
        ("skip", {N.WAITING}, {N.SKIPPED}, True, "an upstream node failed or the run stopped"),
        ("cancel", {N.WAITING}, {N.CANCELLED}, True, "the run was cancelled"),
        ("fail-to-submit", {N.WAITING}, {N.FAILED}, True, "its job could not be created"),
    ],
)  # fmt: skip
