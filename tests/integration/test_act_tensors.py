"""Tensors a browser reports in an ``act`` are checked against its model before anything is stored."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import mug
from mug.examples.cartpole import draw_cartpole
from mug.examples.demo import demo_study
from mug.scenes.gym_scene import GymScene
from mug.server.simulate import SimulatedParticipant
from mug.server.store import Store
from mug.session.act_checks import check_policy_result
from mug.session.messages import MessageError
from tests.bots import DEMO_ANSWERS, run_async

LSTM = Path(mug.__file__).parent / "examples" / "cartpole_lstm.onnx"
AMPLIFY = Path(__file__).with_name("amplify_act.mjs")  # every second act: huge logits, an invented state


def test_tensor_amplification_is_refused_with_a_clear_error_and_the_store_stays_bounded(tmp_path):
    async def main():
        deployment = mug.deploy(demo_study(episodes=1, max_steps=20), port=0, data_dir=tmp_path)
        stats = await SimulatedParticipant(deployment.url, "attacker", answers=DEMO_ANSWERS).run(hooks=AMPLIFY)
        deployment.stop()
        return stats

    stats = run_async(main())
    assert stats.completion_code == "MUGDEMO"  # the session went on to the end
    errors = [e for e in stats.errors if e["code"] == "bad_tensor"]
    assert errors and len(errors) == len(stats.errors)
    message = errors[0]["message"]
    assert "act.policies['agent_1'].logits" in message and "[60000] float32" in message and "expected shape [5]" in message
    store = Store(tmp_path, readonly=True)
    steps = store.steps("coins")
    problems = store.events("bad_tensor")
    record_bytes = store.db.execute("SELECT MAX(LENGTH(record)) FROM steps").fetchone()[0]
    store.close()
    logits = [s["policy_outputs"]["agent_1"]["logits"] for s in steps]
    assert len(steps) == 20 and {s["sources"]["agent_1"] for s in steps} == {"policy"}  # every act counted
    assert logits.count(None) == len(problems) == len(errors) >= 5  # the amplified tensors were left out, and said so
    assert all(len(x) == 5 for x in logits if x is not None)
    assert all(s["policy_outputs"]["agent_1"]["states"] == {} for s in steps)
    assert record_bytes < 2000  # a step of this model: 5 logits, no state; never the 240 KB that was sent


def _lstm_scene() -> GymScene:
    config = mug.ModelConfig.from_onnx(LSTM)
    return (
        GymScene("lstm")
        .environment("CartPole-v1", seed=1)
        .policies({"agent_0": config})
        .rendering(mode="surface", draw=draw_cartpole)
    )


@pytest.mark.parametrize(
    ("result", "needle"),
    [
        ({"logits": np.zeros(3, np.float32)}, "logits: got shape [3] float32, expected shape [2] float32"),
        ({"logits": np.zeros((2, 2), np.float32)}, "got shape [2, 2] float32, expected shape [2]"),
        ({"logits": np.zeros(2, np.int32)}, "got shape [2] int32, expected shape [2] float32"),
        ({"logits": np.array([0.0, np.inf], np.float32)}, "holds an infinite value"),
        ({"states": {"state_out_9": np.zeros((1, 8), np.float32)}}, "'state_out_9' is not a state output"),
        (
            {"states": {"state_out_0": np.zeros((1, 800), np.float32)}},
            "states['state_out_0']: got shape [1, 800] float32, expected shape [1, 8]",
        ),
    ],
)
def test_policy_results_that_the_model_cannot_produce_are_refused(result, needle):
    with pytest.raises(MessageError) as info:
        check_policy_result(_lstm_scene(), "agent_0", {"action": 0, **result})
    assert info.value.code == "bad_tensor" and needle in str(info.value)


def test_what_the_model_produces_is_accepted_nan_included():
    scene = _lstm_scene()
    runtime = mug.PolicyRuntime(scene.policy_specs["agent_0"].config)
    out = runtime.step(np.zeros(4, np.float32), "agent_0")
    states = {n: np.asarray(v) for n, v in out.states.items()}
    check_policy_result(scene, "agent_0", {"action": out.action, "logits": np.asarray(out.logits), "states": states})
    check_policy_result(scene, "agent_0", {"action": 0, "logits": np.array([np.nan, 0.0], np.float32), "states": {}})
    flat = {"action": 0, "logits": None, "states": {"state_out_0": np.zeros(8, np.float32)}}  # a custom function's flat state
    check_policy_result(scene, "agent_0", flat)
    assert flat["states"]["state_out_0"].shape == (1, 8)  # stored in the model's shape
