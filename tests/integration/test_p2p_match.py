"""Peer-to-peer matches on a real server (loopback, real WebSockets) with Python test peers (``tests/p2p_peers.py``):
one :class:`mug.netcode.RollbackPeer` per member, peer messages through :mod:`mug.netcode.simnet`, uploads to the server
as the page sends them."""

from __future__ import annotations

import random

import mug
from mug.netcode.simnet import Link, SimNet
from mug.server.verify import verify_data_dir
from tests.bots import run_async
from tests.netcode.helpers import PlainCoopGrid
from tests.p2p_peers import KEYS, matched, p2p_study, play, read_store, socket_drop, step_rows, wait_for


async def at_the_end(peers) -> None:
    """Until every peer's study has moved on to its end scene."""
    for p in peers:
        await p.until(lambda p=p: any(m["scene"].get("kind") == "end" for m in p.of("scene")))


def assert_whole_record(steps, events, peers) -> None:
    """The server stored the match's 40 steps once, as every peer confirmed them, with no mismatch or refusal."""
    stored = [{k: s[k] for k in ("frame", "chain", "actions")} for s in steps]
    for p in peers:
        assert [{k: r[k] for k in ("frame", "chain", "actions")} for r in step_rows(p.history)] == stored
    assert len(steps) == 40 and not [e for e in events if e["kind"] in ("p2p_mismatch", "bad_p2p_frames")]


def test_match_start_sends_each_member_the_scene_with_its_p2p_spec_then_the_mesh(tmp_path):
    async def main():
        deployment = mug.deploy(p2p_study(input_delay=3, max_prediction=6), port=0, data_dir=tmp_path / "data")
        try:
            peers = await matched(deployment.url, ["alice", "bob"])
            running = list(deployment._server.matches.matches.values())
            return peers, running
        finally:
            deployment.stop()

    peers, running = run_async(main())
    (match,) = running
    for p in peers:
        types = [m["type"] for m in p.messages]
        assert types.index("scene") < types.index("p2p")
        scene = next(m for m in p.of("scene") if m["scene"]["kind"] == "gym")
        seat = scene["match"]["seat"]
        assert scene["session_id"] == match.match_id and scene["match"]["match_id"] == match.match_id
        assert scene["scene"]["environment"]["where"] == "browser"
        spec = scene["scene"]["environment"]["spec"]
        assert spec["session_id"] == match.match_id
        assert spec["p2p"] == {
            "match_id": match.match_id,
            "seat": seat,
            "owners": {"agent_0": "agent_0", "agent_1": "agent_1"},
            "ai_seats": [],
            "input_delay": 3,
            "max_prediction": 6,
            "hash_interval": spec["p2p"]["hash_interval"],
            "rejoin": False,  # true in the scene a tab that reopens mid-match gets
        }
        (mesh,) = p.of("p2p")
        assert mesh["match_id"] == match.match_id and mesh["seat"] == seat and mesh["seats"] == ["agent_0", "agent_1"]
    assert not hasattr(match.session, "env")  # nothing steps on the server


def test_two_peers_play_to_the_end_each_frame_is_stored_once_verified_and_the_match_ends_done(tmp_path):
    data = tmp_path / "data"
    link = Link(latency_s=0.05, jitter_s=0.01, loss=0.05)

    async def main():
        deployment = mug.deploy(p2p_study(), port=0, data_dir=data)
        try:
            peers = await matched(deployment.url, ["alice", "bob"])
            await play(peers, SimNet(default=link, seed=1))
            await at_the_end(peers)
            verifications = await wait_for(data, "verification", 2)
            # mesh traffic still in flight as the match ended is dropped without an error for the page
            late = peers[0].spec["p2p"]["seat"], peers[1].spec["p2p"]["seat"]
            await peers[0].send({"type": "relay", "batches": [{"to": late[1], "channel": "inputs", "data": [{"k": "i"}]}]})
            await peers[0].send({"type": "signal", "to": late[1], "data": {"candidate": {"candidate": ""}}})
            await peers[0].send({"type": "advance", "scene_id": "no-such-scene"})  # answered after the two: a fence
            await peers[0].until(lambda: peers[0].of("error"))
            return peers, verifications
        finally:
            deployment.stop()

    peers, verifications = run_async(main())
    steps, events, matches = read_store(data)
    (match,) = matches
    assert match["end_reason"] == "done"
    seats = {p.spec["p2p"]["seat"]: p.pid for p in peers}
    assert match["seats"] == seats
    stored = [{k: s[k] for k in step_rows(peers[0].history)[0]} for s in steps]
    for p in peers:  # the server's record is each peer's confirmed history
        assert step_rows(p.history) == stored
    assert [(s["episode"], s["step"]) for s in steps] == [(e, i) for e in (0, 1) for i in range(20)]
    for s in steps:
        assert s["participant_id"] == s["session_id"] == s["match_id"] == match["match_id"]
        assert s["sources"] == {seat: f"human:{pid}" for seat, pid in seats.items()}
        assert s["verified"] is True
    assert sorted((v["data"]["episode"], v["data"]["verified"]) for v in verifications) == [(0, True), (1, True)]
    again = verify_data_dir(data, record=False)  # ``mug verify`` finds the match's spec and steps too
    assert sorted((r["session_id"], r["episode"], r["verified"]) for r in again) == [(match["match_id"], e, True) for e in (0, 1)]
    assert not [e for e in events if e["kind"] in ("p2p_mismatch", "bad_p2p_frames")]
    stats = [e["data"] for e in events if e["kind"] == "p2p_episode"]
    assert sorted((s["episode"], s["peer"]) for s in stats) == [(e, seat) for e in (0, 1) for seat in seats]
    assert all(s["stats"]["frames"] > 0 and "rollbacks" in s["stats"] and s["relayed_with"] == [] for s in stats)
    (done,) = [e for e in events if e["kind"] == "p2p_done"]
    assert done["participant_id"] == match["match_id"] and done["data"]["peers"] == sorted(seats)
    acks = [p.acks for p in peers]
    assert acks[0] and all(b > a for a, b in zip(acks[0], acks[0][1:]))  # acks only go up
    assert acks[0] == acks[1]  # one value for every member
    assert [m["code"] for p in peers for m in p.of("error")] == ["unknown_scene"]  # the fence's only


