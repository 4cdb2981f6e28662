"""The job state machine against its documented table: every one of the 64 moves.

The legal moves and their effects below are copied from docs/PLATFORM.md ("The state machine
and its effects"), not from ``model/states.py``'s rules: every pair not listed is illegal, so
widening the code's table (e.g. ADMITTED -> SUCCEEDED) or narrowing it fails here.
"""

from __future__ import annotations

import itertools

import pytest

from recforge.platform.model.states import (
    ACTIVE_STATES,
    TERMINAL_STATES,
    Effect,
    InvalidTransition,
    JobState,
    allowed_targets,
    rule_for,
    transition,
)

S = JobState
E = Effect

_END = (E.STAMP_FINISHED, E.RELEASE)
_STOP_END = (E.STOP, E.STAMP_FINISHED, E.RELEASE)

#: (from, to) -> (rule name, effects), as docs/PLATFORM.md lists them; nothing else is legal.
DOCUMENTED: dict[tuple[JobState, JobState], tuple[str, tuple[Effect, ...]]] = {
    (S.PENDING, S.ADMITTED): ("admit", (E.STAMP_ADMITTED,)),
    (S.ADMITTED, S.STARTING): ("launch", ()),
    (S.STARTING, S.RUNNING): ("all-replicas-running", (E.STAMP_STARTED,)),
    (S.STARTING, S.SUCCEEDED): ("succeed", _END),
    (S.RUNNING, S.SUCCEEDED): ("succeed", _END),
    (S.STARTING, S.FAILED): ("fail", _STOP_END),
    (S.RUNNING, S.FAILED): ("fail", _STOP_END),
    (S.ADMITTED, S.FAILED): ("launch-failed", _END),
    (S.ADMITTED, S.BACKOFF): ("evict-or-retry", (E.STOP, E.EVICT)),
    (S.STARTING, S.BACKOFF): ("evict-or-retry", (E.STOP, E.EVICT)),
    (S.RUNNING, S.BACKOFF): ("evict-or-retry", (E.STOP, E.EVICT)),
    (S.BACKOFF, S.PENDING): ("backoff-expired", (E.REQUEUE,)),
    (S.PENDING, S.FAILED): ("give-up", _END),
    (S.BACKOFF, S.FAILED): ("give-up", _END),
    **{(s, S.CANCELLED): ("cancel", _STOP_END)
       for s in (S.PENDING, S.ADMITTED, S.STARTING, S.RUNNING, S.BACKOFF)},
}

ALL_MOVES = list(itertools.product(JobState, JobState))
ILLEGAL = [m for m in ALL_MOVES if m not in DOCUMENTED]


def test_the_documented_table_has_the_expected_size() -> None:
    # 8 states: 64 ordered pairs, 19 legal moves (14 rows of the table + 5 cancels).
    assert len(JobState) == 8
    assert len(DOCUMENTED) == 19
    assert len(ILLEGAL) == 64 - 19


@pytest.mark.parametrize(("cur", "tgt"), list(DOCUMENTED), ids=lambda s: s.value)
def test_every_documented_move_is_legal_with_its_rule_and_effects(
    cur: JobState, tgt: JobState
) -> None:
    rule, effects = DOCUMENTED[(cur, tgt)]
    ev = transition(cur, tgt, "why")
    assert (ev.from_state, ev.to_state, ev.rule) == (cur, tgt, rule)
    assert ev.effects == effects
    assert ev.reason == "why"


@pytest.mark.parametrize(("cur", "tgt"), ILLEGAL, ids=lambda s: s.value)
def test_every_other_move_is_illegal(cur: JobState, tgt: JobState) -> None:
    with pytest.raises(InvalidTransition, match=f"{cur.value} -> {tgt.value}") as info:
        transition(cur, tgt, "why")
    assert (info.value.current, info.value.target) == (cur, tgt)
    assert rule_for(cur, tgt).allow is False


def test_allowed_targets_is_exactly_the_documented_row() -> None:
    for cur in JobState:
        expected = {t for (s, t) in DOCUMENTED if s == cur}
        assert allowed_targets(cur) == expected, cur


def test_the_moves_named_by_issue_14_are_illegal() -> None:
    for cur, tgt in [(S.ADMITTED, S.SUCCEEDED), (S.BACKOFF, S.RUNNING),
                     (S.STARTING, S.PENDING), (S.ADMITTED, S.PENDING)]:
        with pytest.raises(InvalidTransition):
            transition(cur, tgt, "why")


def test_state_classes_match_the_docs() -> None:
    assert {S.SUCCEEDED, S.FAILED, S.CANCELLED} == TERMINAL_STATES
    assert {S.ADMITTED, S.STARTING, S.RUNNING} == ACTIVE_STATES
    # Every move out of an active state releases or hands back its quota, or stays active.
    for (cur, tgt), (_rule, effects) in DOCUMENTED.items():
        if cur in ACTIVE_STATES and tgt not in ACTIVE_STATES:
            assert E.RELEASE in effects or E.EVICT in effects, (cur, tgt)
