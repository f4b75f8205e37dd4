"""The state machine: every one of the 49 (source, target) pairs is allowed or refused as drawn."""

from __future__ import annotations

import itertools

import pytest

from quantfleet.core.errors import UserError
from quantfleet.jobs import states
from quantfleet.jobs.states import TERMINAL, IllegalTransition, JobState, check_transition, is_terminal

S = JobState
# The table written out by hand, independently of TRANSITIONS.
ALLOWED = {
    (S.QUEUED, S.RUNNING),
    (S.QUEUED, S.CANCELLED),
    (S.QUEUED, S.FAILED),  # a spec this version cannot read, found at claim
    (S.RUNNING, S.SUCCEEDED),
    (S.RUNNING, S.FAILED),
    (S.RUNNING, S.TIMED_OUT),
    (S.RUNNING, S.CANCELLED),
    (S.RUNNING, S.QUEUED),
    (S.RUNNING, S.DEAD),
}
PAIRS = list(itertools.product(JobState, JobState))


def test_the_states_are_the_seven_of_the_issue() -> None:
    assert [s.value for s in JobState] == [
        "queued",
        "running",
        "succeeded",
        "failed",
        "timed_out",
        "cancelled",
        "dead",
    ]


@pytest.mark.parametrize(("source", "target"), PAIRS, ids=[f"{a}->{b}" for a, b in PAIRS])
def test_every_pair(source: JobState, target: JobState) -> None:
    if (source, target) in ALLOWED:
        check_transition(source, target)
    else:
        with pytest.raises(IllegalTransition) as caught:
            check_transition(source, target, job_id="abc")
        message = str(caught.value)
        assert f"'{source.value}'" in message
        assert f"'{target.value}'" in message
        assert "abc" in message
        assert isinstance(caught.value, UserError)
        assert (caught.value.source, caught.value.target) == (source, target)


def test_terminal_states_have_no_way_out() -> None:
    assert {S.SUCCEEDED, S.FAILED, S.TIMED_OUT, S.CANCELLED, S.DEAD} == TERMINAL
    for state in JobState:
        assert is_terminal(state) == (state in TERMINAL)
        assert is_terminal(state) == (not any(src == state for src, _ in ALLOWED))


def test_the_docstring_draws_every_state() -> None:
    doc = states.__doc__ or ""
    for state in JobState:
        assert state.value in doc


def test_strings_are_accepted() -> None:
    check_transition("queued", "running")
    with pytest.raises(IllegalTransition, match="'dead' to 'queued'"):
        check_transition("dead", "queued")
