"""A lost peer's seat goes to the AI at a frame every remaining peer agrees on (``RollbackPeer.lose_peer``), with a
recurrent ONNX agent already in the scene: the remaining peers' confirmed histories are identical, the frames
before the agreed one carry the lost seat's real inputs, and the whole history re-simulates."""

from __future__ import annotations

import pytest

from mug.netcode import EnvSimulation
from mug.netcode.simnet import Link, SimNet, held_inputs, run_peers
from tests.netcode.helpers import SEED, PlainCoopGrid, assert_same_histories, coop_peers, lstm_drivers, plain

STEPS = 40


def _losing(times: dict[str, float], lost: str, seen: dict[str, int]):
    """An ``on_tick`` that tells each peer at its time that ``lost`` is gone, noting what it held of its seat."""

    def on_tick(peer, now):
        if peer.peer_id in times and now >= times[peer.peer_id] and peer.peer_id not in seen:
            seen[peer.peer_id] = peer._upto[f"agent_{lost[1:]}"]
            peer.lose_peer(lost)

    return on_tick


def _replay(history, agents: int) -> None:
    """The confirmed history re-simulated from the start (what ``mug verify`` does with the stored steps)."""
    sim = EnvSimulation(lambda: PlainCoopGrid(agents=agents, size=5, coins=5, max_steps=STEPS), SEED)
    for record in history:
        assert sim.step(record.inputs).to_dict() == record.result.to_dict(), record.frame


def _seat_ai(events) -> list[dict]:
    return [e for e in events if e["type"] == "seat_ai"]


def test_two_peers_the_remaining_one_plays_the_lost_seat_with_the_ai_from_one_past_its_last_input():
    peers = coop_peers(2, ai=True, max_steps=STEPS)
    net = SimNet(default=Link(0.04, 0.01, loss=0.05), seed=3)
    seen: dict[str, int] = {}
    result = run_peers(
        peers,
        net,
        6.0,
        held_inputs(1),
        drivers=lstm_drivers(peers),
        leave={"p1": 2.0},
        on_tick=_losing({"p0": 2.3}, "p1", seen),
    )
    (event,) = _seat_ai(result.events["p0"])
    agreed = event["frame"]
    assert event == {"type": "seat_ai", "seat": "agent_1", "peer": "p1", "frame": seen["p0"] + 1}
    history = result.histories["p0"]
    assert [r.frame for r in history] == list(range(len(history))) and len(history) > 150  # it played on to the end
    played = peers[1]._inputs  # what the lost page stamped (kept from a little before its confirmed frame)
    for r in history:
        if r.frame < agreed:
            assert "agent_1" not in r.ai_digests
            assert r.frame not in played or r.inputs["agent_1"] == played[r.frame]["agent_1"]
        elif r.result.kind == "step":
            assert r.ai_digests["agent_1"] is not None and r.ai_digests["agent_2"] is not None
    old = {r.frame: r.to_dict() for r in result.histories["p1"]}
    assert old and all(plain([r])[0] == old[r.frame] for r in history if r.frame in old)  # p1's part agrees
    assert result.ai_steps["p0"] > 2 * (len(history) - agreed) * 0.9  # two AI seats from F on
    _replay(history, 3)
    assert peers[0].unresolved_desyncs == 0 and result.stats["p0"]["bad_messages"] == 0


