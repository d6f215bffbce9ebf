"""Hidden-state, seeding and error semantics of the Python ``PolicyRuntime``."""

from __future__ import annotations

import os
import shutil

import numpy as np
import onnxruntime
import pytest

import mug
from tests.conftest import COGRID, LSTM, SLIME


@pytest.fixture(scope="module")
def config():
    return mug.ModelConfig.from_onnx(LSTM)


@pytest.fixture(scope="module")
def observations():
    rng = np.random.default_rng(1)
    return [rng.standard_normal(116).astype(np.float32) for _ in range(12)]


@pytest.fixture(scope="module")
def session():
    return onnxruntime.InferenceSession(str(LSTM), providers=["CPUExecutionProvider"])


def bare_run(session, obs, h, c):
    return session.run(None, {"obs": obs.reshape(1, -1), "state_in_0": h, "state_in_1": c, "seq_lens": np.ones(1, np.float32)})


def test_first_step_uses_zero_state_and_later_steps_carry_it(config, observations, session):
    runtime = mug.PolicyRuntime(config)
    h = c = np.zeros((1, 128), np.float32)
    for obs in observations[:4]:
        logits, h, c = bare_run(session, obs, h, c)
        out = runtime.step(obs)
        np.testing.assert_allclose(out.logits, logits[0], atol=1e-6)
        np.testing.assert_allclose(out.states["state_out_0"], h, atol=1e-6)
        np.testing.assert_allclose(out.states["state_out_1"], c, atol=1e-6)
    assert np.abs(h).max() > 0.01  # the state really moved away from zeros


def test_reset_returns_to_zero_state(config, observations):
    runtime = mug.PolicyRuntime(config)
    first = runtime.step(observations[0])
    runtime.step(observations[1])
    runtime.reset()
    again = runtime.step(observations[0])
    np.testing.assert_array_equal(first.logits, again.logits)
    np.testing.assert_array_equal(first.states["state_out_0"], again.states["state_out_0"])


def test_agents_do_not_share_state(config, observations):
    shared = mug.PolicyRuntime(config, seed=3)
    alone_a, alone_b = mug.PolicyRuntime(config, seed=3), mug.PolicyRuntime(config, seed=3)
    for i, obs in enumerate(observations):
        a = shared.step(obs, "a")
        b = shared.step(observations[-1 - i], "b")
        np.testing.assert_array_equal(a.logits, alone_a.step(obs, "a").logits)
        np.testing.assert_array_equal(b.logits, alone_b.step(observations[-1 - i], "b").logits)
    assert shared.agents == ["a", "b"]


def test_reset_of_one_agent_leaves_the_other(config, observations):
    runtime = mug.PolicyRuntime(config)
    runtime.step(observations[0], "a")
    b1 = runtime.step(observations[0], "b")
    runtime.reset("a")
    assert runtime.snapshot()["agents"]["a"]["steps"] == 0
    np.testing.assert_array_equal(runtime.snapshot()["agents"]["b"]["states"][0], b1.states["state_out_0"])


def test_snapshot_restore_reproduces_the_continuation_exactly(config, observations):
    runtime = mug.PolicyRuntime(config, seed=11)
    for obs in observations[:5]:
        runtime.step(obs)
    snap = runtime.snapshot()
    original = [runtime.step(obs) for obs in observations[5:]]
    runtime.restore(snap)
    replay = [runtime.step(obs) for obs in observations[5:]]
    assert [s.action for s in original] == [s.action for s in replay]
    for a, b in zip(original, replay):
        np.testing.assert_array_equal(a.logits, b.logits)
        np.testing.assert_array_equal(a.states["state_out_1"], b.states["state_out_1"])


def test_same_seed_same_actions_other_seed_other_actions(config, observations):
    def actions(seed):
        runtime = mug.PolicyRuntime(config, seed=seed)
        return [runtime.step(o).action for o in observations * 3]

    assert actions(5) == actions(5)
    assert actions(5) != actions(6)


def test_argmax_picks_the_largest_logit(observations):
    runtime = mug.PolicyRuntime(mug.ModelConfig.from_onnx(LSTM, action="argmax"))
    for obs in observations:
        out = runtime.step(obs)
        assert out.action == int(np.argmax(out.logits))
        np.testing.assert_allclose(out.probs.sum(), 1.0)


@pytest.mark.parametrize(
    ("mode", "episode_resets", "scene_resets"), [("episode", True, True), ("scene", False, True), ("never", False, False)]
)
def test_boundaries_follow_reset_state(observations, mode, episode_resets, scene_resets):
    runtime = mug.PolicyRuntime(mug.ModelConfig.from_onnx(LSTM, reset_state=mode))
    runtime.step(observations[0])
    assert runtime.boundary("episode") is episode_resets
    assert runtime.boundary("scene") is scene_resets


