"""``ConfirmedLog`` (the server's record of a peer-to-peer match) fed with real peers' confirmed records."""

from __future__ import annotations

import copy
from typing import Any

import pytest

import mug
from mug.examples.browser_grid import PyCoinGrid
from mug.netcode import EnvSimulation, RollbackPeer
from mug.netcode.simnet import Link, SimNet, held_inputs, run_peers
from mug.server.matches.p2p_log import MAX_UNCHECKED, RATE_SLACK, ConfirmedLog

SEATS = {"agent_0": "alice", "agent_1": "bob"}


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    scene = (
        mug.GymScene("duo")
        .environment(PyCoinGrid, {"max_steps": 1000}, seed=5)
        .policies({"agent_0": mug.Human, "agent_1": mug.Human})
        .gameplay(action_mapping={"ArrowUp": 1}, num_episodes=2, max_steps=15)
        .runtime(environment="browser")
        .multiplayer(mode="p2p")
    )
    return scene.browser_spec()


@pytest.fixture(scope="module")
def histories(spec) -> dict[str, list[dict[str, Any]]]:
    """Both peers' confirmed records of a whole match (2 episodes of 15 steps), over a lossy network."""
    owners = {s: s for s in SEATS}
    peers = [
        RollbackPeer(EnvSimulation(lambda: PyCoinGrid(max_steps=1000), 5, num_episodes=2, max_steps=15), seat, owners)
        for seat in SEATS
    ]
    result = run_peers(peers, SimNet(default=Link(latency_s=0.04, loss=0.1), seed=2), 2.5, held_inputs(3))
    return {seat: [r.to_dict() for r in records] for seat, records in result.histories.items()}


class Recorded:
    """What the log stored, recorded and asked to verify."""

    def __init__(self, spec: dict[str, Any], clock: float = 1e6) -> None:
        self.steps: list[dict[str, Any]] = []
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.verified: list[tuple[int, list[dict[str, Any]]]] = []
        self.now = clock
        self.log = ConfirmedLog(
            spec,
            SEATS,
            [],
            30,
            store_step=self.steps.append,
            event=lambda kind, data: self.events.append((kind, data)),
            verify=lambda episode, steps: self.verified.append((episode, steps)),
            clock=lambda: self.now,
        )
        self.now += 1e6  # the match started long ago: no rate limit unless a test says so

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [d for k, d in self.events if k == kind]


def test_the_reference_steps_are_stored_once_the_other_peer_is_compared_and_episodes_verified(spec, histories):
    rec = Recorded(spec)
    ref, other = histories["agent_0"], histories["agent_1"]
    assert rec.log.add_frames("agent_1", other[:10]) is None  # ahead of the reference: waits to be compared
    assert rec.log.ack(SEATS) is None
    for start in range(0, len(ref), 7):
        assert rec.log.add_frames("agent_0", ref[start : start + 7]) is None
    assert rec.log.add_frames("agent_1", other) is None
    assert rec.log.add_frames("agent_0", ref) is None  # a resend: skipped
    steps = [r for r in ref if r["result"]["kind"] == "step"]
    assert [(s["frame"], s["chain"], s["actions"]) for s in rec.steps] == [(r["frame"], r["chain"], r["inputs"]) for r in steps]
    assert all(s["sources"] == {"agent_0": "human:alice", "agent_1": "human:bob"} for s in rec.steps)
    assert [(e, len(s)) for e, s in rec.verified] == [(0, 15), (1, 15)]
    assert rec.verified[1][1][0] == {"step": 0, **{k: rec.steps[15][k] for k in rec.verified[1][1][0] if k != "step"}}
    assert rec.events == []  # no mismatch, nothing unchecked
    last = min(ref[-1]["frame"], other[-1]["frame"])
    assert rec.log.ack(SEATS) == last and rec.log.ack(SEATS) is None  # once, when it goes up
    assert rec.log.unchecked == {"agent_0": 0, "agent_1": 0}


