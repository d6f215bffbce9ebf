"""``P2PPreview`` (``scene.preview()`` of a P2P scene) in CPython: real rollback peers in the kernel over a
simulated link, driven from Python and through the widget's messages as a front end sends them."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import mug
from mug.errors import ConfigError
from mug.examples.browser_grid import PyCoinGrid, draw
from mug.netcode import EnvSimulation
from mug.widgets import P2PPreview, ScenePreview, Trace
from tests.netcode.helpers import PlainCoopGrid
from tests.synthetic import lstm_model

KEYS = {"ArrowUp": 1, "ArrowDown": 2, "ArrowLeft": 3, "ArrowRight": 4}
MOVES = ["ArrowRight", "ArrowDown", "ArrowLeft", "ArrowUp"]


def duo(*, steps: int = 400, input_delay: int = 2, episodes: int = 1, env: type = PyCoinGrid) -> mug.GymScene:
    return (
        mug.GymScene("duo")
        .environment(env, {"max_steps": steps, "coins": 20}, seed=5)
        .policies({"agent_0": mug.Human, "agent_1": mug.Human})
        .gameplay(action_mapping=KEYS, num_episodes=episodes)
        .rendering(mode="surface", draw=draw, width=90, height=90, fps=30)
        .runtime(environment="browser")
        .multiplayer(mode="p2p", input_delay=input_delay, max_prediction=8)
    )


def wander(preview: P2PPreview, rounds: int = 6, frames: int = 7, seat: str = "agent_0") -> None:
    """``seat`` holds a new arrow every ``frames`` frames; the other seat idles."""
    for i in range(rounds):
        preview.step(frames, keys={seat: [MOVES[i % 4]]})


def common(preview: P2PPreview) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    a, b = (preview.histories[s] for s in ("agent_0", "agent_1"))
    n = min(len(a), len(b))
    return [r.to_dict() for r in a[:n]], [r.to_dict() for r in b[:n]]


def test_a_p2p_scene_previews_as_one_rollback_peer_per_human_seat():
    preview = duo().preview(latency_ms=50)
    assert isinstance(preview, P2PPreview) and preview.seats == ["agent_0", "agent_1"]
    assert preview.latency_ms == 50 and preview.status == "ready"
    assert {s: g.peer.peer_id for s, g in preview.games.items()} == {"agent_0": "agent_0", "agent_1": "agent_1"}
    server = duo().multiplayer(mode="server")
    assert isinstance(server.preview(), ScenePreview)  # other scenes keep the session engine's preview
    with pytest.raises(ConfigError, match="not a P2P scene"):
        P2PPreview(server)


def test_latency_above_the_input_delay_makes_the_idle_peer_roll_back_and_both_confirm_the_same_frames():
    preview = duo().preview(latency_ms=100)  # 3 frames at 30 fps, input delay 2: agent_1 learns agent_0's keys late
    wander(preview)
    assert preview.ticks == 42
    a, b = common(preview)
    assert len(a) > 30 and a == b  # every confirmed frame the same on both peers, inputs, results and hash chain
    held = [r["inputs"]["agent_0"] for r in a]
    assert set(held) >= {1, 2, 3, 4}  # the keys held became agent_0's actions
    assert set(r["inputs"]["agent_1"] for r in a) == {0}  # the idle seat
    stats = preview.stats("agent_1")
    assert stats["rollbacks"] >= 4 and stats["mispredictions"] >= 4 and stats["resim_frames"] >= stats["rollbacks"]
    assert stats["depth_p50"] >= 1 and stats["desyncs"] == 0
    assert preview.stats("agent_0")["rollbacks"] == 0  # agent_1's input never changes: nothing to mispredict
    # the record replays in a plain EnvSimulation, step by step
    sim = EnvSimulation(lambda: PyCoinGrid(max_steps=400, coins=20), 5, num_episodes=1, max_steps=400)
    for record in a:
        assert sim.step(record["inputs"]).to_dict() == record["result"]


def test_latency_within_the_input_delay_needs_no_rollback():
    preview = duo(input_delay=4).preview(latency_ms=60)  # 60 ms < 4 frames (133 ms): inputs arrive in time
    preview.step(5)  # (a key held from the very first frame fills frames 0..delay: the other peer predicted none)
    wander(preview)
    assert [preview.stats(s)["rollbacks"] for s in preview.seats] == [0, 0]
    a, b = common(preview)
    assert len(a) > 30 and a == b


def test_the_trace_has_the_confirmed_steps_and_the_rollback_statistics_per_tick_and_per_episode(tmp_path):
    preview = duo(steps=40, episodes=2).preview(latency_ms=150, jitter_ms=30)
    for i in range(40):
        preview.step(3, keys={"agent_0": [MOVES[i % 4]], "agent_1": [MOVES[(i + 1) % 4]]})
    assert preview.done and preview.status == "scene over"
    trace = preview.traces["agent_1"]
    net = trace.netcode
    assert list(net["tick"]) == list(range(preview.ticks))
    stats = preview.stats("agent_1")
    for name in ("rollbacks", "resim_frames", "stalls", "mispredictions", "desyncs", "frames"):
        assert int(net[name].sum()) == stats[name], name  # the ticks add up to the peer's counters
    assert int(net["depth"].max()) == max(stats["depths"]) and stats["rollbacks"] > 0
    assert (np.diff(net["confirmed"]) >= 0).all() and (net["frame"] > net["confirmed"]).any()
    episodes = trace.netcode_episodes
    assert [e["episode"] for e in episodes] == [0, 1]
    assert sum(e["rollbacks"] for e in episodes) <= stats["rollbacks"] and all("depths" in e for e in episodes)
    assert len(trace) == 80 and list(np.unique(trace.episodes)) == [0, 1]  # two episodes of 40 confirmed steps
    assert set(trace.sources["agent_0"]) == {"human"}
    same = [r for r in preview.histories["agent_1"] if r.result.kind == "step"]
    assert trace.actions["agent_0"].tolist() == [r.inputs["agent_0"] for r in same]
    loaded = Trace.load(trace.save(tmp_path / "p2p.npz"))
    assert {k: v.tolist() for k, v in loaded.netcode.items()} == {k: v.tolist() for k, v in net.items()}
    assert loaded.netcode_episodes == episodes


def test_the_link_changes_while_playing_and_lossy_links_still_agree():
    preview = duo().preview(latency_ms=0)
    preview.step(5)
    wander(preview, rounds=4)
    assert preview.stats("agent_1")["rollbacks"] == 0
    preview.set_link(latency_ms=200, loss=0.2)
    assert preview.net.default.latency_s == pytest.approx(0.2) and preview.net.default.loss == pytest.approx(0.2)
    wander(preview, rounds=8)
    assert preview.stats("agent_1")["rollbacks"] > 0 and preview.net.lost > 0
    preview.jitter_ms = 40.0  # the traitlet the widget's control sets
    assert preview.net.default.jitter_s == pytest.approx(0.04)
    a, b = common(preview)
    assert len(a) > 40 and a == b
    with pytest.raises(ConfigError, match="loss: expected a number from 0 to 1"):
        preview.set_link(loss=1.5)
    with pytest.raises(ConfigError, match="latency_ms"):
        preview.set_link(latency_ms=-1)
    with pytest.raises(ConfigError, match="jitter_ms: expected a number from 0 to 5000, got 9000"):
        preview.jitter_ms = 9000.0
    assert (preview.latency_ms, preview.jitter_ms, preview.loss) == (200.0, 40.0, 0.2)  # unchanged by the refusals


def test_the_views_messages_show_each_seat_and_its_held_keys_drive_that_seat():
    preview = duo().preview(latency_ms=100)
    sent: list[dict[str, Any]] = []
    preview.send = lambda message, buffers=None: sent.append(message)  # type: ignore[method-assign]
    preview._on_front_end(preview, {"type": "ready"}, [])
    assert [(m["seat"], m["type"]) for m in sent] == [
        ("agent_0", "scene"),
        ("agent_0", "frame"),
        ("agent_1", "scene"),
        ("agent_1", "frame"),
    ]
    assert sent[0]["scene"]["you"]["humans"] == ["agent_0"] and sent[1]["render"]["kind"] == "surface"
    preview._on_front_end(preview, {"type": "act", "seat": "agent_1", "keys": ["ArrowDown"]}, [])
    preview._on_front_end(preview, {"type": "control", "action": "step"}, [])
    preview.step(20)
    records = preview.histories["agent_0"]
    assert {r.inputs["agent_1"] for r in records} == {2} and {r.inputs["agent_0"] for r in records} == {0}
    frames = [m for m in sent if m["type"] == "frame"]
    assert {m["seat"] for m in frames} == {"agent_0", "agent_1"} and len(frames) > 20
    assert set(preview._stats) == {"agent_0", "agent_1"} and preview._stats["agent_0"]["rollbacks"] > 0
    preview._on_front_end(preview, {"type": "control", "action": "reset"}, [])
    assert preview.ticks == 0 and preview.histories["agent_0"] == [] and preview.status == "ready"


def test_an_ai_seat_runs_on_the_confirmed_timeline_of_every_peer(tmp_path):
    model = lstm_model(tmp_path / "lstm.onnx", obs=31, actions=5)  # PlainCoopGrid's 3 agents on 5 x 5: 31 floats
    scene = (
        mug.GymScene("trio")
        .environment(PlainCoopGrid, {"agents": 3, "size": 5, "coins": 5, "max_steps": 60}, seed=5)
        .policies({"agent_0": mug.Human, "agent_1": mug.Human, "agent_2": mug.ModelConfig.from_onnx(model)})
        .gameplay(action_mapping=KEYS, num_episodes=1)
        .runtime(environment="browser")
        .multiplayer(mode="p2p", input_delay=2, max_prediction=8)
    )
    preview = scene.preview(latency_ms=120, jitter_ms=20, loss=0.1)
    for i in range(12):
        preview.step(6, keys={"agent_0": [MOVES[i % 4]], "agent_1": [MOVES[(i + 2) % 4]]})
    assert preview.done and preview.errors == []
    a, b = common(preview)
    assert len(a) > 50 and a == b  # the AI's actions and hidden-state digests agree too
    steps = [r for r in a if r["result"]["kind"] == "step"]
    assert len({r["inputs"]["agent_2"] for r in steps}) > 1 and len({r["ai_digests"]["agent_2"] for r in steps}) == len(steps)
    assert set(preview.traces["agent_0"].sources["agent_2"]) == {"policy"}


def test_a_failing_ai_runtime_stops_the_preview_with_its_error(tmp_path):
    model = lstm_model(tmp_path / "lstm.onnx", obs=31, actions=5)
    scene = (
        mug.GymScene("trio")
        .environment(PlainCoopGrid, {"agents": 3, "size": 5, "coins": 5, "max_steps": 60}, seed=5)
        .policies({"agent_0": mug.Human, "agent_1": mug.Human, "agent_2": mug.ModelConfig.from_onnx(model)})
        .gameplay(action_mapping=KEYS)
        .runtime(environment="browser")
        .multiplayer(mode="p2p")
    )
    preview = scene.preview(latency_ms=0)

    def broken(observation: Any, agent: str) -> Any:
        raise RuntimeError("no session")

    preview._ai["agent_1"]["agent_2"][1].runtime.step = broken  # agent_1's peer's runtime of agent_2
    assert preview.step(20) < 20 and preview.done
    assert preview.status == "stopped by an error"
    assert preview.errors == ["the policy of AI seat 'agent_2' (peer agent_1) failed: RuntimeError: no session"]


def test_an_ai_seat_of_another_kind_than_a_model_is_refused():
    random_seat = (
        mug.GymScene("trio")
        .environment(PlainCoopGrid, {"agents": 3, "size": 5, "coins": 5, "max_steps": 60}, seed=5)
        .policies({"agent_0": mug.Human, "agent_1": mug.Human, "agent_2": mug.Random})
        .gameplay(action_mapping=KEYS)
        .runtime(environment="browser")
        .multiplayer(mode="p2p")
    )
    with pytest.raises(ConfigError, match="AI seat 'agent_2' is played by a random policy"):
        random_seat.preview()


class GlitchOnce(PyCoinGrid):
    """``PyCoinGrid`` that, once armed, loses a coin at step 12 in the first env to get there: only one peer's."""

    armed = False

    def step(self, actions):
        if GlitchOnce.armed and self.steps == 12 and len(self.coins) > 1:
            GlitchOnce.armed = False
            self.coins.pop()
        return super().step(actions)


def test_a_desync_is_detected_repaired_and_in_the_trace_without_duplicated_steps():
    preview = duo(env=GlitchOnce).preview(latency_ms=80, jitter_ms=20)
    GlitchOnce.armed = True
    try:
        wander(preview, rounds=10)
    finally:
        GlitchOnce.armed = False
    # agent_0's peer ticks first: its env glitched; the designated peer (agent_0's) sends its state to agent_1's
    kinds = {s: [e["type"] for e in preview.events[s]] for s in preview.seats}
    assert "desync" in kinds["agent_0"] and "desync" in kinds["agent_1"] and "resync" in kinds["agent_1"]
    assert preview.stats("agent_1")["resyncs"] == 1 and preview.stats("agent_0")["desyncs"] == 1
    trace = preview.traces["agent_1"]
    assert int(trace.netcode["desyncs"].sum()) == preview.stats("agent_1")["desyncs"]
    assert int(trace.netcode["resyncs"].sum()) == 1
    frames = trace.frames.tolist()
    assert frames == sorted(set(frames))  # the frames confirmed again after the state transfer are there once
    assert frames == [r.frame for r in preview.histories["agent_1"] if r.result.kind == "step"]
