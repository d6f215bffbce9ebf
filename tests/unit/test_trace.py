"""The preview's Trace: arrays aligned with steps, Python-only rollouts."""

from __future__ import annotations

import numpy as np

import mug
from mug.examples.train_cartpole_lstm import DEFAULT_OUT
from mug.widgets import Trace


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