def test_a_different_chain_is_one_mismatch_event_until_the_peers_agree_again(spec, histories):
    rec = Recorded(spec)
    other = copy.deepcopy(histories["agent_1"])
    for r in other[5:9] + other[20:21]:
        r["chain"] = "0" * 16
    rec.log.add_frames("agent_0", histories["agent_0"])
    rec.log.add_frames("agent_1", other)
    chains = {r["frame"]: r["chain"] for r in histories["agent_0"]}
    assert rec.of("p2p_mismatch") == [
        {"frame": f, "peer": "agent_1", "chain": "0" * 16, "reference_chain": chains[f]} for f in (5, 20)
    ]


def test_bad_records_are_refused_and_nothing_after_them_is_taken(spec, histories):
    rec = Recorded(spec)
    ref = copy.deepcopy(histories["agent_0"])
    assert "frame 3 does not follow frame -1" in rec.log.add_frames("agent_0", ref[3:5])
    bad = copy.deepcopy(ref[6])
    bad["inputs"]["agent_1"] = 7
    problem = rec.log.add_frames("agent_0", [*ref[:6], bad, *ref[7:]])
    assert problem == "frame 6: input 7 of seat 'agent_1' is not in its action space Discrete(5)"
    assert rec.log.received["agent_0"] == 5 and [s["frame"] for s in rec.steps] == list(range(6))
    for field, value, text in (
        ("chain", 5, "chain must be"),
        ("inputs", {"agent_0": 1}, "one input per seat"),
        ("result", {**ref[6]["result"], "episode": 2}, "episode (0..1)"),
        ("result", {**ref[6]["result"], "rewards": {"agent_0": "a lot"}}, "rewards must be numbers"),
        ("result", {**ref[6]["result"], "kind": "skip"}, "kind ['step', 'reset', 'over']"),
    ):
        assert text in rec.log.add_frames("agent_0", [{**ref[6], field: value}])
    skipped = {**ref[6]["result"], "step": 9}
    assert "step 9 of episode 0 after step 5" in rec.log.add_frames("agent_0", [{**ref[6], "result": skipped}])
    assert rec.log.add_frames("agent_0", ref[6:]) is None  # good records go on from where the bad one was


def test_frames_faster_than_the_scene_allows_are_refused(spec, histories):
    rec = Recorded(spec)
    rec.now -= 1e6  # the match started now: RATE_SLACK frames are allowed at once
    over = next(r for r in histories["agent_1"] if r["result"]["kind"] == "over")
    records = [{**over, "frame": f} for f in range(RATE_SLACK + 1)]
    assert (
        rec.log.add_frames("agent_1", records)
        == f"frame {RATE_SLACK}: {RATE_SLACK + 1} frames delivered faster than the scene's 30 fps allows"
    )
    assert rec.log.received["agent_1"] == RATE_SLACK - 1
    assert (
        rec.log.resync("agent_0", RATE_SLACK + 1) == f"resync at frame {RATE_SLACK + 1}: further than the scene's 30 fps allows"
    )
    assert rec.log.received["agent_0"] == -1 and rec.events == []


def test_a_peer_far_ahead_of_the_reference_is_kept_to_the_cap_and_the_rest_counted_unchecked(spec, histories):
    rec = Recorded(spec)
    over = next(r for r in histories["agent_1"] if r["result"]["kind"] == "over")
    extra = 50
    for start in range(0, MAX_UNCHECKED + extra, 500):
        records = [{**over, "frame": f} for f in range(start, min(start + 500, MAX_UNCHECKED + extra))]
        assert rec.log.add_frames("agent_1", records) is None
    assert len(rec.log._waiting["agent_1"]) == MAX_UNCHECKED and rec.log.unchecked["agent_1"] == extra
    assert rec.log.ack(SEATS) is None  # nothing is stored: nothing is acknowledged


