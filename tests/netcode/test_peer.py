"""Unit tests of one rollback peer's rules: input delay, prediction, the prediction window, time sync, episodes."""

from __future__ import annotations

import pytest

from mug.netcode.simnet import Link, SimNet, held_inputs, run_peers
from mug.netcode.sync import TimeSync
from tests.netcode.helpers import assert_same_histories, coin_peers, coop_peers, lstm_drivers


def test_a_local_input_is_applied_input_delay_frames_after_it_was_read():
    peers = coin_peers(input_delay=3)

    def inputs(peer, seat, frame):
        return 4 if peer == "p0" and frame >= 10 else 0

    result = run_peers(peers, SimNet(seed=0), 2.0, inputs)
    history = result.histories["p0"]
    assert [r.inputs["agent_0"] for r in history[:14]] == [0] * 13 + [4]
    assert result.histories["p1"][13].inputs["agent_0"] == 4
    assert result.stats["p0"]["latency_ms_p50"] == 100  # 3 frames at 30 fps, as long as nothing stalls


def test_an_unknown_input_is_predicted_as_the_seats_last_known_one():
    steady = coin_peers(input_delay=1)
    result = run_peers(
        steady, SimNet(default=Link(0.1, 0.02), seed=1), 3.0, lambda peer, seat, frame: 2 if seat == "agent_0" else 3
    )
    for pid in ("p0", "p1"):  # held inputs: only the first frames, predicted as the default action, are corrected
        assert result.stats[pid]["mispredictions"] == 1 and result.stats[pid]["rollbacks"] == 1
    assert result.histories["p0"][50].inputs == {"agent_0": 2, "agent_1": 3}

    changing = coin_peers(input_delay=1)
    result = run_peers(changing, SimNet(default=Link(0.1, 0.02), seed=1), 3.0, held_inputs(9, hold=3))
    for pid in ("p0", "p1"):
        assert result.stats[pid]["mispredictions"] > 0 and result.stats[pid]["rollbacks"] > 0
        assert result.stats[pid]["depth_p99"] <= changing[0].max_prediction
    assert_same_histories(result.histories, minimum=70)


def test_a_peer_stalls_at_the_prediction_window_and_its_snapshots_stay_within_it():
    peers = coin_peers(max_prediction=5)
    silence = {("p1", "p0"): Link(0.02, outage=(0.5, 99.0))}
    seen = []

    def check(peer, now):
        if peer.peer_id == "p0":
            seen.append((peer.frame - peer.confirmed - 1, peer.memory()["snapshots"]))

    result = run_peers(peers, SimNet(silence, default=Link(0.02), seed=2), 2.0, held_inputs(1), on_tick=check)
    assert max(ahead for ahead, _ in seen) == 5 == seen[-1][0]
    assert max(snapshots for _, snapshots in seen) <= 6
    assert result.stats["p0"]["stalls"] > 30
    assert peers[0].frame < 30  # it waits instead of running on alone


def test_the_start_barrier_a_page_ready_early_waits_for_its_partner_instead_of_stalling_in_episode_0():
    lost = {}
    for barrier in (True, False):  # p1's game is ready 1 s later (its Pyodide loaded slower)
        peers = coin_peers(input_delay=2, max_prediction=8, start_barrier=barrier)
        result = run_peers(peers, SimNet(default=Link(0.05, 0.01), seed=3), 4.0, held_inputs(2), start_s={"p1": 1.0})
        early = result.stats["p0"]
        lost[barrier] = early["stalls"] + early["held"]
        assert_same_histories(result.histories, minimum=60)
    assert lost[True] <= 3 and lost[False] >= 20, lost  # without the barrier p0 runs ahead alone, then waits


def test_time_sync_makes_the_peer_ahead_hold_frames_so_both_roll_back():
    peers = coin_peers(input_delay=1, max_prediction=12, start_barrier=False)  # p1 starts 0.2 s late: p0 is ahead
    result = run_peers(peers, SimNet(default=Link(0.08, 0.01), seed=4), 6.0, held_inputs(5, hold=2), start_s={"p1": 0.2})
    early, late = result.stats["p0"], result.stats["p1"]
    assert early["held"] >= 4 and late["held"] <= 2  # p0 started 6 frames early: it gives most of them back
    total = early["resim_frames"] + late["resim_frames"]
    assert min(early["resim_frames"], late["resim_frames"]) > 0.3 * total  # neither peer does most of the re-simulating
    assert abs(peers[0].frame - peers[1].frame) <= 2 + round(0.08 * 30)


def test_time_sync_samples_only_a_peers_newer_frames():
    sync = TimeSync(["p1"], samples=4, min_samples=1)
    sync.observe(10, "p1", 6, 0)
    assert sync.ahead() == 2.0
    for _ in range(3):
        sync.observe(11, "p1", 6, -9)  # a duplicate, or a reordered packet with older numbers
        sync.observe(11, "p1", 5, -9)
    assert sync.ahead() == 2.0
    sync.observe(11, "p1", 7, 0)
    assert sync.ahead() == 2.0 and sync.remote_frame["p1"] == 7


