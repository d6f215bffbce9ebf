"""``mug.Random`` draws from one generator per session: concurrent sessions of a scene do not share a stream."""

from __future__ import annotations

import mug
from mug.examples import CoinGrid
from mug.session import GameSession, MemoryRecorder, MemoryTransport

STEPS = 40


def scene():
    return (
        mug.GymScene("coins")
        .environment(CoinGrid, {"max_steps": 100}, seed=5)
        .policies({"agent_0": mug.Random, "agent_1": mug.Random})
        .gameplay(max_steps=100)
        .runtime(policy_seed=9)
    )


def new_session(game, name):
    recorder = MemoryRecorder()
    session = GameSession(game, ["c"], MemoryTransport(), recorder, clock=lambda: 0.0, session_id=name, render=False)
    session.start()
    return session, recorder


def actions(recorder):
    return [(step["actions"]["agent_0"], step["actions"]["agent_1"]) for step in recorder.of_kind("step")]


def test_interleaved_sessions_each_draw_what_a_solo_session_draws():
    game = scene()
    solo, solo_record = new_session(game, "solo")
    for _ in range(STEPS):
        solo.tick()
    expected = actions(solo_record)
    assert len(set(expected)) > 5  # the draws vary, so a shared stream would show

    first, first_record = new_session(game, "first")
    first.tick()
    second, second_record = new_session(game, "second")  # starting a session must not reseed the first one's stream
    for _ in range(STEPS - 1):
        second.tick()
        first.tick()
    second.tick()
    assert actions(first_record) == expected
    assert actions(second_record) == expected