def test_a_resync_takes_the_frames_again_and_a_reloaded_reference_leaves_a_recorded_gap(spec, histories):
    rec = Recorded(spec)
    ref, other = histories["agent_0"], histories["agent_1"]
    rec.log.add_frames("agent_0", ref[:12])
    rec.log.add_frames("agent_1", other[:12])
    rec.log.resync("agent_1", 8)  # the other peer restarts from frame 8: its frames 8.. come again
    assert rec.log.add_frames("agent_1", other[8:12]) is None and rec.log.received["agent_1"] == 11
    rec.log.resync("agent_0", 14)  # the reference reloaded: its frames 12 and 13 (steps of episode 0) were never
    # sent, and the other peer has not delivered them either: its new records wait for them, until the match ends
    assert rec.log.add_frames("agent_0", ref[14:]) is None
    assert rec.of("p2p_gap") == [] and len(rec.steps) == 12 and rec.log.ack(SEATS) == 11
    rec.log.close()
    assert rec.of("p2p_gap") == [{"peer": "agent_0", "first": 12, "last": 13}]
    stored = [s["frame"] for s in rec.steps]
    assert stored[:12] == list(range(12)) and min(stored[12:]) == 14
    assert [e for e, _ in rec.verified] == [1]  # episode 0 is incomplete: not verified


def test_frames_a_reloaded_reference_never_sent_are_stored_from_the_other_peer(spec, histories):
    rec = Recorded(spec)
    ref, other = histories["agent_0"], histories["agent_1"]
    rec.log.add_frames("agent_0", ref[:12])
    rec.log.add_frames("agent_1", other[:12])
    rec.log.restarting("agent_0")  # the reference's tab reopens; its old page's frames 12.. are lost with it
    assert rec.log.resync("agent_0", 14) is None  # its new page starts from the state at frame 14
    assert rec.log.add_frames("agent_0", ref[14:30]) is None  # they wait: frames 12 and 13 are missing
    assert len(rec.steps) == 12 and rec.log.ack(SEATS) == 11
    assert rec.log.add_frames("agent_1", other[12:]) is None  # the other peer's upload has them
    assert rec.log.add_frames("agent_0", ref[30:]) is None
    rec.log.close()
    assert rec.of("p2p_gap") == []
    assert [s["frame"] for s in rec.steps] == [r["frame"] for r in ref if r["result"]["kind"] == "step"]
    assert [e for e, _ in rec.verified] == [0, 1]  # both episodes whole, so both verified
    assert rec.of("p2p_mismatch") == []
    # the stored inputs a reopened tab gets for its state request: the last stored frames', contiguous
    kept = rec.log.stored_inputs(["agent_0"], 10)
    assert kept == {"start": ref[-10]["frame"], "inputs": {"agent_0": [r["inputs"]["agent_0"] for r in ref[-10:]]}}
    assert Recorded(spec).log.stored_inputs(["agent_0"], 10) is None


def test_a_peer_that_delivers_nothing_holds_the_acknowledgement_back_by_the_cap_at_most(spec, histories):
    rec = Recorded(spec)
    over = next(r for r in histories["agent_0"] if r["result"]["kind"] == "over")
    for start in range(0, MAX_UNCHECKED + 100, 500):
        rec.log.add_frames("agent_0", [{**over, "frame": f} for f in range(start, min(start + 500, MAX_UNCHECKED + 100))])
        rec.log.ack(SEATS)
    assert rec.log.stored == MAX_UNCHECKED + 99 and rec.log.acked == 99
    assert rec.log.add_frames("agent_1", [{**over, "frame": 0}]) is None  # acknowledged already: skipped
    assert "frame 101 does not follow frame 99" in rec.log.add_frames("agent_1", [{**over, "frame": 101}])
    assert rec.log.add_frames("agent_1", [{**over, "frame": 100}]) is None
    assert rec.log.unchecked["agent_1"] == 100  # its frames 0..99 were acknowledged without being compared


def test_a_reloaded_peers_superseded_records_are_not_mismatches_and_a_page_that_kept_its_game_is_compared(spec, histories):
    ref, other = histories["agent_0"], histories["agent_1"]
    superseded = copy.deepcopy(other[:20])
    for r in superseded[15:]:
        r["chain"] = "old-page-" + r["chain"][:20]  # the old page confirmed inputs the state's sender never got
    # a reload: the old page had uploaded frames 0..19; its tab reopens; the reference stores on; the new page
    # restarted from the state at frame 15
    rec = Recorded(spec)
    assert rec.log.add_frames("agent_1", superseded) is None
    rec.log.restarting("agent_1")
    assert rec.log.add_frames("agent_0", ref[:40]) is None
    assert rec.log.resync("agent_1", 15) is None
    assert rec.log.add_frames("agent_1", other[15:40]) is None
    assert rec.of("p2p_mismatch") == [] and rec.log.unchecked["agent_1"] == 0
    # without the hold the superseded frames are a mismatch; a page that kept its game (it resends) is compared
    for hold in (False, True):
        rec = Recorded(spec)
        assert rec.log.add_frames("agent_1", superseded) is None
        if hold:
            rec.log.restarting("agent_1")
        assert rec.log.add_frames("agent_0", ref[:40]) is None
        assert rec.log.add_frames("agent_1", other[20:30]) is None
        assert [e["frame"] for e in rec.of("p2p_mismatch")] == [15]


