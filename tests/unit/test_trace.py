"""The preview's Trace: arrays aligned with steps, Python-only rollouts."""

from __future__ import annotations

import asyncio
import concurrent.futures

import numpy as np
import pytest

import mug
from mug.examples.train_cartpole_lstm import DEFAULT_OUT
from mug.widgets import Trace


def run_async(coroutine):
    """``asyncio.run`` in a thread of its own: the browser tests' Playwright keeps a loop running in this one."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def test_rollout_without_a_front_end_traces_everything_and_says_js_did_not_run():
    policy = mug.ModelConfig.from_onnx(DEFAULT_OUT)
    scene = mug.GymScene("cartpole").environment("CartPole-v1", seed=0).policies({"agent_0": policy}).gameplay(max_steps=40)
    preview = scene.preview()
    trace = preview.rollout(100, seed=2)
    assert len(trace) == 100 and len(preview.trace) == 100
    assert preview.parity == {
        "ran": False,
        "reason": "JS comparison did not run: no front end is connected (it runs once the widget is shown)",
    }
    assert trace.logits["agent_0"].shape == (100, 2) and trace.states["agent_0"]["state_out_0"].shape == (100, 1, 8)
    np.testing.assert_allclose(trace.probs["agent_0"].sum(axis=1), 1.0, rtol=1e-6)
    assert sorted(set(trace.episodes.tolist())) == [0, 1, 2]  # 40-step episodes
    replay = mug.PolicyRuntime(policy)
    for i, obs in enumerate(trace.observations["agent_0"]):
        if i % 40 == 0:
            replay.reset()
        assert replay.step(obs).action == trace.actions["agent_0"][i]
    frame = trace.to_pandas()
    assert list(frame.columns[:6]) == ["step", "episode", "agent", "action", "source", "reward"] and len(frame) == 100


def test_steps_without_a_policy_result_are_nan_rows():
    trace = Trace()
    base = {"episode": 0, "actions": {"a": 1}, "sources": {"a": "policy"}, "rewards": {"a": 0.0}}
    trace.record("step", {**base, "policy_outputs": {"a": {"logits": np.array([0.0, 1.0]), "states": {"h": np.ones((1, 2))}}}})
    trace.record("step", {**base, "sources": {"a": "previous"}})
    assert trace.logits["a"].shape == (2, 2) and np.isnan(trace.logits["a"][1]).all()
    assert np.isnan(trace.states["a"]["h"][1]).all() and trace.states["a"]["h"][0].tolist() == [[1.0, 1.0]]


def rolled_out(steps=60):
    policy = mug.ModelConfig.from_onnx(DEFAULT_OUT, temperature=0.5)
    scene = mug.GymScene("cartpole").environment("CartPole-v1", seed=0).policies({"agent_0": policy}).gameplay(max_steps=25)
    return scene.preview().rollout(steps, seed=4)


def test_to_pandas_has_a_column_per_observation_probability_and_state_element():
    trace = rolled_out()
    frame = trace.to_pandas()
    assert [f"obs_{j}" for j in range(4)] == [c for c in frame.columns if c.startswith("obs_")]
    np.testing.assert_allclose(frame[[f"obs_{j}" for j in range(4)]].to_numpy(), trace.observations["agent_0"], rtol=1e-6)
    np.testing.assert_allclose(frame[["prob_0", "prob_1"]].to_numpy(), trace.probs["agent_0"], rtol=1e-5)
    h = frame[[f"state_out_0_{j}" for j in range(8)]].to_numpy()
    np.testing.assert_allclose(h, trace.states["agent_0"]["state_out_0"].reshape(60, 8), rtol=1e-6)
    assert "state_out_1_7" in frame.columns and "state_out_1_8" not in frame.columns


def test_save_and_load_give_back_the_same_trace(tmp_path):
    trace = rolled_out()
    trace.record("step", {**trace._rows[0], "sources": {"agent_0": "late"}, "policy_outputs": {}})  # a step without a result
    loaded = mug.widgets.Trace.load(trace.save(tmp_path / "t.npz"))
    assert len(loaded) == len(trace) == 61 and loaded.boundaries == trace.boundaries
    assert loaded.temperatures == {"agent_0": 0.5}
    for name in ["actions", "rewards", "observations", "logits", "probs", "episodes"]:
        mine, theirs = getattr(trace, name), getattr(loaded, name)
        for agent in mine if isinstance(mine, dict) else {"": mine}:
            a, b = (mine[agent], theirs[agent]) if agent else (mine, theirs)
            np.testing.assert_array_equal(a, b, err_msg=name)
    assert list(loaded.sources["agent_0"]) == list(trace.sources["agent_0"])
    for state in ["state_out_0", "state_out_1"]:
        np.testing.assert_array_equal(loaded.states["agent_0"][state], trace.states["agent_0"][state])
    assert np.isnan(loaded.logits["agent_0"][-1]).all()
    with np.load(tmp_path / "t.npz") as raw:  # readable without MUG
        assert raw["logits/agent_0"].shape == (61, 2) and raw["observation_steps/agent_0"].tolist() == list(range(61))


def test_load_names_a_file_that_is_not_a_trace(tmp_path):
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(ValueError, match=r"not a trace written by Trace\.save"):
        mug.widgets.Trace.load(tmp_path / "other.npz")


def test_action_names_come_from_the_action_mapping_or_are_given_and_checked():
    policy = mug.ModelConfig.from_onnx(DEFAULT_OUT)
    scene = (
        mug.GymScene("cartpole")
        .environment("CartPole-v1", seed=0)
        .policies({"agent_0": policy})
        .gameplay(action_mapping={"ArrowLeft": 0, "ArrowRight": 1})
    )
    assert scene.preview()._action_names == {"agent_0": ["ArrowLeft", "ArrowRight"]}
    assert scene.preview(action_names=["push left", "push right"])._action_names == {"agent_0": ["push left", "push right"]}
    with pytest.raises(mug.ConfigError, match=r"expected 2 names \(one per action of Discrete\(2\)\), got \['left'\]"):
        scene.preview(action_names=["left"])
    with pytest.raises(mug.ConfigError, match=r"action_names: the environment has no agent 'agent_9'"):
        scene.preview(action_names={"agent_9": ["a", "b"]})


def test_status_says_the_scene_is_over_and_step_after_the_end_does_nothing():
    scene = (
        mug.GymScene("cartpole")
        .environment("CartPole-v1", seed=0)
        .policies({"agent_0": mug.Random})
        .gameplay(num_episodes=1, max_steps=3)
    )
    preview = scene.preview()
    sent = []
    preview.send = lambda message, buffers=None: sent.append(message)  # what would reach the widget
    assert preview.status == "not shown"
    assert [preview.step() for _ in range(4)] == [True, True, True, False]
    assert preview.status == "scene over" and preview.errors == []
    preview._on_front_end(preview, {"type": "act", "view": "", "step": 3, "keys": [], "policies": {}}, [])
    assert preview.errors == [] and not [m for m in sent if m.get("type") == "error"]  # an act after the end is no error
    preview.reset()
    assert preview.status == "ready"


def test_parity_ready_says_js_did_not_run_without_a_front_end_and_times_out_with_a_silent_one(monkeypatch):
    from mug.widgets import preview as preview_module

    monkeypatch.setattr(preview_module, "FRONTEND_WAIT_S", 0.1)
    policy = mug.ModelConfig.from_onnx(DEFAULT_OUT)
    scene = mug.GymScene("cartpole").environment("CartPole-v1", seed=0).policies({"agent_0": policy})
    preview = scene.preview()
    assert run_async(preview.parity_ready()) is None  # no rollout yet: nothing to wait for
    preview.rollout(20, seed=1)
    parity = run_async(preview.parity_ready(timeout=5))
    assert parity["ran"] is False and "no front end is connected" in parity["reason"]
    preview.send = lambda message, buffers=None: None
    preview._on_front_end(preview, {"type": "shown", "view": "v1"}, [])  # a view appeared but never answers
    with pytest.raises(TimeoutError, match=r"did not come back within 0\.3 s"):
        run_async(preview.parity_ready(timeout=0.3))
