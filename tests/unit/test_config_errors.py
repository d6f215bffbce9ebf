"""A catalogue of wrong policy configs: each must fail with its own specific, readable message."""

from __future__ import annotations

import re

import pytest
from onnx import TensorProto

import mug
from tests.conftest import LSTM, SLIME, requires_node
from tests.synthetic import recurrent_model

LSTM_OK = dict(
    onnx_path=str(LSTM),
    obs_input="obs",
    logit_output="output",
    state_inputs=["state_in_0", "state_in_1"],
    state_outputs=["state_out_0", "state_out_1"],
    fixed_inputs={"seq_lens": 1},
)

# (case id, changes to the LSTM config, field named by the error, fragments the message must contain)
LSTM_CASES = [
    (
        "misspelled obs input",
        {"obs_input": "ob"},
        "obs_input",
        ["the model has no input 'ob'", "Did you mean 'obs'?", "obs float32 [batch_size, 116]"],
    ),
    ("misspelled logit output", {"logit_output": "outputs"}, "logit_output", ["no output 'outputs'", "Did you mean 'output'?"]),
    ("obs given an output name", {"obs_input": "output"}, "obs_input", ["'output' is an output of the model, not an input"]),
    ("logits given an input name", {"logit_output": "obs"}, "logit_output", ["'obs' is an input of the model, not an output"]),
    (
        "misspelled state input",
        {"state_inputs": ["state_in_O", "state_in_1"]},
        "state_inputs[0]",
        ["no input 'state_in_O'", "Did you mean 'state_in_0'?"],
    ),
    (
        "state output given an input name",
        {"state_outputs": ["state_in_0", "state_out_1"]},
        "state_outputs[0]",
        ["'state_in_0' is an input of the model, not an output"],
    ),
    (
        "swapped state outputs",
        {"state_outputs": ["state_out_1", "state_out_0"]},
        "state_outputs",
        ["state_inputs[0]='state_in_0' is paired with state_outputs[0]='state_out_1'", "Are they swapped?"],
    ),
    (
        "unpaired states",
        {"state_outputs": ["state_out_0"]},
        "state_outputs",
        ["state_inputs has 2 names", "state_outputs has 1", "output i feeds input i"],
    ),
    (
        "wrong state shape",
        {"state_shapes": [[1, 64], [1, 128]]},
        "state_shapes[0]",
        ["[1, 64] does not fit the model's state_in_0 float32 [batch_size, 128]", "must be [1, 128]"],
    ),
    ("one state shape for two states", {"state_shapes": [[1, 128]]}, "state_shapes", ["1 shapes given for 2 state inputs"]),
    (
        "state shape disagrees with batch_size",
        {"batch_size": 2, "state_shape": [1, 128]},
        "state_shapes[0]",
        ["with batch_size=2 the state tensor must be [2, 128]"],
    ),
    (
        "missing fixed input",
        {"fixed_inputs": {}},
        "fixed_inputs",
        ["input seq_lens float32 [batch_size] is not fed", "fixed_inputs={'seq_lens': 1}"],
    ),
    (
        "misspelled fixed input",
        {"fixed_inputs": {"seq_len": 1}},
        "fixed_inputs['seq_len']",
        ["no input 'seq_len'", "Did you mean 'seq_lens'?"],
    ),
    (
        "fixed input that is also a state",
        {"fixed_inputs": {"seq_lens": 1, "state_in_1": 0}},
        "fixed_inputs['state_in_1']",
        ["already fed as the observation or a state input"],
    ),
    (
        "fixed tensor of the wrong shape",
        {"fixed_inputs": {"seq_lens": [1, 1]}},
        "fixed_inputs['seq_lens']",
        ["a tensor of shape [2] does not fit the model's seq_lens float32 [batch_size]", "it must be [1]"],
    ),
    ("num_actions disagrees with the logits", {"num_actions": 5}, "num_actions", ["num_actions=5", "holds 7 logits"]),
    (
        "state input listed twice",
        {"state_inputs": ["state_in_0", "state_in_0"]},
        "state_inputs",
        ["'state_in_0' is listed twice in ['state_in_0', 'state_in_0']"],
    ),
    (
        "state output listed twice",
        {"state_outputs": ["state_out_0", "state_out_0"]},
        "state_outputs",
        ["'state_out_0' is listed twice"],
    ),
    ("state input reused as observation", {"state_inputs": ["obs", "state_in_1"]}, "state_outputs", ["pair 0 does not fit"]),
]