def test_a_seat_handed_to_the_ai_is_no_longer_compared_and_a_lost_reference_is_replaced_by_the_next_peer(spec, histories):
    rec = Recorded(spec)
    ref, other = histories["agent_0"], histories["agent_1"]
    assert rec.log.add_frames("agent_0", ref[:10]) is None
    assert rec.log.add_frames("agent_1", other[:25]) is None  # beyond what the reference delivered: waiting
    assert rec.log.stored == 9
    rec.log.hand_over("agent_0")  # the reference's member is gone: agent_1's waiting records are stored now
    assert rec.log.reference == "agent_1" and rec.log.stored == 24
    assert rec.log.add_frames("agent_0", ref[10:]) is None  # a lost page's late records are not taken
    assert rec.log.add_frames("agent_1", other[25:]) is None
    steps = [r for r in other if r["result"]["kind"] == "step"]
    assert [(s["frame"], s["chain"]) for s in rec.steps] == [(r["frame"], r["chain"]) for r in steps]
    assert [(e, len(s)) for e, s in rec.verified] == [(0, 15), (1, 15)]
    assert rec.log.ack(["agent_1"]) == other[-1]["frame"]
    assert rec.of("p2p_mismatch") == [] and rec.of("p2p_gap") == []
    with pytest.raises(ValueError, match="not a seat of this match still played"):
        rec.log.hand_over("agent_0")


def test_a_reference_lost_while_its_reloaded_page_skipped_frames_leaves_the_next_peer_to_store_them_all(spec, histories):
    rec = Recorded(spec)
    ref, other = histories["agent_0"], histories["agent_1"]
    rec.log.add_frames("agent_0", ref[:12])
    rec.log.add_frames("agent_1", other[:12])
    rec.log.restarting("agent_0")
    assert rec.log.resync("agent_0", 14) is None  # the reference's new page skips frames 12 and 13 ...
    assert rec.log.add_frames("agent_0", ref[14:20]) is None  # ... and its frames 14.. wait for them
    rec.log.hand_over("agent_0")  # then its member is gone: agent_1, the reference now, delivers every frame
    assert rec.log.add_frames("agent_1", other[12:]) is None
    rec.log.close()
    assert rec.of("p2p_gap") == [] and rec.of("bad_p2p_frames") == [] and rec.of("p2p_mismatch") == []
    assert [(s["frame"], s["chain"]) for s in rec.steps] == [
        (r["frame"], r["chain"]) for r in other if r["result"]["kind"] == "step"
    ]
    assert [(e, len(s)) for e, s in rec.verified] == [(0, 15), (1, 15)]
    assert rec.log.ack(["agent_1"]) == other[-1]["frame"]


def test_steps_whose_records_carry_a_handed_seats_ai_digest_are_the_policys(spec, histories):
    rec = Recorded(spec)
    records = copy.deepcopy(histories["agent_0"])
    for r in records[12:]:  # from frame 12 the AI plays agent_1 (its digest enters the records, as the netcode's)
        r["ai_digests"] = {"agent_1": None if r["result"]["kind"] != "step" else "ab" * 8}
    assert rec.log.add_frames("agent_0", records)[:40].startswith("frame 12: ai_digests must map AI seats")
    rec = Recorded(spec)
    rec.log.hand_over("agent_1")
    assert rec.log.add_frames("agent_0", records) is None
    assert [s["sources"]["agent_1"] for s in rec.steps] == ["human:bob"] * 12 + ["policy"] * (len(rec.steps) - 12)
    assert all(s["ai_digests"] == ({"agent_1": "ab" * 8} if s["frame"] >= 12 else {}) for s in rec.steps)