def test_what_arrives_is_checked_a_bad_record_is_refused_and_a_differing_chain_is_a_mismatch_event(tmp_path):
    data = tmp_path / "data"

    def bad_input(r):  # the reference's frame 30 (episode 1) holds an action outside the action space
        if r["frame"] == 30:
            r["inputs"]["agent_1"] = 9

    def other_chain(r):
        if 10 <= r["frame"] <= 12:
            r["chain"] = "f" * 16

    async def main():
        deployment = mug.deploy(p2p_study(), port=0, data_dir=data)
        try:
            peers = await matched(deployment.url, ["alice", "bob"])
            peers[0].tamper, peers[1].tamper = bad_input, other_chain
            match_id = peers[1].spec["p2p"]["match_id"]
            await peers[1].send({"type": "p2p_events", "match_id": match_id, "events": [{"type": "hacked"}]})
            await peers[1].send({"type": "p2p_events", "match_id": match_id, "events": [{"type": "resync", "x": "y" * 20_000}]})
            await peers[1].send({"type": "p2p_frames", "match_id": "duo-99999", "records": [{"frame": 0}]})
            await peers[1].until(lambda: len(peers[1].of("error")) == 3)
            await play(peers, SimNet(default=Link(latency_s=0.03), seed=2))
            await at_the_end(peers)
            await wait_for(data, "verification", 1)
            return peers
        finally:
            deployment.stop()

    peers = run_async(main())
    steps, events, matches = read_store(data)
    assert matches[0]["end_reason"] == "done"  # the match went on and ended when both peers were done
    assert [s["frame"] for s in steps] == [
        r["frame"] for r in peers[0].history if r["frame"] < 30 and r["result"]["kind"] == "step"
    ]
    (bad,) = [e["data"] for e in events if e["kind"] == "bad_p2p_frames"]  # once, however often it was resent
    assert (
        bad["peer"] == "agent_0"
        and bad["problem"] == "frame 30: input 9 of seat 'agent_1' is not in its action space Discrete(5)"
    )
    errors = peers[0].of("error")
    assert len(errors) >= 2 and {e["code"] for e in errors} == {"bad_p2p_frames"} and not any(e["fatal"] for e in errors)
    assert "frames up to 29 are taken" in errors[0]["message"] and max(peers[0].acks) <= 29
    assert [(e["code"], e["message"].split(";")[0]) for e in peers[1].of("error")] == [
        ("bad_field", "p2p_events: unknown event 'hacked'"),
        ("bad_field", "p2p_events: a resync event over 16384 bytes"),
        ("unknown_match", "p2p_frames for match 'duo-99999'"),
    ]
    chains = {r["frame"]: r["chain"] for r in peers[0].history}
    (mismatch,) = [e["data"] for e in events if e["kind"] == "p2p_mismatch"]
    assert mismatch == {
        "session_id": matches[0]["match_id"],
        "scene_id": "duo",
        "match_id": matches[0]["match_id"],
        "frame": 10,
        "peer": "agent_1",
        "chain": "f" * 16,
        "reference_chain": chains[10],
    }
    (verification,) = [e["data"] for e in events if e["kind"] == "verification"]
    assert verification["episode"] == 0 and verification["verified"]  # episode 1 was not stored whole


