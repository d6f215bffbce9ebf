"""A peer survives garbage from another peer: bounded fields, clamped acks and frames, bounded memory, checked
actions, atomic state transfers, capped repairs."""

from __future__ import annotations

import copy
import json

import pytest

from mug.netcode.simnet import Link, SimNet, held_inputs, run_peers
from tests.netcode.helpers import PlainCoopGrid, assert_same_histories, coin_peers, coop_peers


def _started():
    p0, _ = coop_peers(2, ai=False)
    for t in range(5):
        p0.add_local_input("agent_0", 1)
        p0.advance(t / 30)
    return p0


def _input(**fields):
    return {"t": "input", "from": "p1", "frame": 3, "adv": 0, "ack": 0, "start": 0, "inputs": {}} | fields


@pytest.mark.parametrize(
    "message",
    [
        _input(frame=json.loads("1e400")),
        _input(adv=10**400),
        _input(ack=float("nan")),
        _input(start=True),
        {"t": "hash", "from": "p1", "frame": json.loads("1e400"), "hash": "x", "epoch": 0},
        {"t": "hash", "from": "p1", "frame": 10**6, "hash": "x", "epoch": 0},
        {"t": "episode", "from": "p1", "episode": 10**9, "frame": 2},
        _input(inputs={"agent_1": ["garbage"]}),
        _input(inputs={"agent_1": [99]}),
        _input(inputs={"agent_1": [None]}),
    ],
    ids=["frame-inf", "adv-huge", "ack-nan", "start-bool", "hash-inf", "hash-ahead", "episode-ahead", "text", "99", "none"],
)
def test_an_out_of_bounds_message_is_counted_and_dropped_without_raising(message):
    p0 = _started()
    p0.receive("p1", message)
    assert p0.stats.bad_messages == 1
    for t in range(5, 20):
        p0.advance(t / 30)
    assert p0.confirmed == -1  # nothing from p1 was taken: its seat's inputs are still unknown
    assert p0.memory()["hashes"] == len(p0._hashes) and p0.memory()["episodes"] == 0


def test_a_garbage_ack_or_frame_is_clamped_and_counted_and_does_not_stop_sending_or_skew_time_sync():
    p0 = _started()
    p0.receive("p1", _input(ack=10**9, inputs={"agent_1": [0]}))
    out = p0.advance(6 / 30)
    assert p0.stats.bad_messages == 1
    (message,) = [m for _, channel, m in out if channel == "input"]
    assert message["inputs"]["agent_0"]  # p0 still sends its inputs to p1
    p0 = _started()
    p0.receive("p1", _input(frame=10**9, inputs={"agent_1": [0]}))
    out = p0.advance(6 / 30)
    assert p0.stats.bad_messages == 1
    (message,) = [m for _, channel, m in out if channel == "input"]
    assert abs(message["adv"]) <= p0.horizon


def test_a_flood_of_hashes_and_episode_reports_holds_bounded_memory():
    p0 = _started()
    for i in range(2000):
        p0.receive("p1", {"t": "hash", "from": "p1", "frame": i % 7, "hash": f"h{i}", "epoch": 0})
        p0.receive("p1", {"t": "episode", "from": "p1", "episode": i, "frame": 1})
    held = p0.memory()
    assert held["hashes"] <= 7 and held["episodes"] <= p0.horizon + 1, held


def test_a_state_transfer_the_simulation_refuses_changes_nothing():
    for damage in ("result-extra-key", "sim-missing-episode", "yours-invalid-action"):
        p0, p1 = coin_peers()
        run_peers([p0, p1], SimNet(seed=0), 0.5, held_inputs(0))
        p0._send_state("p1")
        (message,) = [m for _, _, m in p0._outbox if m["t"] == "state"]
        p0._outbox.clear()
        message = copy.deepcopy(message)
        if damage == "result-extra-key":
            message["result"]["extra"] = 1
        elif damage == "sim-missing-episode":
            del message["sim"]["episode"]
        else:
            message["yours"]["agent_1"] = [7]
        before = (p1.frame, p1.confirmed, p1.stats.resyncs, p1.sim.state_hash(), len(p1._ring))
        p1.receive("p0", message)
        assert p1.stats.bad_messages == 1 and p1.take_events() == [], damage
        assert (p1.frame, p1.confirmed, p1.stats.resyncs, p1.sim.state_hash(), len(p1._ring)) == before, damage
        for t in range(16, 40):
            p1.add_local_input("agent_1", 1)
            p1.advance(t / 30)  # the peer plays on


def test_a_local_input_outside_the_action_space_is_refused():
    p0, _ = coin_peers()
    with pytest.raises(ValueError, match="action space"):
        p0.add_local_input("agent_0", 5)


class _AlwaysGlitchyCoopGrid(PlainCoopGrid):
    """Moves ``agent_0`` to a corner at every 3rd step: a peer whose env diverges again after every repair."""

    def step(self, actions):
        if self.steps % 3 == 2:
            self.positions["agent_0"] = (0, 0) if self.positions["agent_0"] != (0, 0) else (self.size - 1, 0)
        return super().step(actions)


def test_repairs_of_a_peer_that_keeps_diverging_back_off_and_stop_with_an_unrepairable_event():
    peers = coop_peers(2, ai=False, max_steps=200, envs={"p1": _AlwaysGlitchyCoopGrid}, max_transfers=3)
    result = run_peers(peers, SimNet(default=Link(0.03, 0.01), seed=2), 12.0, held_inputs(1))
    (gave_up,) = [e for e in result.events["p0"] if e["type"] == "unrepairable"]
    assert gave_up["peer"] == "p1" and gave_up["transfers"] == 3
    resyncs = [e["frame"] for e in result.events["p1"] if e["type"] == "resync"]
    assert len(resyncs) == 3
    assert resyncs[2] - resyncs[1] > resyncs[1] - resyncs[0] > 0  # the pause between transfers grows
    assert peers[0].confirmed > resyncs[-1] + 60  # the match goes on (diverged, as reported)


def test_histories_are_compared_over_the_whole_confirmed_range_and_a_peer_that_stops_early_fails():
    p0, p1 = coin_peers()
    result = run_peers([p0, p1], SimNet(seed=0), 3.0, held_inputs(0))
    assert_same_histories(result.histories, minimum=80)
    with pytest.raises(AssertionError):
        assert_same_histories({"p0": result.histories["p0"], "p1": result.histories["p1"][:40]}, minimum=30)
