"""Losing a member of a match: each on_partner_loss policy, reconnecting into the same seat, released keys, exclusion."""

from __future__ import annotations

import asyncio

import mug
from tests.bots import run_async
from tests.integration.test_matches import deployed, kinds_of, stored
from tests.match_clients import Player
from tests.match_studies import duo


async def pair(d, alice_keys=None, bob_keys=None):
    alice = await Player(d.url, "alice", keys=alice_keys).open()
    bob = await Player(d.url, "bob", keys=bob_keys or ["ArrowDown"]).open()
    seats = {p.participant_id: (await p.seat())["seat"] for p in (alice, bob)}
    return alice, bob, seats


def test_end_moves_the_partner_on_after_the_reconnect_timeout_and_the_lost_member_on_return(tmp_path):
    async def main():
        # lockstep: the game goes on without bob (his seat takes the default action) until the timeout ends it
        async with deployed(
            duo(max_steps=10_000, multiplayer={"on_partner_loss": "end", "reconnect_timeout_s": 0.5}), tmp_path
        ) as d:
            alice, bob, _seats = await pair(d)
            await bob.next("frame")
            bob.close()
            await alice.next("frame", where=lambda m: m["step"] >= 5, timeout=5)  # lockstep does not wait for bob
            notice = await alice.next("notice")
            after = await alice.scene("text")
            back = await Player(d.url, "bob", cookie=bob.cookie).open()
            returned = await back.scene("text")
            alice.close(), back.close()
            return notice, after, returned

    notice, after, returned = run_async(main())
    assert notice == {"type": "notice", "code": "partner_lost", "message": "Your partner left the game."}
    assert after["scene"]["scene_id"] == returned["scene"]["scene_id"] == "after"
    _, events, matches = stored(tmp_path)
    assert matches[0]["end_reason"] == "partner_lost"
    assert kinds_of(events, "partner_lost")[0]["participant_id"] == "bob"


def test_end_with_after_partner_loss_end_gives_the_partner_an_end_page_with_a_code(tmp_path):
    options = {"on_partner_loss": "end", "reconnect_timeout_s": 0.3, "after_partner_loss": "end", "partner_loss_message": "Gone"}

    async def main():
        async with deployed(duo(max_steps=10_000, multiplayer=options), tmp_path) as d:
            alice, bob, _ = await pair(d)
            bob.close()
            end = await alice.scene("end")
            alice.close()
            return end

    end = run_async(main())
    assert end["scene"]["body"] == "Gone" and len(end["scene"]["completion_code"]) == 10


def test_wait_pauses_everyone_and_a_reconnect_takes_the_same_seat_back_at_the_current_step(tmp_path):
    options = {"on_partner_loss": "wait", "reconnect_timeout_s": 20}

    async def main():
        async with deployed(duo(mode="realtime", max_steps=10_000, multiplayer=options), tmp_path) as d:
            alice, bob, seats = await pair(d)
            for _ in range(5):
                await alice.next("frame")
            bob.close()
            paused = await alice.next("paused")
            mark = len(alice.messages)
            await asyncio.sleep(0.5)
            during = [m for m in alice.messages[mark:] if m["type"] == "frame"]
            back = await Player(d.url, "bob", cookie=bob.cookie, keys=["ArrowDown"]).open()
            rematch = await back.seat()
            frame = await back.next("frame")
            resumed = await alice.next("resumed")
            later = [await alice.next("frame") for _ in range(5)]
            session_step = d._server.matches.status()["duo"]["running"][0]["step"]
            alice.close(), back.close()
            return seats, paused, during, rematch, frame, resumed, later, session_step

    seats, paused, during, rematch, frame, resumed, later, _session_step = run_async(main())
    assert paused["reason"] == "partner_lost" and 0 < paused["time_left_s"] <= 20 and paused["scene_id"] == "duo"
    assert during == []  # nobody steps while paused
    assert rematch["seat"] == seats["bob"]
    assert resumed == {"type": "resumed", "scene_id": "duo"}
    assert later[0]["step"] >= frame["step"]
    steps, events, _matches = stored(tmp_path)
    assert len({s["session_id"] for s in steps}) == 1  # the same game went on
    assert [s["step"] for s in steps] == list(range(len(steps)))
    assert {s["sources"][seats["bob"]].split(":")[1] for s in steps} == {"bob"}
    assert kinds_of(events, "rejoined")[0]["participant_id"] == "bob"


