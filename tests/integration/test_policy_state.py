"""The engine keeps each browser-side agent's latest state from its acts and hands it to a page that (re)loads."""

from __future__ import annotations

import numpy as np
import pytest

import mug
from mug.examples import CoinGrid
from mug.session import GameSession, MemoryRecorder, MemoryTransport, encode_envelope
from mug.session.messages import MessageError, decode_inbound, tensor_from_ref, tensor_ref
from tests.synthetic import recurrent_model

KEYS = {"ArrowUp": 1, "ArrowDown": 2}


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    return mug.ModelConfig.from_onnx(recurrent_model(tmp_path_factory.mktemp("state") / "p.onnx", obs=29, actions=5))


def start(policy, mode):
    scene = (
        mug.GymScene("grid")
        .environment(CoinGrid, {"max_steps": 50}, seed=5)
        .policies({"agent_0": mug.Human, "agent_1": policy}, inference="browser")
        .gameplay(action_mapping=KEYS, mode=mode)
    )
    transport, recorder = MemoryTransport(), MemoryRecorder()
    s = GameSession(scene, ["c1"], transport, recorder)
    s.start()
    return s, transport, recorder


def act(s, transport, browser, **extra):
    """The act a page sends for the latest frame: its policy run on the frame's observation, with its position."""
    frame, buffers = transport.last("c1", "frame")
    out = browser.step(tensor_from_ref(frame["observations"]["agent_1"], buffers, "obs"), "agent_1")
    bufs: list[bytes] = []
    position = browser.snapshot()["agents"]["agent_1"]
    result = {
        "action": out.action,
        "logits": tensor_ref(out.logits, bufs),
        "states": {"h_out": tensor_ref(out.states["h_out"], bufs)},
        "rng": position["rng"],
        "steps": position["steps"],
    }
    message = {
        "type": "act",
        "step": frame["step"],
        "episode": frame["episode"],
        "keys": ["ArrowUp"],
        "policies": {"agent_1": result},
    }
    s.receive("c1", encode_envelope({**message, **extra}, bufs))
    return out


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("mode", ["lockstep", "realtime"])
def test_a_reloading_page_gets_the_state_from_before_the_step_it_is_sent(policy, mode):
    s, transport, recorder = start(policy, mode)
    browser = mug.PolicyRuntime(policy, seed=0)
    assert transport.last("c1", "scene")[0]["scene"]["you"]["policy_states"] == {}  # a first load starts fresh
    for _ in range(4):
        act(s, transport, browser)
        if mode == "realtime":
            s.tick()
    expected = browser.snapshot()["agents"]["agent_1"]
    act(s, transport, browser)  # step 4's result: in realtime it waits for the tick; the page reloads first
    if mode == "lockstep":
        expected = browser.snapshot()["agents"]["agent_1"]
    s.receive("c1", {"type": "ready"})
    saved = transport.last("c1", "scene")[0]["scene"]["you"]["policy_states"]["agent_1"]
    expected_step = 3 if mode == "realtime" else 4  # realtime is still at step 4 (acted on): the page recomputes it
    assert (saved["episode"], saved["step"], saved["rng"], saved["steps"]) == (
        0,
        expected_step,
        expected["rng"],
        expected["steps"],
    )
    np.testing.assert_array_equal(np.asarray(saved["states"]["h_out"]["data"], np.float32), expected["states"][0].reshape(-1))
    assert saved["states"]["h_out"]["dims"] == list(expected["states"][0].shape)
    assert [e["agents"] for e in recorder.of_kind("policy_restored")] == [{"agent_1": {"episode": 0, "step": expected_step}}]


def test_dropped_frames_are_recorded_and_bad_positions_refused(policy):
    s, transport, recorder = start(policy, "lockstep")
    act(s, transport, mug.PolicyRuntime(policy, seed=0), dropped=3)
    assert [(e["count"], e["step"]) for e in recorder.of_kind("frames_dropped")] == [(3, 0)]
    base = {"type": "act", "step": 0, "keys": []}
    for bad, field in [
        ({"dropped": -1}, "act.dropped"),
        ({"policies": {"a": {"action": 1, "rng": 2**32, "steps": 1}}}, "rng and steps go together"),
        ({"policies": {"a": {"action": 1, "rng": 5}}}, "rng and steps go together"),
    ]:
        with pytest.raises(MessageError, match=field):
            decode_inbound({**base, **bad})