def test_three_peers_agree_on_the_frame_though_one_held_more_of_the_lost_seats_inputs():
    # p1 -> p0 is down before p1 leaves, p1 -> p2 is not: p2 holds more of agent_1's inputs than p0 does; each
    # peer hears of the loss at its own time
    ids = ("p0", "p1", "p2")
    links = {(a, b): Link(0.03, 0.01, loss=0.03) for a in ids for b in ids if a != b}
    links[("p1", "p0")] = Link(0.03, 0.01, outage=(1.8, 9.0))
    peers = coop_peers(3, ai=True, max_steps=STEPS)
    seen: dict[str, int] = {}
    result = run_peers(
        peers,
        SimNet(links, seed=4),
        6.0,
        held_inputs(2),
        drivers=lstm_drivers(peers),
        leave={"p1": 2.0},
        on_tick=_losing({"p0": 2.2, "p2": 2.5}, "p1", seen),
    )
    assert seen["p0"] < seen["p2"]  # different K_p: without the agreement their histories would differ
    events = {pid: _seat_ai(result.events[pid]) for pid in ("p0", "p2")}
    assert events["p0"] == events["p2"] == [{"type": "seat_ai", "seat": "agent_1", "peer": "p1", "frame": seen["p2"] + 1}]
    agreed = events["p0"][0]["frame"]
    histories = {pid: result.histories[pid] for pid in ("p0", "p2")}
    assert_same_histories(histories, minimum=150)
    frames, played = {r.frame: r for r in histories["p0"]}, peers[1]._inputs
    assert all(frames[f].inputs["agent_1"] == played[f]["agent_1"] for f in range(seen["p0"] - 20, agreed))
    assert all("agent_1" in frames[f].ai_digests for f in frames if f >= agreed)
    _replay(histories["p0"], 4)
    assert all(p.unresolved_desyncs == 0 for p in (peers[0], peers[2]))
    assert result.stats["p0"]["bad_messages"] == result.stats["p2"]["bad_messages"] == 0
    # every episode end of the match is agreed by the two that remain
    ends = [r.frame for r in histories["p0"] if r.result.ended]
    agreed_ends = [e["frame"] for e in result.events["p2"] if e["type"] == "episode_end"]
    assert agreed_ends == ends[: len(agreed_ends)] and len(agreed_ends) >= len(ends) - 1 >= 3


def test_a_bad_handover_message_is_counted_and_dropped_a_late_one_and_the_lost_peers_packets_are_ignored():
    p0, _, _ = coop_peers(3, ai=False, max_steps=STEPS)
    bad = [
        {"t": "handover", "from": "p2", "peer": "p0", "start": 0, "inputs": {"agent_0": []}},  # about us
        {"t": "handover", "from": "p2", "peer": "p2", "start": 0, "inputs": {"agent_2": []}},  # about itself
        {"t": "handover", "from": "p2", "peer": "p9", "start": 0, "inputs": {}},  # no such peer
        {"t": "handover", "from": "p2", "peer": "p1", "start": -4, "inputs": {"agent_1": [0]}},
        {"t": "handover", "from": "p2", "peer": "p1", "start": 0, "inputs": {"agent_1": [7]}},  # not an action
        {"t": "handover", "from": "p2", "peer": "p1", "start": 0, "inputs": {"agent_2": [0]}},  # another seat
        {"t": "handover", "from": "p2", "peer": "p1", "start": 10**12, "inputs": {"agent_1": [0]}},  # far past any input
    ]
    for message in bad:
        p0.receive("p2", message)
    assert p0.stats.bad_messages == len(bad)
    with pytest.raises(ValueError, match="not another peer"):
        p0.lose_peer("p0")
    p0.receive("p2", {"t": "handover", "from": "p2", "peer": "p1", "start": 0, "inputs": {"agent_1": [3, 4]}})
    p0.lose_peer("p1")  # both remaining peers have announced: agreed at once
    (event,) = _seat_ai(p0.take_events())
    assert event == {"type": "seat_ai", "seat": "agent_1", "peer": "p1", "frame": 2}
    assert p0.ai_seats == ["agent_1"] and p0.remotes == ["p2"] and p0._inputs[1]["agent_1"] == 4
    p0.receive("p2", {"t": "handover", "from": "p2", "peer": "p1", "start": 0, "inputs": {}})  # a late repeat
    p0.receive("p1", {"t": "input", "from": "p1", "frame": 3, "adv": 0, "ack": -1, "start": 0, "inputs": {"agent_1": [1]}})
    p0.lose_peer("p1")  # said again: nothing happens
    assert p0.stats.bad_messages == len(bad) and p0.take_events() == []
    assert [to for to, _, m in p0.advance(0.0) if m["t"] == "handover"] == ["p2"]  # our announcement, to p2 only


class _LongThirdEpisode(PlainCoopGrid):
    """The third episode lasts 10 steps longer on this peer (a nondeterministic env: a desync after the hand-over)."""

    def reset(self, seed=None, options=None):
        self._episodes = getattr(self, "_episodes", 0) + 1
        self.max_steps = STEPS + 10 if self._episodes == 3 else STEPS
        return super().reset(seed, options)