def test_returned_arrays_are_read_only(config, observations):
    out = mug.PolicyRuntime(config).step(observations[0])
    with pytest.raises(ValueError):
        out.states["state_out_0"][0, 0] = 1.0


def test_batch4_export_runs_declaratively():
    runtime = mug.PolicyRuntime(mug.ModelConfig.from_onnx(COGRID, batch_size=4))
    out = runtime.step(np.ones(116, np.float32))
    assert out.logits.shape == (7,)
    assert out.states["state_outs"].shape == (4, 128)
    np.testing.assert_allclose(out.states["state_outs"][0], out.states["state_outs"][3], atol=1e-6)


def test_batch4_export_with_batch_1_names_feeds_and_expectation():
    runtime = mug.PolicyRuntime(mug.ModelConfig.from_onnx(COGRID), name="cogrid")
    with pytest.raises(mug.PolicyError) as info:
        runtime.step(np.ones(116, np.float32))
    text = str(info.value)
    assert text.startswith("policy 'cogrid', agent 'agent_0', step 0: onnxruntime failed:")
    assert "seq_lens   float32  [1, 128]" in text  # what was sent
    assert "seq_lens   float32  [batch_size, 128]" in text  # what the graph declares
    assert info.value.policy == "cogrid"


def test_observation_of_the_wrong_size_is_named(config):
    with pytest.raises(mug.PolicyError, match=r"the observation has 115 values but input 'obs' takes 116 per row"):
        mug.PolicyRuntime(config).step(np.zeros(115))


def test_dict_observation_is_concatenated_in_sorted_key_order():
    runtime = mug.PolicyRuntime(mug.ModelConfig.from_onnx(SLIME, action="argmax"))
    flat = np.arange(12, dtype=np.float32) / 10
    as_dict = {"b_ball": flat[4:], "a_agent": flat[:4]}
    np.testing.assert_array_equal(runtime.step(as_dict).logits, runtime.step(flat).logits)


def test_reference_backend_agrees_with_onnxruntime(config, observations):
    fast, slow = mug.PolicyRuntime(config, backend="onnxruntime"), mug.PolicyRuntime(config, backend="reference")
    assert slow.backend_name == "reference"
    for obs in observations[:3]:
        a, b = fast.step(obs), slow.step(obs)
        np.testing.assert_allclose(a.logits, b.logits, atol=1e-4)
        np.testing.assert_allclose(a.states["state_out_0"], b.states["state_out_0"], atol=1e-4)
        assert a.action == b.action


def test_custom_function_configs_are_refused_with_a_reason():
    config = mug.ModelConfig.from_onnx(SLIME, custom_inference_fn="return 0;")
    with pytest.raises(mug.ConfigError, match="custom inference function is JavaScript"):
        mug.PolicyRuntime(config)


def test_restore_rejects_a_foreign_snapshot(config):
    with pytest.raises(ValueError, match="not a snapshot of this runtime"):
        mug.PolicyRuntime(config).restore({"agents": {"a": {"states": [np.zeros((1, 3))], "rng": 1, "steps": 0}}})


@pytest.mark.parametrize("seed", [-1, 2**32, 1.5])
def test_bad_seed_is_named(config, seed):
    with pytest.raises(mug.ConfigError, match=r"seed: expected an integer in \[0, 2\*\*32\)"):
        mug.PolicyRuntime(config, seed=seed)


def test_runtimes_of_one_model_file_share_its_graph_but_not_their_state(tmp_path, observations):
    path = tmp_path / "lstm.onnx"
    shutil.copy(LSTM, path)
    config = mug.ModelConfig.from_onnx(path)
    alone = mug.PolicyRuntime(config, seed=1)
    solo = [alone.step(o).logits.copy() for o in observations[:6]]
    a, b = mug.PolicyRuntime(config, seed=1), mug.PolicyRuntime(config, seed=1)
    assert a._backend is b._backend  # loaded once
    for i, o in enumerate(observations[:6]):  # interleaved: each keeps its own hidden state
        np.testing.assert_array_equal(a.step(o).logits, solo[i])
        np.testing.assert_array_equal(b.step(o).logits, solo[i])
    os.utime(path, ns=(1, 1))  # the same bytes, another modification time: a redeployed file
    assert mug.PolicyRuntime(config, seed=1)._backend is not a._backend  # a changed file is loaded anew
