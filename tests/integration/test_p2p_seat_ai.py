"""``multiplayer(mode="p2p", on_partner_loss="ai")`` on a real server with Python test peers: the seat of a member
lost for the grace goes to the AI at the frame the remaining pages agreed on, the record holds it, and the match plays
to its end; a connection that drops and comes back within the grace keeps the seat."""

from __future__ import annotations

from tornado.httpclient import AsyncHTTPClient

import mug
from mug.netcode.simnet import Link, SimNet
from mug.scenes.policies import file_sha256
from mug.server.matches.match import P2P_AI_GRACE_S
from mug.server.verify import verify_data_dir
from tests.bots import run_async
from tests.conftest import LSTM
from tests.integration.test_p2p_match import assert_whole_record, at_the_end
from tests.p2p_peers import matched, p2p_study, play, read_store, socket_drop, step_rows, wait_for

#: Steps per episode of the first test: the match goes on well past the grace.
STEPS = 60


def test_the_lost_reference_seat_goes_to_the_ai_at_the_agreed_frame_and_the_record_holds_the_whole_match(tmp_path):
    data = tmp_path / "data"
    study = p2p_study(on_partner_loss="ai", max_steps=STEPS)  # episodes long enough to go on after the grace
    study.scenes["duo"].waitroom(fill_with=mug.ModelConfig.from_onnx(LSTM))

    async def main():
        deployment = mug.deploy(study, port=0, data_dir=data)
        try:
            peers = await matched(deployment.url, ["alice", "bob"])
            left, stays = peers  # agent_0 (the reference, whose records the server stores) leaves

            async def gone():
                await left.disconnect(alive=False)

            sent = []

            async def bad_reports():  # a page's wrong reports are refused, and the match goes on
                agreed = [e["frame"] for e in stays.events if e["type"] == "seat_ai"]
                if sent or not agreed:
                    return  # (tried every 0.1 s from the end of the grace until the page has handed the seat over)
                sent.append(agreed[0])
                for event in ({"seat": "agent_1", "frame": agreed[0]}, {"seat": "agent_0", "frame": agreed[0] + 3}):
                    await stays.send({"type": "p2p_events", "match_id": stays.match_id, "events": [{"type": "seat_ai", **event}]})

            net = SimNet(default=Link(latency_s=0.03, jitter_s=0.01, loss=0.05), seed=4)
            tries = {0.4 + P2P_AI_GRACE_S + 0.1 * k: bad_reports for k in range(40)}
            await play(peers, net, seconds=30, at={0.4: gone, **tries})
            assert sent, "the page never handed the seat over"
            await at_the_end([stays])
            fill = stays.of("scene")[0]["scene"]["fill_policies"]
            model = await AsyncHTTPClient().fetch(deployment.url + fill["agent_0"]["model_url"])
            await left.connect()  # the member comes back: the seat stays the AI's, they are where the timeout puts them
            await left.until(lambda: any(m["scene"].get("kind") == "end" for m in left.of("scene")))
            return stays, left, fill, model.body, await wait_for(data, "verification", 2)
        finally:
            deployment.stop()

    stays, left, fill, model, verifications = run_async(main())
    assert list(fill) == ["agent_0"] and fill["agent_0"]["model_url"].startswith("models/duo/fill_with%3Aagent_0/")
    assert model == LSTM.read_bytes()  # the pages load the fill-in model from the start (the scene carries it)
    assert list(left.of("scene")[0]["scene"]["fill_policies"]) == ["agent_1"]  # a page runs the others' fill-ins only
    assert [m["scene"]["kind"] for m in left.of("scene")][-1] == "end" and not left.of("p2p_seat_ai")
    steps, events, matches = read_store(data)
    (match,) = matches
    assert match["end_reason"] == "done"
    (seat_ai,) = [e for e in events if e["kind"] == "seat_ai"]
    agreed = seat_ai["data"]["frame"]
    assert seat_ai["participant_id"] == match["seats"]["agent_0"]
    assert seat_ai["data"]["agent"] == "agent_0" and seat_ai["data"]["match_id"] == match["match_id"]
    assert seat_ai["data"]["model_sha256"] == file_sha256(LSTM) and seat_ai["data"]["peer"] == "agent_1"
    assert [e["frame"] for e in stays.events if e["type"] == "seat_ai"] == [agreed] and 0 < agreed < steps[-1]["frame"]
    (left,) = [e for e in events if e["kind"] == "match_left"]
    assert left["participant_id"] == match["seats"]["agent_0"] and left["data"]["reason"] == "seat_ai"
    mine = step_rows(stays.history)
    assert [{k: s[k] for k in mine[0]} for s in steps] == mine  # the whole match, as the page that stayed confirmed it
    for episode in (0, 1):  # at most STEPS steps (the coins may all go early)
        numbers = [s["step"] for s in steps if s["episode"] == episode]
        assert 0 < len(numbers) <= STEPS and numbers == list(range(len(numbers)))
    for s in steps:
        human = {"agent_1": f"human:{match['seats']['agent_1']}"}
        if s["frame"] < agreed:
            assert s["sources"] == {**human, "agent_0": f"human:{match['seats']['agent_0']}"} and s["ai_digests"] == {}
        else:
            assert s["sources"] == {**human, "agent_0": "policy"} and set(s["ai_digests"]) == {"agent_0"}
        assert s["verified"] is True
    assert sorted((v["data"]["episode"], v["data"]["verified"]) for v in verifications) == [(0, True), (1, True)]
    again = verify_data_dir(data, record=False)  # ``mug verify`` re-simulates the whole match from the store too
    assert sorted((r["session_id"], r["episode"], r["verified"]) for r in again) == [(match["match_id"], e, True) for e in (0, 1)]
    errors = [m for m in stays.of("error") if m["code"] == "bad_field"]
    assert len(errors) == 2 and "not handed" in errors[0]["message"] and f"at frame {agreed}" in errors[1]["message"]
    assert not [e for e in events if e["kind"] in ("p2p_mismatch", "bad_p2p_frames")]


def test_a_connection_that_drops_and_comes_back_within_the_grace_keeps_the_seat(tmp_path):
    data = tmp_path / "data"
    study = p2p_study(on_partner_loss="ai")
    study.scenes["duo"].waitroom(fill_with=mug.ModelConfig.from_onnx(LSTM))

    async def main():
        deployment = mug.deploy(study, port=0, data_dir=data)
        try:
            peers = await matched(deployment.url, ["alice", "bob"])
            drop = socket_drop(peers[0], 0.4, P2P_AI_GRACE_S / 3)  # the socket drops; the page keeps its game
            await play(peers, SimNet(default=Link(latency_s=0.02), seed=3), at=drop)
            await at_the_end(peers)
            await wait_for(data, "verification", 2)
            return peers
        finally:
            deployment.stop()

    peers = run_async(main())
    steps, events, matches = read_store(data)
    assert matches[0]["end_reason"] == "done"
    kinds = [e["kind"] for e in events]
    assert kinds.count("partner_lost") == kinds.count("rejoined") == 1
    assert "seat_ai" not in kinds and "match_left" not in kinds and not [p for p in peers if p.of("p2p_seat_ai")]
    assert_whole_record(steps, events, peers)  # both pages confirmed every step, each seat a human's throughout
    assert all(set(s["sources"].values()) == {f"human:{m}" for m in matches[0]["seats"].values()} for s in steps)