def test_a_member_back_within_the_grace_resends_what_was_not_acked_and_the_record_is_whole(tmp_path):
    data = tmp_path / "data"

    async def main():
        deployment = mug.deploy(p2p_study(), port=0, data_dir=data)
        try:
            peers = await matched(deployment.url, ["alice", "bob"])
            ref = peers[0]
            scenes = len(ref.of("scene"))

            await play(peers, SimNet(default=Link(latency_s=0.02), seed=3), at=socket_drop(ref, 0.4, 0.6))
            await at_the_end(peers)
            return peers, scenes
        finally:
            deployment.stop()

    peers, scenes = run_async(main())
    steps, events, matches = read_store(data)
    assert matches[0]["end_reason"] == "done"
    ref = peers[0]
    again = ref.messages[[i for i, m in enumerate(ref.messages) if m["type"] == "scene"][scenes] :]
    assert again[0]["type"] == "scene" and again[0]["scene"]["environment"]["spec"]["p2p"] == peers[0].spec["p2p"]
    assert "p2p" in [m["type"] for m in again]  # the mesh again
    assert [e["kind"] for e in events].count("rejoined") == 1
    assert_whole_record(steps, events, peers)


def test_with_on_partner_loss_wait_the_others_see_a_pause_until_the_partner_is_back_and_the_match_ends_done(tmp_path):
    data = tmp_path / "data"

    async def main():
        deployment = mug.deploy(p2p_study(on_partner_loss="wait", reconnect_timeout_s=30), port=0, data_dir=data)
        try:
            peers = await matched(deployment.url, ["alice", "bob"])
            stays, away = peers

            async def gone():
                await away.disconnect(alive=True)

            async def back():
                assert stays.of("paused") and not stays.of("resumed")  # the waiting notice, with the time left
                await away.connect()

            await play(peers, SimNet(default=Link(latency_s=0.02), seed=5), at={0.4: gone, 1.4: back})
            await at_the_end(peers)
            await wait_for(data, "verification", 2)
            return peers
        finally:
            deployment.stop()

    stays, away = run_async(main())
    steps, events, matches = read_store(data)
    assert matches[0]["end_reason"] == "done"
    (paused,) = stays.of("paused")
    assert paused["reason"] == "partner_lost" and 0 < paused["time_left_s"] <= 30
    assert len(stays.of("resumed")) == 1
    assert_whole_record(steps, events, [stays, away])
    assert all(s["verified"] is True for s in steps)


def test_the_monitoring_rules_apply_to_p2p_members_a_tab_hidden_too_long_is_warned_then_excluded(tmp_path):
    data = tmp_path / "data"

    async def main():
        study = p2p_study(episodes=20, monitoring={"warn_hidden_s": 0.3, "max_hidden_s": 0.8})
        deployment = mug.deploy(study, port=0, data_dir=data)
        try:
            peers = await matched(deployment.url, ["alice", "bob"])
            stays, hider = peers

            async def hide():
                await hider.send({"type": "visibility", "hidden": True})

            await play(peers, SimNet(default=Link(latency_s=0.02), seed=6), at={0.3: hide}, stop=lambda: stays.of("notice"))
            await stays.until(lambda: any(m["scene"].get("kind") == "end" for m in stays.of("scene")))
            return stays, hider
        finally:
            deployment.stop()

    stays, hider = run_async(main())
    steps, events, matches = read_store(data)
    assert matches[0]["end_reason"] == "partner_lost"
    assert [n["code"] for n in hider.of("notice")][:2] == ["hidden_warning", "excluded"]
    assert [n["code"] for n in stays.of("notice")] == ["partner_lost"]
    kinds = [(e["kind"], e["participant_id"]) for e in events if e["kind"] in ("hidden_warning", "excluded")]
    assert kinds == [("hidden_warning", "bob"), ("excluded", "bob")]
    (excluded,) = [e["data"] for e in events if e["kind"] == "excluded"]
    assert excluded["reason"] == "hidden" and excluded["values"]["max_hidden_s"] == 0.8
    assert steps and [s["chain"] for s in steps] == [r["chain"] for r in step_rows(stays.history)][: len(steps)]


def test_a_lost_member_ends_the_match_at_the_timeout_and_the_other_moves_on(tmp_path):
    data = tmp_path / "data"

    async def main():
        deployment = mug.deploy(p2p_study(reconnect_timeout_s=1.0), port=0, data_dir=data)
        try:
            peers = await matched(deployment.url, ["alice", "bob"])
            left, stays = peers[1], peers[0]

            async def gone():
                await left.disconnect(alive=False)

            await play(peers, SimNet(default=Link(latency_s=0.02), seed=4), at={0.5: gone}, stop=lambda: stays.of("notice"))
            await stays.until(lambda: any(m["scene"].get("kind") == "end" for m in stays.of("scene")))
            return stays
        finally:
            deployment.stop()

    stays = run_async(main())
    steps, events, matches = read_store(data)
    assert matches[0]["end_reason"] == "partner_lost"
    (notice,) = stays.of("notice")
    assert notice["code"] == "partner_lost"
    assert [e["data"]["agent"] for e in events if e["kind"] == "partner_lost"] == ["agent_1"]
    (interrupted,) = [e["data"] for e in events if e["kind"] == "interrupted"]
    assert interrupted["reason"] == "partner_lost" and interrupted["frame"] >= 0
    mine = step_rows(stays.history)
    assert steps and [s["chain"] for s in steps] == [r["chain"] for r in mine[: len(steps)]]


