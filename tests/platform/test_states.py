"""The job state machine: legal and illegal moves."""

from __future__ import annotations

import pytest

from recforge.platform.model.states import (
    TERMINAL_STATES,
    InvalidTransition,
    JobState,
    allowed_targets,
    transition,
)

S = JobState

LEGAL = [
    (S.PENDING, S.ADMITTED),
    (S.ADMITTED, S.STARTING),
    (S.STARTING, S.RUNNING),
    (S.RUNNING, S.SUCCEEDED),
    (S.RUNNING, S.FAILED),
    (S.STARTING, S.SUCCEEDED),
    (S.STARTING, S.BACKOFF),
    (S.RUNNING, S.BACKOFF),
    (S.ADMITTED, S.BACKOFF),
    (S.BACKOFF, S.PENDING),
    (S.BACKOFF, S.FAILED),
    (S.PENDING, S.FAILED),
    (S.ADMITTED, S.FAILED),
    (S.PENDING, S.CANCELLED),
    (S.RUNNING, S.CANCELLED),
    (S.BACKOFF, S.CANCELLED),
]

ILLEGAL = [
    (S.SUCCEEDED, S.RUNNING),
    (S.FAILED, S.PENDING),
    (S.CANCELLED, S.RUNNING),
    (S.PENDING, S.RUNNING),  # must be admitted and launched first
    (S.PENDING, S.STARTING),
    (S.ADMITTED, S.RUNNING),
    (S.RUNNING, S.STARTING),
    (S.RUNNING, S.PENDING),  # requeue goes through BACKOFF
    (S.BACKOFF, S.ADMITTED),
    (S.PENDING, S.SUCCEEDED),
    (S.RUNNING, S.RUNNING),
]


@pytest.mark.parametrize(("cur", "tgt"), LEGAL)
def test_legal_moves_return_event(cur: JobState, tgt: JobState) -> None:
    ev = transition(cur, tgt, "  because  ")
    assert (ev.from_state, ev.to_state, ev.reason) == (cur, tgt, "because")
    assert ev.rule


@pytest.mark.parametrize(("cur", "tgt"), ILLEGAL)
def test_illegal_moves_raise(cur: JobState, tgt: JobState) -> None:
    with pytest.raises(InvalidTransition, match=f"{cur.value} -> {tgt.value}"):
        transition(cur, tgt, "x")


def test_nothing_leaves_a_terminal_state() -> None:
    for term in TERMINAL_STATES:
        assert allowed_targets(term) == frozenset()
        for tgt in JobState:
            with pytest.raises(InvalidTransition):
                transition(term, tgt, "x")


def test_every_non_terminal_state_can_be_cancelled_and_reach_an_end() -> None:
    for st in set(JobState) - TERMINAL_STATES:
        assert S.CANCELLED in allowed_targets(st)
        assert allowed_targets(st) & {S.FAILED, S.SUCCEEDED}


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match=r"unknown job state.*'DONE'"):
        transition("PENDING", "DONE", "x")
    with pytest.raises(ValueError, match="non-empty reason"):
        transition("PENDING", "ADMITTED", " ")
    assert transition("PENDING", "ADMITTED", "ok").to_state is S.ADMITTED
