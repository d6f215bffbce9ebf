"""The simulated participants' Python face (``mug.simulate``, ``SimulatedParticipant``) against a real server."""

from __future__ import annotations

import pytest

import mug
from mug.errors import MugError
from mug.examples.demo import demo_study
from mug.server.simulate import SimulatedParticipant, simulate
from mug.server.store import Store
from tests.bots import DEMO_ANSWERS, run_async
from tests.e2e.studies import cartpole_realtime


def test_new_participants_get_their_ids_from_the_study_and_each_completes(tmp_path):
    async def main():
        deployment = mug.deploy(demo_study(episodes=1, max_steps=5), port=0, data_dir=tmp_path)
        try:
            return await mug.simulate(deployment.url, 3, answers=DEMO_ANSWERS)
        finally:
            deployment.stop()

    results = run_async(main())
    ids = [r.participant_id for r in results]
    assert len(set(ids)) == 3 and all(len(i) == 32 for i in ids)  # the study's redirect gave each a new id
    assert all(r.completion_code == "MUGDEMO" and r.ended == "end" and r.errors == [] for r in results)
    assert all(r.cookie and r.cookie.startswith(f"mug_{r.participant_id}=") for r in results)
    store = Store(tmp_path, readonly=True)
    assert sorted(p["participant_id"] for p in store.participants()) == sorted(ids)
    store.close()


def test_a_disconnect_span_comes_back_as_the_same_browser_into_the_same_session(tmp_path):
    async def main():
        deployment = mug.deploy(cartpole_realtime, port=0, data_dir=tmp_path)
        bot = SimulatedParticipant(deployment.url, "flaky", keys=["ArrowLeft", "ArrowRight"], disconnect=[(1.0, 0.5)])
        try:
            return await bot.run(stop_after_acks=90, timeout=60)
        finally:
            deployment.stop()

    stats = run_async(main())
    assert stats.reconnects == 1 and stats.errors == [] and stats.ended == "acks"
    assert stats.scenes == ["cartpole", "cartpole"]  # the scene again on reconnecting...
    steps = [step for episode, step in stats.steps if episode == 0]
    # ...and the game went on where it was (the frame current at the reconnect is sent again, once)
    assert steps == sorted(steps) and len(steps) - len(set(steps)) <= stats.reconnects
    store = Store(tmp_path, readonly=True)
    stored = [s for s in store.steps("cartpole") if s["participant_id"] == "flaky"]
    store.close()
    assert len(stored) >= stats.acked_steps == 90


def test_without_node_the_error_says_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no node here
    with pytest.raises(MugError, match=r"need Node\.js \(>= 20\) on PATH"):
        run_async(simulate("http://127.0.0.1:9/", 1))


def test_options_belong_to_a_number_of_participants():
    bots = [SimulatedParticipant("http://127.0.0.1:9/", "a")]
    with pytest.raises(TypeError, match=r"options \['keys'\] only apply when participants is a number"):
        run_async(simulate("http://127.0.0.1:9/", bots, keys=["x"]))