def test_three_humans_and_an_ai_seat_over_uneven_links_are_stored_once_and_verified(tmp_path):
    data = tmp_path / "data"
    game = (
        mug.GymScene("duo")
        .environment(PlainCoopGrid, {"agents": 4, "size": 5, "coins": 5, "max_steps": 1000}, seed=2)
        .policies({"agent_0": mug.Human, "agent_1": mug.Human, "agent_2": mug.Human, "agent_3": mug.Random})
        .gameplay(action_mapping=KEYS, num_episodes=1, max_steps=25)
        .rendering(fps=30, width=100, height=100)
        .runtime(environment="browser")
        .multiplayer(mode="p2p", input_delay=1, max_prediction=10)
    )
    links = {
        ("agent_0", "agent_1"): Link(latency_s=0.08, jitter_s=0.02, loss=0.1),
        ("agent_1", "agent_0"): Link(latency_s=0.02),
        ("agent_2", "agent_0"): Link(latency_s=0.05, reorder=0.2, duplicate=0.1),
    }

    async def main():
        deployment = mug.deploy(mug.Stager([game, mug.EndScene("end")], seed=1), port=0, data_dir=data)
        try:
            peers = await matched(deployment.url, ["ann", "ben", "cat"])
            await play(peers, SimNet(links, default=Link(latency_s=0.03, loss=0.05), seed=5))
            await at_the_end(peers)
            return peers, await wait_for(data, "verification", 1)
        finally:
            deployment.stop()

    peers, (verification,) = run_async(main())
    steps, events, matches = read_store(data)
    assert matches[0]["end_reason"] == "done" and verification["data"]["verified"]
    assert all(p.spec["p2p"]["ai_seats"] == ["agent_3"] for p in peers)
    assert [s["step"] for s in steps] == list(range(len(steps))) and len(steps) <= 25  # the coins may all go early
    last = steps[-1]
    assert len(steps) == 25 or all(last["terminated"][a] or last["truncated"][a] for a in last["terminated"])
    for p in peers:
        assert step_rows(p.history) == [{k: s[k] for k in step_rows(p.history)[0]} for s in steps]
    seats = matches[0]["seats"]
    for s in steps:
        assert s["sources"] == {**{seat: f"human:{pid}" for seat, pid in seats.items()}, "agent_3": "policy"}
        assert s["actions"]["agent_3"] == random.Random(f"agent_3:{s['frame']}").randrange(5)
        assert s["ai_digests"] == {"agent_3": None}
    assert not [e for e in events if e["kind"] in ("p2p_mismatch", "bad_p2p_frames")]
    assert len([e for e in events if e["kind"] == "p2p_episode"]) == 3


def test_an_env_error_in_one_browser_is_recorded_and_ends_the_match_with_an_error_for_everyone(tmp_path):
    data = tmp_path / "data"

    async def main():
        deployment = mug.deploy(p2p_study(), port=0, data_dir=data)
        try:
            peers = await matched(deployment.url, ["alice", "bob"])
            failing = {
                "type": "env_error",
                "session_id": peers[1].spec["session_id"],
                "episode": 0,
                "step": 4,
                "message": "ValueError: boom",
                "traceback": "Traceback ...",
            }
            await peers[1].send(failing)
            for p in peers:
                await p.until(lambda p=p: any(e["fatal"] for e in p.of("error")))
            await wait_for(data, "env_error", 1)
            return peers, list(deployment._server.matches.matches)
        finally:
            deployment.stop()

    peers, running = run_async(main())
    steps, events, matches = read_store(data)
    assert running == [] and matches[0]["end_reason"] == "error" and steps == []
    (error,) = [e for e in events if e["kind"] == "env_error"]
    assert error["participant_id"] == matches[0]["match_id"]
    assert {k: error["data"][k] for k in ("participant", "peer", "episode", "step", "message", "traceback")} == {
        "participant": peers[1].pid,
        "peer": "agent_1",
        "episode": 0,
        "step": 4,
        "message": "ValueError: boom",
        "traceback": "Traceback ...",
    }
    assert all([e["code"] for e in p.of("error")] == ["env_error"] for p in peers)