@pytest.mark.parametrize(("changes", "field", "fragments"), [c[1:] for c in LSTM_CASES], ids=[c[0] for c in LSTM_CASES])
def test_wrong_lstm_config_names_the_problem(changes, field, fragments):
    config = mug.ModelConfig(**{**LSTM_OK, **changes})
    with pytest.raises(mug.ConfigError) as info:
        config.validate()
    assert info.value.field == field
    for fragment in fragments:
        assert fragment in str(info.value)


def test_the_correct_lstm_config_passes():
    assert mug.ModelConfig(**LSTM_OK).validate(probe=True).num_actions is None


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    d = tmp_path_factory.mktemp("cases")
    return {
        "int32": recurrent_model(d / "int32.onnx"),
        "uint8": recurrent_model(d / "uint8.onnx", seq_lens_dtype=TensorProto.UINT8),
        "batch4": recurrent_model(d / "batch4.onnx", batch=4),
        "f64state": recurrent_model(d / "f64.onnx", state_out_dtype=TensorProto.DOUBLE),
        "opaque": recurrent_model(d / "opaque.onnx", logits_dim="n"),
    }


def synthetic_config(path, **changes):
    base = dict(onnx_path=str(path), obs_input="obs", logit_output="logits", state_inputs=["h_in"], state_outputs=["h_out"])
    return mug.ModelConfig(**{**base, "fixed_inputs": {"seq_lens": 1}, **changes})


SYNTHETIC_CASES = [
    (
        "non-integer value for an int32 input",
        "int32",
        {"fixed_inputs": {"seq_lens": 1.5}},
        "fixed_inputs['seq_lens']",
        ["1.5 is not a whole number", "takes int32"],
    ),
    (
        "value out of range of the dtype",
        "uint8",
        {"fixed_inputs": {"seq_lens": 300}},
        "fixed_inputs['seq_lens']",
        ["300 does not fit", "uint8 holds 0..255"],
    ),
    (
        "batch_size against a static batch",
        "batch4",
        {},
        "batch_size",
        ["batch_size=1", "fixed batch dimension of 4", "set batch_size=4"],
    ),
    (
        "state pair of different dtypes",
        "f64state",
        {},
        "state_outputs",
        ["h_out float64 [batch, 8] has dtype float64", "takes float32"],
    ),
    ("unknown number of logits", "opaque", {}, "num_actions", ["does not say how many logits", "set num_actions"]),
]


@pytest.mark.parametrize(
    ("model", "changes", "field", "fragments"), [c[1:] for c in SYNTHETIC_CASES], ids=[c[0] for c in SYNTHETIC_CASES]
)
def test_wrong_synthetic_config_names_the_problem(synthetic, model, changes, field, fragments):
    with pytest.raises(mug.ConfigError) as info:
        synthetic_config(synthetic[model], **changes).validate()
    assert info.value.field == field
    for fragment in fragments:
        assert fragment in str(info.value)


def test_unknown_logit_count_is_fine_when_num_actions_is_given(synthetic):
    synthetic_config(synthetic["opaque"], num_actions=3).validate(probe=True)


CONSTRUCTOR_CASES = [
    (
        "misspelled action mode",
        {"action": "smaple"},
        "action",
        ["expected one of ['sample', 'argmax']", "Did you mean 'sample'?"],
    ),
    ("misspelled reset mode", {"reset_state": "episodes"}, "reset_state", ["Did you mean 'episode'?"]),
    ("zero batch size", {"batch_size": 0}, "batch_size", ["expected a positive integer, got 0"]),
    ("negative temperature", {"temperature": -1}, "temperature", ["expected a finite number > 0, got -1"]),
    ("state names as one string", {"state_inputs": "state_in_0"}, "state_inputs", ["expected a list of tensor names"]),
    ("state shape with a zero", {"state_shape": [1, 0]}, "state_shape", ["every dimension must be a positive integer"]),
    ("both state_shape and state_shapes", {"state_shape": [1, 128], "state_shapes": [[1, 128]]}, "state_shape", ["not both"]),
    ("empty custom function", {"custom_inference_fn": "  "}, "custom_inference_fn", ["non-empty string"]),
    (
        "state shapes keyed by a misspelled state input",
        {"state_shapes": {"state_in_0": [1, 128], "state_in_l": [1, 128]}},
        "state_shapes",
        ["'state_in_l' is not a state input. Did you mean 'state_in_1'?", "state_inputs: ['state_in_0', 'state_in_1']"],
    ),
    (
        "state shapes keyed by name, one missing",
        {"state_shapes": {"state_in_0": [1, 128]}},
        "state_shapes",
        ["no shape for state input(s) ['state_in_1']"],
    ),
    (
        "state shapes keyed by name, a bad shape",
        {"state_shapes": {"state_in_0": [1, 128], "state_in_1": [0]}},
        "state_shapes['state_in_1']",
        ["positive integer"],
    ),
    (
        "fixed value that is not a number",
        {"fixed_inputs": {"seq_lens": "one"}},
        "fixed_inputs",
        ["expected a number or a nested list"],
    ),
]


