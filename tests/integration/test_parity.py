"""The JS runtime (run by Node) reproduces the Python runtime on every real export.

200+ steps each with hidden state fed back and a reset midway; identical
actions under argmax and under seeded sampling; logits and every state tensor
within 1e-4.
"""

from __future__ import annotations

import pytest

import mug
from mug.inference.parity import compare_traces, node_trace, python_trace, random_observations
from tests.conftest import COGRID, CONV_LSTM, LSTM, SLIME, requires_node

pytestmark = requires_node

STEPS = 220
CASES = {
    "slime_mlp": (SLIME, {}),
    "overcooked_lstm": (LSTM, {}),
    "overcooked_conv_lstm": (CONV_LSTM, {}),
    "cogrid_batch4": (COGRID, {"batch_size": 4}),
}


def episodes(config, seed):
    """Observations with a reset of the agent every 100 steps (an episode boundary)."""
    return [{"obs": o, "reset": i > 0 and i % 100 == 0} for i, o in enumerate(random_observations(config, STEPS, seed))]


@pytest.mark.parametrize("action", ["argmax", "sample"])
@pytest.mark.parametrize("case", list(CASES))
def test_js_matches_python(case, action):
    path, overrides = CASES[case]
    config = mug.ModelConfig.from_onnx(path, action=action, **overrides)
    steps = episodes(config, seed=3)
    py = python_trace(config, steps, seed=42)
    js = node_trace(config, steps, seed=42)
    report = compare_traces(py, js)
    assert report.steps == STEPS
    assert report.differing_actions == 0, report.lines()
    assert report.max_logit_delta <= 1e-4, report.lines()
    assert set(report.max_state_delta) == set(config.state_outputs)
    assert all(d <= 1e-4 for d in report.max_state_delta.values()), report.lines()
    if action == "sample":
        assert len({s.action for s in py}) > 1  # sampling really varied


def test_two_agents_interleaved_match():
    config = mug.ModelConfig.from_onnx(LSTM)
    obs = random_observations(config, 60, seed=9)
    steps = [{"obs": o, "agent": "ai_1" if i % 2 else "ai_0"} for i, o in enumerate(obs)]
    report = compare_traces(python_trace(config, steps, seed=5), node_trace(config, steps, seed=5))
    assert report.within(1e-4), report.lines()


# The batch-4 export through the escape hatch: tile the observation, carry h/c in context.state.
COGRID_CUSTOM = """
const row = context.flatten(observation);
const obs = new Float32Array(4 * row.length);
for (let r = 0; r < 4; r++) obs.set(row, r * row.length);
context.state.h ??= new Float32Array(4 * 128);
context.state.c ??= new Float32Array(4 * 128);
const T = context.ort.Tensor;
const out = await session.run({
  obs: new T("float32", obs, [4, row.length]),
  state_ins: new T("float32", context.state.h, [4, 128]),
  seq_lens: new T("float32", context.state.c, [4, 128]),
});
context.state.h = out.state_outs.data;
context.state.c = out["170"].data;
return {
  logits: out.output.data.slice(0, 7),
  states: {state_outs: out.state_outs, "170": out["170"]},
};
"""


def test_batch4_export_through_a_custom_function_matches_the_declarative_run():
    declarative = mug.ModelConfig.from_onnx(COGRID, batch_size=4)
    custom = mug.ModelConfig.from_onnx(COGRID, custom_inference_fn=COGRID_CUSTOM)
    steps = episodes(declarative, seed=4)
    report = compare_traces(python_trace(declarative, steps, seed=8), node_trace(custom, steps, seed=8))
    assert report.within(1e-4), report.lines()


def test_js_error_reaches_python_with_the_js_message():
    config = mug.ModelConfig.from_onnx(SLIME, custom_inference_fn="throw new RangeError('bad paddle')")
    with pytest.raises(mug.PolicyError, match=r"custom_inference_fn threw RangeError: bad paddle"):
        node_trace(config, random_observations(config, 2), name="slime")


def test_batch4_export_with_batch_1_fails_readably_in_js():
    config = mug.ModelConfig.from_onnx(COGRID)
    with pytest.raises(mug.PolicyError) as info:
        node_trace(config, random_observations(config, 2), name="cogrid")
    assert "feeds sent (batch_size=1)" in str(info.value)
    assert "seq_lens   float32  [batch_size, 128]" in str(info.value)
