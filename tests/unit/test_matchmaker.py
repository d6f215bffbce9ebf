"""Groups and seats: a researcher's matchmaker or seats function never wedges the room."""

from __future__ import annotations

import pytest

from mug.scenes.matching import Candidate
from mug.server.matches.matchmaker import assign_seats, choose_group

WAITING = [Candidate(pid, waited_s=10 - i, rtt_ms=20.0) for i, pid in enumerate(["a", "b", "c"])]


@pytest.mark.parametrize(
    "answer",
    [["a"], ["a", "a"], ["a", "zed"], "ab", 42, {"a": 1, "b": 2}],
    ids=["too few", "twice", "unknown id", "a string", "a number", "a dict"],
)
def test_an_unusable_answer_falls_back_to_first_come_first_served(answer):
    group, problem = choose_group(WAITING, 2, lambda candidates, seats: answer, "duo")
    assert group == ["a", "b"] and problem is not None and repr(answer) in problem


def test_a_matchmaker_may_wait_or_choose():
    assert choose_group(WAITING, 2, lambda c, s: None, "duo") == (None, None)
    assert choose_group(WAITING, 2, lambda c, s: ("c", "a"), "duo") == (["c", "a"], None)
    assert choose_group(WAITING[:1], 2, None, "duo") == (None, None)


def test_a_bad_seats_function_falls_back_to_the_seeded_seats():
    default, _ = assign_seats(["a", "b"], ["x", "y"], 1, "m-1", None)
    for bad in (lambda p, a, s: {"x": "a"}, lambda p, a, s: {"x": "a", "z": "b"}, lambda p, a, s: 1 / 0):
        seats, problem = assign_seats(["a", "b"], ["x", "y"], 1, "m-1", bad)
        assert seats == default and problem is not None


def test_seats_with_fewer_members_than_agents_leave_seats_empty():
    seats, _ = assign_seats(["a"], ["x", "y", "z"], 5, "m-2", None)
    assert list(seats.values()) == ["a"] and set(seats) <= {"x", "y", "z"}


def test_a_matchmaker_answering_with_candidates_not_ids_falls_back():
    """The natural slip ``return candidates[:seats]`` (Candidates hold dicts: unhashable) is an unusable answer."""
    group, problem = choose_group(WAITING, 2, lambda candidates, seats: candidates[:seats], "duo")
    assert group == ["a", "b"] and "distinct waiting participant ids (str)" in problem