def test_ai_hands_the_seat_to_the_fill_in_policy_and_back_on_return(tmp_path):
    study = duo(
        max_steps=10_000,
        waitroom={"fill_with": mug.Random},
        multiplayer={"on_partner_loss": "ai", "reconnect_timeout_s": 20},
    )

    async def main():
        async with deployed(study, tmp_path) as d:
            alice, bob, seats = await pair(d)
            await alice.next("frame", where=lambda m: m["step"] >= 3)
            bob.close()
            await alice.next("frame", where=lambda m: m["step"] >= 10)  # lockstep goes on without bob
            back = await Player(d.url, "bob", cookie=bob.cookie).open()
            await back.seat()
            returned = (await back.next("frame"))["step"]  # the step bob's seat is his again
            await back.next("frame", where=lambda m: m["step"] >= returned + 5)
            alice.close(), back.close()
            await asyncio.sleep(0.1)
            return seats, alice, back, returned

    seats, alice, back, returned = run_async(main())
    steps, events, _ = stored(tmp_path)
    sources = [s["sources"][seats["bob"]] for s in steps]
    assert sources[0] == "human:bob" and "random" in sources[:returned]
    assert set(sources[returned : returned + 5]) == {"human:bob"}
    steps = steps[: returned + 5]  # before the players closed their tabs at the end
    sources = sources[: returned + 5]
    first_ai = sources.index("random")
    after_ai = len(sources) - sources[::-1].index("random")
    assert set(sources[first_ai:after_ai]) == {"random"}
    assert {s["sources"][seats["alice"]] for s in steps} == {"human:alice"}
    assert [e["participant_id"] for e in kinds_of(events, "seat_ai")][:1] == ["bob"]
    assert [e["participant_id"] for e in kinds_of(events, "seat_returned")] == ["bob"]
    errors = [m for p in (alice, back) for m in p.messages if m["type"] == "error"]
    assert errors == []  # a reconnect sends the current frame to the returning member only


def test_ai_past_the_timeout_keeps_the_policy_and_moves_the_lost_member_on(tmp_path):
    study = duo(  # realtime: the game lasts (lockstep would play its episode out at once while alice acts alone)
        mode="realtime",
        max_steps=100_000,
        waitroom={"fill_with": mug.Random},
        multiplayer={"on_partner_loss": "ai", "reconnect_timeout_s": 0.3},
    )

    async def main():
        async with deployed(study, tmp_path) as d:
            alice, bob, seats = await pair(d)
            bob.close()
            await asyncio.sleep(0.8)
            back = await Player(d.url, "bob", cookie=bob.cookie).open()
            bob_next = await back.scene("text")
            running = d._server.matches.status()["duo"]["running"]
            await alice.next("frame")
            alice.close(), back.close()
            return bob_next, running, seats

    bob_next, running, seats = run_async(main())
    assert bob_next["scene"]["scene_id"] == "after"
    assert len(running) == 1  # alice plays on with the policy in bob's seat
    steps, events, _ = stored(tmp_path)
    assert steps[-1]["sources"][seats["bob"]] == "random"
    assert kinds_of(events, "match_left")[0]["data"]["reason"] == "timeout"


def test_a_departed_realtime_players_keys_are_released_at_once(tmp_path):
    async def main():
        options = {"on_partner_loss": "end", "reconnect_timeout_s": 30}
        async with deployed(duo(mode="realtime", max_steps=10_000, multiplayer=options), tmp_path) as d:
            alice, bob, seats = await pair(d, bob_keys=["ArrowDown"])
            await bob.next("frame", where=lambda m: m["step"] >= 5)
            bob.close()
            await asyncio.sleep(0.2)
            await alice.next("frame")
            gone_at = d._server.matches.status()["duo"]["running"][0]["step"]
            await alice.next("frame", where=lambda m: m["step"] >= gone_at + 10)
            alice.close()
            return seats, gone_at

    seats, gone_at = run_async(main())
    steps, _, _ = stored(tmp_path)
    bob_seat = seats["bob"]
    assert any(s["sources"][bob_seat] == "human:bob" and s["actions"][bob_seat] == 2 for s in steps)
    after = [s for s in steps if s["step"] >= gone_at]
    assert after and all(s["actions"][bob_seat] == 0 and s["sources"][bob_seat] == "default:bob" for s in after)


def test_a_hidden_tab_is_warned_then_excluded_and_the_partner_handled_as_partner_loss(tmp_path):
    monitoring = {"warn_hidden_s": 0.3, "max_hidden_s": 1.0, "exclusion_message": "You left the tab"}

    async def main():
        async with deployed(duo(max_steps=10_000, monitoring=monitoring), tmp_path) as d:
            alice, bob, _ = await pair(d)
            await bob.send({"type": "visibility", "hidden": True})
            warning = await bob.next("notice")
            excluded = await bob.next("notice")
            end = await bob.scene("end")
            lost = await alice.next("notice")
            after = await alice.scene("text")
            alice.close(), bob.close()
            return warning, excluded, end, lost, after

    warning, excluded, end, lost, after = run_async(main())
    assert warning["code"] == "hidden_warning" and excluded == {
        "type": "notice",
        "code": "excluded",
        "message": "You left the tab",
    }
    assert end["scene"]["body"] == "You left the tab" and end["scene"]["completion_code"]
    assert lost["code"] == "partner_lost" and after["scene"]["scene_id"] == "after"
    _, events, matches = stored(tmp_path)
    (ex,) = kinds_of(events, "excluded")
    assert ex["participant_id"] == "bob" and ex["data"]["reason"] == "hidden"
    assert 1.0 <= ex["data"]["values"]["hidden_s"] < 5 and ex["data"]["values"]["max_hidden_s"] == 1.0
    assert matches[0]["end_reason"] == "partner_lost"