@pytest.mark.parametrize(
    ("changes", "field", "fragments"), [c[1:] for c in CONSTRUCTOR_CASES], ids=[c[0] for c in CONSTRUCTOR_CASES]
)
def test_bad_field_values_fail_at_construction(changes, field, fragments):
    with pytest.raises(mug.ConfigError) as info:
        mug.ModelConfig(**{**LSTM_OK, **changes})
    assert info.value.field == field
    for fragment in fragments:
        assert fragment in str(info.value)


def test_from_dict_names_an_unknown_field():
    data = {**mug.ModelConfig(**LSTM_OK).to_dict(), "state_input": ["x"]}
    with pytest.raises(mug.ConfigError, match=re.escape("unknown field 'state_input'. Did you mean 'state_inputs'?")):
        mug.ModelConfig.from_dict(data)


def test_missing_model_file_is_named(tmp_path):
    with pytest.raises(mug.ConfigError, match=re.escape(f"onnx_path: no file at {str(tmp_path / 'nope.onnx')!r}")):
        mug.ModelConfig(**{**LSTM_OK, "onnx_path": tmp_path / "nope.onnx"}).validate()


def test_state_shapes_keyed_by_state_input_name():
    wrong = mug.ModelConfig(**{**LSTM_OK, "state_shapes": {"state_in_1": [1, 128], "state_in_0": [1, 64]}})
    assert wrong.state_shapes == [[1, 64], [1, 128]]  # kept as the list, in state_inputs order
    with pytest.raises(mug.ConfigError, match=re.escape("state_shapes[0]: [1, 64] does not fit the model's state_in_0")):
        wrong.validate()
    by_name = mug.ModelConfig(**{**LSTM_OK, "state_shapes": {"state_in_1": [1, 128], "state_in_0": [1, 128]}})
    assert by_name.validate().to_dict() == mug.ModelConfig(**{**LSTM_OK, "state_shapes": [[1, 128], [1, 128]]}).to_dict()
    assert mug.ModelConfig.from_onnx(LSTM, state_shapes={"state_in_0": [1, 128], "state_in_1": [1, 128]}).validate()


SYNTAX_ERROR = "const x = ;\nreturn 0;"


@requires_node
def test_a_custom_function_that_does_not_compile_fails_at_validate():
    config = mug.ModelConfig(**{**LSTM_OK, "custom_inference_fn": SYNTAX_ERROR})
    with pytest.raises(mug.ConfigError) as info:
        config.validate()
    assert info.value.field == "custom_inference_fn"
    assert "policy 'overcooked_lstm_rllib': custom_inference_fn does not compile: SyntaxError: Unexpected token ';'" in str(
        info.value
    )
    mug.ModelConfig(**{**LSTM_OK, "custom_inference_fn": "return 0;"}).validate()


@requires_node
def test_a_custom_function_that_does_not_compile_fails_at_policies(tmp_path):
    from mug.examples import CoinGrid

    policy = mug.ModelConfig.from_onnx(recurrent_model(tmp_path / "p.onnx", obs=29, actions=5), custom_inference_fn="return (;")
    scene = mug.GymScene("g").environment(CoinGrid)
    with pytest.raises(mug.ConfigError, match=re.escape("policies['agent_1']: policy 'p': custom_inference_fn does not compile")):
        scene.policies({"agent_0": mug.Human, "agent_1": policy})


def test_without_node_the_compile_check_is_skipped(monkeypatch):
    monkeypatch.setenv("PATH", "")  # no node on the PATH, as on a machine without Node.js
    body = "return ( /* a syntax error, checked only where Node is installed */;"
    mug.ModelConfig(**{**LSTM_OK, "custom_inference_fn": body}).validate()


def test_from_onnx_rejects_an_unknown_override():
    with pytest.raises(mug.ConfigError, match=re.escape("unknown field 'obs'")):
        mug.ModelConfig.from_onnx(SLIME, obs="obs")


def test_from_onnx_needs_both_state_lists():
    with pytest.raises(mug.ConfigError, match="pass state_inputs and state_outputs together"):
        mug.ModelConfig.from_onnx(LSTM, state_inputs=["state_in_0"])