def test_when_the_designated_peer_is_lost_the_next_one_takes_its_part_and_repairs_a_later_desync():
    ids = ("p0", "p1", "p2")
    links = {(a, b): Link(0.05, 0.02, loss=0.05, reorder=0.1) for a in ids for b in ids if a != b}
    peers = coop_peers(3, ai=True, max_steps=STEPS, envs={"p2": _LongThirdEpisode})
    seen: dict[str, int] = {}
    result = run_peers(
        peers,
        SimNet(links, seed=9),
        6.0,
        held_inputs(5),
        drivers=lstm_drivers(peers),
        leave={"p0": 1.5},
        on_tick=_losing({"p1": 1.9, "p2": 1.6}, "p0", seen),
    )
    events = {pid: _seat_ai(result.events[pid]) for pid in ("p1", "p2")}
    assert events["p1"] == events["p2"] and events["p1"][0]["frame"] == max(seen.values()) + 1
    assert peers[1].designated == peers[2].designated == "p1" and peers[1].humans == ["agent_1", "agent_2"]
    resyncs = [e for e in result.events["p2"] if e["type"] == "resync"]
    assert resyncs and all(e["from"] == "p1" and e["frame"] > events["p1"][0]["frame"] for e in resyncs)  # the new one repairs
    truth = {r.frame: r.to_dict() for r in result.histories["p1"]}
    differing = [r.frame for r in result.histories["p2"] if r.to_dict() != truth.get(r.frame, r.to_dict())]
    assert set(differing) <= {f for e in resyncs for f in range(e["first_bad_frame"], e["frame"])}  # flagged, as always
    assert len(truth) >= 150 and [r.frame for r in result.histories["p2"]] == list(range(len(result.histories["p2"])))
    _replay(result.histories["p1"], 4)
    assert all(p.unresolved_desyncs == 0 for p in peers[1:])


def test_four_peers_two_leave_at_nearly_the_same_time_and_the_two_left_agree_on_both_frames():
    # p1 and p2 close their tabs 50 ms apart; p0 hears of p1 first, p3 of p2 first, each at its own time: each lost
    # peer's announcement of the other is never made, and the two that remain still agree on both frames
    ids = ("p0", "p1", "p2", "p3")
    links = {(a, b): Link(0.03, 0.01, loss=0.03) for a in ids for b in ids if a != b}
    links[("p1", "p0")] = Link(0.03, 0.01, outage=(1.7, 9.0))  # p3 holds more of agent_1 than p0 does
    links[("p2", "p3")] = Link(0.03, 0.01, outage=(1.7, 9.0))  # and p0 more of agent_2 than p3 does
    peers = coop_peers(4, ai=True, max_steps=STEPS)
    held: dict[str, dict[str, int]] = {"p1": {}, "p2": {}}
    order = {"p0": [("p1", 2.2), ("p2", 2.25)], "p3": [("p2", 2.2), ("p1", 2.3)]}

    def on_tick(peer, now):
        for lost, at in order.get(peer.peer_id, []):
            if now >= at and peer.peer_id not in held[lost]:
                held[lost][peer.peer_id] = peer._upto[f"agent_{lost[1:]}"]
                peer.lose_peer(lost)

    result = run_peers(
        peers,
        SimNet(links, seed=6),
        6.0,
        held_inputs(3),
        drivers=lstm_drivers(peers),
        leave={"p1": 2.0, "p2": 2.05},
        on_tick=on_tick,
    )
    assert held["p1"]["p0"] < held["p1"]["p3"] and held["p2"]["p3"] < held["p2"]["p0"]
    events = {pid: sorted(_seat_ai(result.events[pid]), key=lambda e: e["seat"]) for pid in ("p0", "p3")}
    expected = [
        {"type": "seat_ai", "seat": "agent_1", "peer": "p1", "frame": held["p1"]["p3"] + 1},
        {"type": "seat_ai", "seat": "agent_2", "peer": "p2", "frame": held["p2"]["p0"] + 1},
    ]
    assert events["p0"] == events["p3"] == expected
    histories = {pid: result.histories[pid] for pid in ("p0", "p3")}
    assert_same_histories(histories, minimum=150)
    frames = {r.frame: r for r in histories["p0"]}
    for event in expected:
        seat, agreed, played = event["seat"], event["frame"], peers[int(event["peer"][1:])]._inputs
        assert all(frames[f].inputs[seat] == played[f][seat] for f in range(agreed - 20, agreed))
        assert all(seat in frames[f].ai_digests for f in frames if f >= agreed)
    _replay(histories["p0"], 5)
    assert all(p.unresolved_desyncs == 0 for p in (peers[0], peers[3]))
    assert result.stats["p0"]["bad_messages"] == result.stats["p3"]["bad_messages"] == 0
