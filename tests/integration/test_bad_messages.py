"""Every malformed message gets an ``error`` reply naming the problem; the session goes on."""

from __future__ import annotations

import json
import struct

import pytest

import mug
from mug.examples import CoinGrid
from mug.session import GameSession, MemoryRecorder, MemoryTransport, encode_envelope
from tests.synthetic import recurrent_model


@pytest.fixture()
def live(tmp_path):
    policy = mug.ModelConfig.from_onnx(recurrent_model(tmp_path / "p.onnx", obs=29, actions=5))
    scene = (
        mug.GymScene("grid")
        .environment(CoinGrid, seed=1)
        .policies({"agent_0": mug.Human, "agent_1": policy})
        .gameplay(action_mapping={"ArrowUp": 1}, mode="lockstep")
    )
    transport, recorder = MemoryTransport(), MemoryRecorder()
    session = GameSession(scene, ["c1"], transport, recorder, clock=lambda: 0.0, max_message_bytes=4096)
    session.start()
    transport.take("c1")
    return session, transport, recorder


def envelope_with_bad_lengths():
    header = json.dumps({"message": {"type": "act", "step": 0}, "buffers": [100]}).encode()
    return b"MUG1" + struct.pack("<I", len(header)) + header + b"\x00" * 10


CASES = [
    ("garbage bytes", b"\xff\xfe\x00\x81garbage", "bad_json", "neither an envelope nor UTF-8 JSON"),
    ("not JSON", "{act: 1", "bad_json", "not valid JSON"),
    ("not an object", "[1, 2, 3]", "bad_message", "expected a JSON object"),
    ("unknown type", {"type": "teleport"}, "unknown_type", "unknown message type 'teleport'"),
    ("missing type", {"step": 0}, "unknown_type", "unknown message type None"),
    ("stale step", {"type": "act", "step": -1}, "bad_field", "act.step: expected a step index"),
    ("future step", {"type": "act", "step": 7, "keys": []}, "future_step", "act for step 7, but the scene is at step 0"),
    ("keys not a list", {"type": "act", "step": 0, "keys": "ArrowUp"}, "bad_field", "act.keys"),
    (
        "unknown agent",
        {"type": "act", "step": 0, "policies": {"agent_9": {"action": 1}}},
        "unknown_agent",
        "does not run a policy for agent 'agent_9'",
    ),
    (
        "human agent as policy",
        {"type": "act", "step": 0, "policies": {"agent_0": {"action": 1}}},
        "unknown_agent",
        "agent 'agent_0'",
    ),
    (
        "action out of range",
        {"type": "act", "step": 0, "policies": {"agent_1": {"action": 9}}},
        "bad_action",
        "action 9 for agent 'agent_1' is not in its action space",
    ),
    (
        "action of the wrong type",
        {"type": "act", "step": 0, "policies": {"agent_1": {"action": "up"}}},
        "bad_field",
        "expected an integer action",
    ),
    (
        "tensor without buffer",
        {
            "type": "act",
            "step": 0,
            "policies": {"agent_1": {"action": 1, "logits": {"buffer": 3, "dtype": "float32", "shape": [5]}}},
        },
        "bad_tensor",
        "buffer 3 does not exist",
    ),
    ("oversized", "x" * 5000, "too_large", "exceeds the limit of 4096"),
    ("broken envelope", envelope_with_bad_lengths(), "bad_envelope", "shorter than their declared lengths"),
    ("survey answer in a game", {"type": "response", "answers": {}}, "wrong_scene", "is not part of environment scene 'grid'"),
]


@pytest.mark.parametrize(("raw", "code", "text"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_message_gets_an_error_and_the_session_continues(live, raw, code, text):
    session, transport, recorder = live
    session.receive("c1", raw)
    replies = transport.take("c1")
    assert [m["type"] for m, _ in replies] == ["error"]
    assert replies[0][0]["code"] == code and replies[0][0]["fatal"] is False
    assert text in replies[0][0]["message"]
    assert not session.done and session.decision == 0
    session.receive("c1", {"type": "act", "step": 0, "keys": ["ArrowUp"], "policies": {"agent_1": {"action": 2}}})
    assert session.decision == 1
    assert recorder.of_kind("step")[0]["actions"] == {"agent_0": 1, "agent_1": 2}


def test_a_tensor_whose_bytes_do_not_match_its_shape(live):
    session, transport, _ = live
    raw = encode_envelope(
        {
            "type": "act",
            "step": 0,
            "policies": {"agent_1": {"action": 1, "logits": {"buffer": 0, "dtype": "float32", "shape": [5]}}},
        },
        [b"\x00" * 12],
    )
    session.receive("c1", raw)
    assert "needs 20 bytes, buffer has 12" in transport.take("c1")[0][0]["message"]


def test_stale_act_after_the_step_moved_on(live):
    session, transport, _ = live
    session.receive("c1", {"type": "act", "step": 0, "policies": {"agent_1": {"action": 2}}})
    transport.take("c1")
    session.receive("c1", {"type": "act", "step": 0, "policies": {"agent_1": {"action": 2}}})
    assert transport.take("c1")[0][0]["code"] == "stale_step"


def test_messages_from_unknown_clients_are_ignored(live):
    session, transport, _ = live
    session.receive("mallory", {"type": "act", "step": 0, "policies": {"agent_1": {"action": 2}}})
    assert transport.sent == {} and session.decision == 0
