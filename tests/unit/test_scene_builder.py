"""A catalogue of wrong scene configs: each builder call fails at once with a specific message."""

from __future__ import annotations

import re

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import mug
from mug.examples import CoinGrid
from tests.conftest import LSTM
from tests.synthetic import recurrent_model

KEYS = {"ArrowUp": 1, "ArrowDown": 2}


def grid():
    return mug.GymScene("grid").environment(CoinGrid, seed=1)


def ready_grid():
    return grid().policies({"agent_0": mug.Human, "agent_1": mug.Random})


def p2p_duo():
    """A P2P scene of two humans whose lost seats go to the AI (a fill-in still to be given)."""
    from mug.examples.browser_grid import PyCoinGrid

    return (
        mug.GymScene("duo")
        .environment(PyCoinGrid, seed=1)
        .policies({"agent_0": mug.Human, "agent_1": mug.Human})
        .runtime(environment="browser")
        .multiplayer(mode="p2p", on_partner_loss="ai")
    )


CASES = [
    ("bad scene id", lambda: mug.GymScene("../etc"), "scene_id", "is not a valid scene id"),
    (
        "env creator not callable",
        lambda: mug.GymScene("g").environment(42),
        "env_creator",
        "expected a Gymnasium id or a callable",
    ),
    ("unknown Gymnasium id", lambda: mug.GymScene("g").environment("CartPoel-v1"), "env_creator", "Did you mean 'CartPole-v1'?"),
    (
        "env creator that raises",
        lambda: mug.GymScene("g").environment(CoinGrid, {"size": 1}),
        "env_creator",
        "creating the environment failed: ValueError",
    ),
    ("env config not a dict", lambda: mug.GymScene("g").environment(CoinGrid, ["size"]), "env_config", "expected a dict"),
    ("negative seed", lambda: mug.GymScene("g").environment(CoinGrid, seed=-3), "seed", "expected an integer in 0..2147483647"),
    (
        "policies before environment",
        lambda: mug.GymScene("g").policies({"a": mug.Human}),
        "policies",
        "call .environment(...) before .policies(...)",
    ),
    (
        "unknown agent",
        lambda: grid().policies({"agent_0": mug.Human, "agent_2": mug.Random}),
        "policy_mapping",
        "no agent 'agent_2'. Did you mean",
    ),
    (
        "agent without policy",
        lambda: grid().policies({"agent_0": mug.Human}),
        "policy_mapping",
        "no policy for agent(s) ['agent_1']",
    ),
    (
        "policy of the wrong kind",
        lambda: grid().policies({"agent_0": mug.Human, "agent_1": "smart"}),
        "policies",
        "expected mug.Human, mug.Random, a ModelConfig",
    ),
    (
        "bad inference place",
        lambda: grid().policies({"agent_0": mug.Human, "agent_1": mug.Random}, inference="cloud"),
        "inference",
        "expected one of ['auto', 'browser', 'server']",
    ),
    (
        "action mapped out of range",
        lambda: ready_grid().gameplay(action_mapping={"ArrowUp": 7}),
        "action_mapping['ArrowUp']",
        "7 is not an action of agent 'agent_0' (Discrete(5): 0..4)",
    ),
    (
        "empty key combination part",
        lambda: ready_grid().gameplay(action_mapping={"ArrowUp+": 1}),
        "action_mapping",
        "is not a key name",
    ),
    (
        "same combination twice",
        lambda: ready_grid().gameplay(action_mapping={"a+b": 1, "b+a": 2}),
        "action_mapping",
        "are the same key combination",
    ),
    ("humans without a mapping", lambda: ready_grid().gameplay(), "action_mapping", "Human agents need an action_mapping"),
    (
        "bad default action",
        lambda: ready_grid().gameplay(action_mapping=KEYS, default_action=-1),
        "default_action",
        "-1 is not an action",
    ),
    (
        "zero episodes",
        lambda: ready_grid().gameplay(action_mapping=KEYS, num_episodes=0),
        "num_episodes",
        "expected an integer in 1..100000",
    ),
    (
        "unknown input mode",
        lambda: ready_grid().gameplay(action_mapping=KEYS, input_mode="pressed_key"),
        "input_mode",
        "Did you mean 'pressed_keys'?",
    ),
    (
        "unknown step mode",
        lambda: ready_grid().gameplay(action_mapping=KEYS, mode="turns"),
        "mode",
        "expected one of ['realtime', 'lockstep']",
    ),
    ("hud not callable", lambda: ready_grid().gameplay(action_mapping=KEYS, hud="score"), "hud", "expected a callable"),
    ("fps too high", lambda: ready_grid().rendering(fps=500), "fps", "expected an integer in 1..120"),
    ("bad background", lambda: ready_grid().rendering(background="white"), "background", "expected a color like '#ffffff'"),
    ("surface without draw", lambda: ready_grid().rendering(mode="surface"), "draw", "mode='surface' needs draw="),
    ("unknown encoding", lambda: ready_grid().rendering(encoding="jpeg"), "encoding", "expected one of ['png', 'zlib', 'raw']"),
    ("missing asset directory", lambda: ready_grid().assets(directory="/no/such/dir"), "directory", "is not a directory"),
    (
        "p2p ai fill-in that runs on the server",
        lambda: (
            p2p_duo()
            .waitroom(fill_with={"agent_0": mug.ModelConfig.from_onnx(LSTM), "agent_1": lambda obs, agent: 0})
            .check_ready()
        ),
        "fill_with",
        "the fill-in policy of agent 'agent_1' is a Python callable (it runs on the server), which cannot run there; "
        "supported: a ModelConfig (ONNX)",
    ),
    (
        "p2p ai fill-in random",
        lambda: p2p_duo().waitroom(fill_with=mug.Random).check_ready(),
        "fill_with",
        "the fill-in policy of agent 'agent_0' is mug.Random, which cannot run there",
    ),
    (
        "p2p ai without a fill-in",
        lambda: p2p_duo().check_ready(),
        "fill_with",
        'multiplayer(on_partner_loss="ai") needs waitroom(fill_with=...) for every Human agent',
    ),
    ("negative input delay", lambda: ready_grid().multiplayer(mode="p2p", input_delay=-1), "input_delay", "0..30"),
    ("no prediction", lambda: ready_grid().multiplayer(mode="p2p", max_prediction=0), "max_prediction", "1..120"),
    (
        "p2p with the env on the server",
        lambda: grid().policies({"agent_0": mug.Human, "agent_1": mug.Human}).multiplayer(mode="p2p").check_ready(),
        "mode",
        'needs runtime(environment="browser")',
    ),
    ("unknown partner loss", lambda: ready_grid().multiplayer(on_partner_loss="bot"), "on_partner_loss", "expected one of"),
    ("ai timeout without fill", lambda: ready_grid().waitroom(on_timeout="ai"), "fill_with", 'on_timeout="ai"'),
    (
        "ai timeout with a fill for one seat only",
        lambda: (
            grid()
            .policies({"agent_0": mug.Human, "agent_1": mug.Human})
            .waitroom(on_timeout="ai", fill_with={"agent_1": mug.Random})
            .check_ready()
        ),
        "fill_with",
        "every Human agent",
    ),
    ("human fill", lambda: ready_grid().waitroom(fill_with=mug.Human), "fill_with", "mug.Human cannot"),
    ("matchmaker not callable", lambda: ready_grid().matchmaking(matchmaker="fifo"), "matchmaker", "expected a function"),
    ("keep_groups not bool", lambda: ready_grid().matchmaking(keep_groups=1), "keep_groups", "expected True or False"),
    ("violations over window", lambda: ready_grid().monitoring(rtt_window=3, rtt_violations=4), "rtt_violations", "window"),
    ("warn after exclude", lambda: ready_grid().monitoring(warn_hidden_s=5, max_hidden_s=2), "warn_hidden_s", "must come before"),
    ("data flag not bool", lambda: ready_grid().data(record_observations="yes"), "record_observations", "expected True or False"),
    ("negative act timeout", lambda: ready_grid().runtime(act_timeout_s=0), "act_timeout_s", "expected a number of seconds > 0"),
    ("waitroom too long", lambda: ready_grid().waitroom(timeout_s=10_000), "timeout_s", "expected a number in 1..3600"),
]


