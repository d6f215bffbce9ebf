"""``ModelConfig.from_onnx`` on real exports and on graphs it cannot decide alone."""

from __future__ import annotations

import json
import re

import pytest
from onnx import TensorProto, helper, save

import mug
from tests.conftest import COGRID, CONV_LSTM, LSTM, SLIME


def test_feed_forward_export_with_dummy_state():
    config = mug.ModelConfig.from_onnx(SLIME)
    assert (config.obs_input, config.logit_output) == ("obs", "output")
    assert config.state_inputs == [] and config.state_outputs == []
    assert config.fixed_inputs == {"state_ins": 1}
    assert config.num_actions == 6
    config.validate(probe=True)


@pytest.mark.parametrize("path", [LSTM, CONV_LSTM], ids=["lstm", "conv_lstm"])
def test_rllib_lstm_exports(path):
    config = mug.ModelConfig.from_onnx(path)
    assert config.to_dict() == {
        "onnx_path": str(path),
        "obs_input": "obs",
        "logit_output": "output",
        "state_inputs": ["state_in_0", "state_in_1"],
        "state_outputs": ["state_out_0", "state_out_1"],
        "state_shapes": [[1, 128], [1, 128]],
        "fixed_inputs": {"seq_lens": 1},
        "batch_size": 1,
        "action": "sample",
        "temperature": 1.0,
        "custom_inference_fn": None,
        "reset_state": "episode",
        "num_actions": 7,
    }
    config.validate(probe=True)


def test_batch4_export_pairs_its_odd_state_names_by_name_and_shape():
    config = mug.ModelConfig.from_onnx(COGRID, batch_size=4)
    assert config.state_inputs == ["state_ins", "seq_lens"]
    assert config.state_outputs == ["state_outs", "170"]
    assert config.state_shapes == [[4, 128], [4, 128]]
    config.validate(probe=True)


def test_batch4_export_with_batch_1_fails_the_probe_with_feeds_and_signature():
    config = mug.ModelConfig.from_onnx(COGRID)
    config.validate()  # statically the graph accepts any batch
    with pytest.raises(mug.ConfigError) as info:
        config.validate(probe=True)
    text = str(info.value)
    assert "feeds sent (batch_size=1)" in text
    assert "obs        float32  [1, 116]" in text
    assert "obs        float32  [batch_size, 116]" in text
    assert "set batch_size" in text


def test_overrides_win_and_round_trip(tmp_path):
    config = mug.ModelConfig.from_onnx(LSTM, action="argmax", temperature=0.5, reset_state="never")
    assert (config.action, config.temperature, config.reset_state) == ("argmax", 0.5, "never")
    assert mug.ModelConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    (tmp_path / "policy.json").write_text(json.dumps({**config.to_dict(), "onnx_path": LSTM.name}))
    (tmp_path / LSTM.name).write_bytes(LSTM.read_bytes())
    assert mug.ModelConfig.from_json(tmp_path / "policy.json").onnx_path == str(tmp_path / LSTM.name)


def test_state_shape_is_one_shape_for_every_state():
    config = mug.ModelConfig.from_onnx(LSTM, state_shape=[1, 128])
    assert config.state_shapes == [[1, 128], [1, 128]]


def _graph(path, inputs, outputs):
    nodes = [helper.make_node("Identity", [i], [o]) for i, o in zip(inputs, outputs)]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs.items()],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in outputs.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    save(model, path)
    return path


def test_states_without_conventional_names_pair_by_shape(tmp_path):
    path = _graph(
        tmp_path / "m.onnx", {"x": ["b", 5], "h": ["b", 3], "c": ["b", 2]}, {"logits": ["b", 5], "h2": ["b", 3], "c2": ["b", 2]}
    )
    config = mug.ModelConfig.from_onnx(path)
    assert (config.obs_input, config.state_inputs, config.state_outputs) == ("x", ["h", "c"], ["h2", "c2"])


def test_ambiguous_observation_lists_candidates(tmp_path):
    path = _graph(tmp_path / "m.onnx", {"a": ["b", 5], "z": ["b", 5]}, {"logits": ["b", 5], "y": ["b", 5]})
    with pytest.raises(mug.ConfigError) as info:
        mug.ModelConfig.from_onnx(path)
    assert info.value.field == "obs_input"
    assert "candidates: a float32 [b, 5], z float32 [b, 5]" in str(info.value)
    assert "Pass obs_input=... to from_onnx" in str(info.value)
    assert mug.ModelConfig.from_onnx(path, obs_input="a").state_inputs == ["z"]


def test_ambiguous_state_pairing_lists_candidates(tmp_path):
    path = _graph(tmp_path / "m.onnx", {"obs": ["b", 4], "p": ["b", 3], "q": ["b", 3]}, {"logits": ["b", 4], "r": ["b", 3]})
    with pytest.raises(mug.ConfigError) as info:
        mug.ModelConfig.from_onnx(path)
    assert "inputs p float32 [b, 3], q float32 [b, 3]; outputs of that shape: r float32 [b, 3]" in str(info.value)
    assert "Pass state_inputs=[...] and state_outputs=[...]" in str(info.value)


def test_override_names_are_checked_against_the_graph():
    with pytest.raises(mug.ConfigError) as info:
        mug.ModelConfig.from_onnx(LSTM, obs_input="observation")
    assert info.value.field == "obs_input"
    assert "obs_input: the model has no input 'observation'. Did you mean 'obs'?" in str(info.value)


def test_ambiguous_names_are_reported_in_plain_words(tmp_path):
    obs = _graph(tmp_path / "obs.onnx", {"a": ["b", 5], "z": ["b", 5]}, {"logits": ["b", 5], "y": ["b", 5]})
    with pytest.raises(mug.ConfigError, match=re.escape("cannot tell which input carries the observation; candidates: a ")):
        mug.ModelConfig.from_onnx(obs)
    logits = _graph(tmp_path / "logits.onnx", {"obs": ["b", 5]}, {"p": ["b", 5], "q": ["b", 3]})
    with pytest.raises(mug.ConfigError, match=re.escape("cannot tell which output holds the logits; candidates: p ")):
        mug.ModelConfig.from_onnx(logits)
    none_left = _graph(tmp_path / "none.onnx", {"state_in_0": ["b", 3]}, {"state_out_0": ["b", 3], "logits": ["b", 2]})
    with pytest.raises(
        mug.ConfigError,
        match=re.escape("cannot tell which input carries the observation: the graph has no input left for it. Pass obs_input="),
    ):
        mug.ModelConfig.from_onnx(none_left)


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"", "the file is empty (0 bytes)"),
        (b"\x08\x00", "its bytes decode to no IR version and no graph"),  # a valid, empty protobuf message
        (b"name: not a model", "its bytes do not decode as one (DecodeError"),
    ],
    ids=["empty", "empty message", "text"],
)
def test_a_file_that_is_not_onnx_says_so_and_names_the_file(tmp_path, content, why):
    path = tmp_path / "partner.onnx"
    path.write_bytes(content)
    for attempt in (lambda: mug.ModelConfig.from_onnx(path), lambda: mug.ModelConfig(path, "obs", "logits").validate()):
        with pytest.raises(mug.ConfigError) as info:
            attempt()
        assert info.value.field == "onnx_path"
        assert f"onnx_path: {str(path)!r} is not an ONNX model: {why}" in str(info.value)