def test_episodes_end_and_restart_on_the_confirmed_timeline():
    peers = coop_peers(2, max_steps=20)
    result = run_peers(peers, SimNet(default=Link(0.05, 0.02, 0.05), seed=6), 3.0, held_inputs(3), drivers=lstm_drivers(peers))
    assert_same_histories(result.histories, minimum=60)
    history = result.histories["p0"]
    ends = [r.frame for r in history if r.result.ended]
    assert len(ends) >= 2
    for frame in ends:
        after = history[frame + 1].result if frame + 1 < len(history) else None
        if after is not None:
            assert after.kind == "reset" and after.episode == history[frame].result.episode + 1 and after.step == 0
            assert history[frame + 1].inputs["agent_2"] is None  # no AI turn on a state that ended its episode
    assert [r.result.step for r in history[ends[0] + 2 : ends[1] + 1]] == list(range(20))
    for pid in ("p0", "p1"):
        agreed = [(e["episode"], e["frame"]) for e in result.events[pid] if e["type"] == "episode_end"]
        assert agreed[: len(ends)] == [(history[f].result.episode, f) for f in ends][: len(agreed)]
        assert len(agreed) >= len(ends) - 1
        per_episode = [e["stats"] for e in result.events[pid] if e["type"] == "episode_end"]
        assert sum(s["rollbacks"] for s in per_episode) <= result.stats[pid]["rollbacks"]
        assert all(sum(s["depths"].values()) == s["rollbacks"] and s["frames"] > 0 for s in per_episode)
        assert sum(s["rollbacks"] for s in per_episode) > 0


@pytest.mark.parametrize(
    "message",
    [
        None,
        {"t": "input"},
        {"t": "input", "from": "p9", "frame": 0, "adv": 0, "ack": -1, "start": 0, "inputs": {}},
        {"t": "input", "from": "p1", "frame": 0, "adv": 0, "ack": -1, "start": 0, "inputs": {"agent_0": [1]}},
        {"t": "hash", "from": "p1", "frame": "x"},
        {"t": "state", "from": "p1"},
        {"t": "nonsense", "from": "p1"},
    ],
    ids=["none", "incomplete", "stranger", "foreign-seat", "bad-hash", "state-from-non-designated", "unknown"],
)
def test_a_malformed_message_is_counted_and_dropped(message):
    p0, p1 = coin_peers()
    p0.receive("p1", message)
    assert p0.stats.bad_messages == 1
    result = run_peers([p0, p1], SimNet(seed=0), 1.0, held_inputs(0))
    assert_same_histories(result.histories, minimum=25)


def test_a_peer_checks_its_arguments():
    p0, _ = coin_peers()
    with pytest.raises(ValueError, match="not a local seat"):
        p0.add_local_input("agent_1", 1)
    with pytest.raises(ValueError, match="no open request"):
        p0.provide_ai("agent_1", 0, 1)


def test_an_incomplete_state_transfer_from_the_designated_peer_is_dropped_before_it_changes_anything():
    p0, p1 = coin_peers()
    run_peers([p0, p1], SimNet(seed=0), 0.5, held_inputs(0))
    before = (p1.frame, p1.confirmed, p1.sim.state_hash())
    p1.receive("p0", {"t": "state", "from": "p0", "frame": 5, "sim": p0.sim.snapshot(), "chain": "x", "ai": {}, "last": {}})
    assert p1.stats.bad_messages == 1 and p1.stats.resyncs == 0
    assert (p1.frame, p1.confirmed, p1.sim.state_hash()) == before


def test_an_ai_answer_to_a_request_of_another_epoch_is_dropped_and_the_request_stays_open():
    peers = coop_peers(2, max_steps=60)
    run_peers(peers, SimNet(seed=0), 0.3, held_inputs(0))  # no driver: the AI's first turn stays unanswered
    (request,) = peers[0].ai_requests()
    assert (request.seat, request.frame, request.episode, request.restore) == ("agent_2", 0, 0, None)
    assert peers[0].confirmed == -1
    with pytest.raises(ValueError, match="pass epoch="):
        peers[0].provide_ai("agent_2", 0, 1, "digest", {"h": 0})
    assert peers[0].provide_ai("agent_2", 0, 1, "digest", {"h": 0}, epoch=request.epoch + 1) is False  # before a transfer
    with pytest.raises(ValueError, match="pass state="):
        peers[0].provide_ai("agent_2", 0, 1, "digest", epoch=request.epoch)
    with pytest.raises(ValueError, match="action space"):
        peers[0].provide_ai("agent_2", 0, 99, "digest", {"h": 0}, epoch=request.epoch)
    assert peers[0].provide_ai("agent_2", 0, 1, "digest", {"h": 0}, epoch=request.epoch) is True
    assert peers[0].ai_requests()[0].frame == 1 and peers[0].confirmed == 0