@pytest.mark.parametrize(("build", "field", "text"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_wrong_scene_config_fails_when_the_method_is_called(build, field, text):
    with pytest.raises(mug.ConfigError) as info:
        build()
    assert info.value.field == field
    assert text in str(info.value)


def test_model_with_the_wrong_action_count(tmp_path):
    policy = mug.ModelConfig.from_onnx(recurrent_model(tmp_path / "p.onnx", obs=29, actions=3))
    with pytest.raises(mug.ConfigError, match=re.escape("the model has 3 actions but the agent's action space has 5")):
        grid().policies({"agent_0": mug.Human, "agent_1": policy})


def test_model_with_the_wrong_observation_size(tmp_path):
    policy = mug.ModelConfig.from_onnx(recurrent_model(tmp_path / "p.onnx", obs=116, actions=5))
    with pytest.raises(
        mug.ConfigError,
        match=re.escape("takes 116 values per step but the agent's observations (Box(0.0, 1.0, (29,), float32)) have 29"),
    ):
        grid().policies({"agent_0": mug.Human, "agent_1": policy})


def test_real_export_with_another_action_count():
    with pytest.raises(mug.ConfigError, match=re.escape("the model has 7 actions but the agent's action space has 5")):
        grid().policies({"agent_0": mug.Human, "agent_1": mug.ModelConfig.from_onnx(LSTM)})


def test_invalid_model_config_is_reported_with_the_agent(tmp_path):
    policy = mug.ModelConfig.from_onnx(recurrent_model(tmp_path / "p.onnx", obs=29, actions=5))
    policy.state_outputs = ["h_in"]
    with pytest.raises(
        mug.ConfigError, match=re.escape("policies['agent_1']: state_outputs[0]: 'h_in' is an input of the model")
    ):
        grid().policies({"agent_0": mug.Human, "agent_1": policy})


def test_custom_function_cannot_run_on_the_server(tmp_path):
    policy = mug.ModelConfig.from_onnx(recurrent_model(tmp_path / "p.onnx", obs=29, actions=5), custom_inference_fn="return 0;")
    with pytest.raises(mug.ConfigError, match="runs only in the browser; use inference='browser' or 'auto'"):
        grid().policies({"agent_0": mug.Human, "agent_1": policy}, inference="server")


def test_asset_paths_cannot_leave_the_directory(tmp_path):
    (tmp_path / "a.png").write_bytes(b"png")
    assert ready_grid().assets(directory=tmp_path, images={"a": "a.png"}).images == {"a": "a.png"}
    with pytest.raises(mug.ConfigError, match="is not a file inside"):
        ready_grid().assets(directory=tmp_path, images={"p": "../passwd"})


def test_a_good_scene_builds_and_describes_itself_to_clients():
    scene = (
        ready_grid()
        .gameplay(action_mapping={"ArrowUp+ArrowLeft": 1, "ArrowDown": 2})
        .rendering(fps=20)
        .content(header="Collect coins")
    )
    meta = scene.client_metadata()
    assert meta["keys"] == ["ArrowDown", "ArrowLeft", "ArrowUp"]
    assert meta["policies"]["agent_1"] == {"kind": "random", "where": "server"}
    assert (meta["fps"], meta["header"], meta["agents"]) == (20, "Collect coins", ["agent_0", "agent_1"])


def policy_and_value_heads(path, obs=29, actions=5):
    """``logits [batch, actions]`` and ``value [batch, 1]`` from ``obs [batch, obs]``."""
    rng = np.random.default_rng(3)
    w = numpy_helper.from_array(rng.standard_normal((obs, actions)).astype(np.float32), "W")
    v = numpy_helper.from_array(rng.standard_normal((obs, 1)).astype(np.float32), "V")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["obs", "W"], ["logits"]), helper.make_node("MatMul", ["obs", "V"], ["value"])],
        "two_heads",
        [helper.make_tensor_value_info("obs", TensorProto.FLOAT, ["batch", obs])],
        [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", actions]),
            helper.make_tensor_value_info("value", TensorProto.FLOAT, ["batch", 1]),
        ],
        [w, v],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def test_an_explicit_config_reading_the_value_head_is_refused(tmp_path):
    path = policy_and_value_heads(tmp_path / "heads.onnx")
    value_head = mug.ModelConfig(path, obs_input="obs", logit_output="value").validate()  # fine for the graph alone
    with pytest.raises(mug.ConfigError) as info:
        grid().policies({"agent_0": mug.Human, "agent_1": value_head})
    assert info.value.field == "logit_output"
    assert "policies['agent_1']: logit_output value float32 [batch, 1] holds 1 value(s) per step but the agent's " in str(
        info.value
    )
    assert "action space is Discrete(5), so the logit output must hold 5 logits" in str(info.value)
    grid().policies({"agent_0": mug.Human, "agent_1": mug.ModelConfig(path, obs_input="obs", logit_output="logits")})


def test_num_actions_against_the_value_head_fails_at_validate(tmp_path):
    path = policy_and_value_heads(tmp_path / "heads.onnx")
    with pytest.raises(mug.ConfigError, match=re.escape("num_actions=5 but the model's value float32 [batch, 1] holds 1 logits")):
        mug.ModelConfig(path, obs_input="obs", logit_output="value", num_actions=5).validate()


def test_a_discrete_observation_is_one_value_per_step(tmp_path):
    path = policy_and_value_heads(tmp_path / "frozen.onnx", obs=1, actions=4)
    scene = mug.GymScene("lake").environment("FrozenLake-v1")
    scene.policies({"agent_0": mug.ModelConfig.from_onnx(path)}, inference="server")  # Discrete(16) observations: 1 value