def test_a_visible_tab_again_resets_the_hidden_stretch(tmp_path):
    monitoring = {"max_hidden_s": 1.5}

    async def main():
        async with deployed(duo(max_steps=10_000, monitoring=monitoring), tmp_path) as d:
            alice, bob, _ = await pair(d)
            for _ in range(3):
                await bob.send({"type": "visibility", "hidden": True})
                await asyncio.sleep(0.6)
                await bob.send({"type": "visibility", "hidden": False})
            await asyncio.sleep(0.4)
            status = d._server.matches.status()["duo"]
            alice.close(), bob.close()
            return status

    status = run_async(main())
    assert len(status["running"]) == 1  # three 0.6 s stretches (1.8 s in all): nobody excluded


def _linear_model(path):
    """``logits = obs @ W``: 3 observation values, 5 actions."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.random.default_rng(1).standard_normal((3, 5)).astype(np.float32), "W")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["obs", "W"], ["logits"])],
        "linear",
        [helper.make_tensor_value_info("obs", TensorProto.FLOAT, ["batch", 3])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 5])],
        [w],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_browser_side_policies_move_to_a_present_member_when_their_runner_is_lost(tmp_path):
    from tests.match_studies import Tally

    model = mug.ModelConfig.from_onnx(_linear_model(tmp_path / "linear.onnx"))
    scene = (
        mug.GymScene("trio")
        .environment(Tally, {"n": 3}, seed=1)
        .policies({"p0": mug.Human, "p1": mug.Human, "p2": model})  # lockstep: the model runs in a browser
        .gameplay(action_mapping={"ArrowUp": 1}, mode="lockstep", max_steps=10_000)
        .rendering(width=48, height=16)
        .waitroom(fill_with=mug.Random)
        .multiplayer(on_partner_loss="ai", reconnect_timeout_s=20)
    )

    async def main():
        async with deployed(mug.Stager([scene, mug.EndScene()]), tmp_path) as d:
            alice = await Player(d.url, "alice").open()
            bob = await Player(d.url, "bob").open()
            scenes = {p.participant_id: await p.scene("gym") for p in (alice, bob)}
            runner, other = (alice, bob) if scenes["alice"]["scene"]["you"]["runs_policies"] else (bob, alice)
            await other.next("frame", where=lambda m: m["step"] >= 3)
            runner.close()
            moved = await other.scene("gym")
            await other.next("frame", where=lambda m: m["step"] >= 12)
            other.close()
            return runner.participant_id, moved

    runner, moved = run_async(main())
    assert moved["scene"]["you"]["runs_policies"] == ["p2"]
    store = mug.load(tmp_path / "data")
    sources = list(store.steps["source_p2"])[:12]
    print("SOURCES", list(store.steps["source_p2"])[:14], list(store.steps["step"])[:14])
    assert set(sources) == {"policy"}  # the model kept acting through the hand-over
    assert kinds_of(stored_events(tmp_path), "seat_ai")[0]["participant_id"] == runner


def stored_events(tmp_path):
    from mug.server.store import Store

    store = Store(tmp_path / "data", readonly=True)
    try:
        return store.events()
    finally:
        store.close()


def test_a_tab_hidden_while_waiting_counts_from_the_match_start(tmp_path):
    """Hiding the tab in the waitroom is normal: the hidden stretch that excludes counts within the match only."""
    monitoring = {"max_hidden_s": 1.5}

    async def main():
        async with deployed(duo(max_steps=10_000, monitoring=monitoring), tmp_path) as d:
            alice = await Player(d.url, "alice").open()
            await alice.next("waitroom")
            await alice.send({"type": "visibility", "hidden": True})
            await asyncio.sleep(2.0)  # longer than max_hidden_s, before the match
            bob = await Player(d.url, "bob", keys=["ArrowDown"]).open()
            await alice.seat()
            await asyncio.sleep(0.6)
            early = d._server.matches.status()["duo"]
            excluded = await alice.next("notice", timeout=10)
            alice.close(), bob.close()
            return early, excluded

    early, excluded = run_async(main())
    assert len(early["running"]) == 1  # not excluded at the match's first check
    assert excluded["code"] == "excluded"  # but 1.5 s hidden in the match is
