"""Matches on a real server (loopback) with WebSocket players: shared games, waitroom, partner loss, records."""

from __future__ import annotations

import asyncio
import contextlib

import mug
from mug.examples import CoinGrid
from mug.server.store import Store
from tests.bots import run_async
from tests.match_clients import Player
from tests.match_studies import duo, duo_scene


@contextlib.asynccontextmanager
async def deployed(study, tmp_path):
    deployment = mug.deploy(study, port=0, data_dir=tmp_path / "data")
    try:
        yield deployment
    finally:
        deployment.stop()


def stored(tmp_path):
    store = Store(tmp_path / "data", readonly=True)
    try:
        return store.steps("duo"), store.events(), store.matches()
    finally:
        store.close()


def kinds_of(events, kind):
    return [e for e in events if e["kind"] == kind]


def test_two_humans_share_one_game_and_each_step_names_both_participants(tmp_path):
    async def main():
        async with deployed(duo(max_steps=12), tmp_path) as d:
            alice = await Player(d.url, "alice", keys=["ArrowUp"]).open()
            bob = await Player(d.url, "bob", keys=["ArrowDown"]).open()
            seats = {p.participant_id: (await p.seat())["seat"] for p in (alice, bob)}
            ends = [await p.scene("end") for p in (alice, bob)]
            status = d._server.matches.status()
            alice.close(), bob.close()
            return seats, ends, status, alice, bob, d.participants

    seats, ends, status, alice, bob, participants = run_async(main())
    assert participants.set_index("participant_id")["steps"].to_dict() == {"alice": 12, "bob": 12}
    assert sorted(seats.values()) == ["agent_0", "agent_1"]
    assert all(e["scene"]["completion_code"] for e in ends)
    frames = [[(m["episode"], m["step"]) for m in p.messages if m["type"] == "frame"] for p in (alice, bob)]
    assert frames[0] == frames[1] and len(frames[0]) == 12  # one game: the same frames for both
    steps, events, matches = stored(tmp_path)
    assert len(steps) == 12  # once per match, not once per member
    (match,) = matches
    assert match["seats"] == {seats["alice"]: "alice", seats["bob"]: "bob"} and match["end_reason"] == "done"
    key_action = {"alice": 1, "bob": 2}
    for step in steps:
        assert step["match_id"] == match["match_id"] == step["participant_id"]
        for pid, agent in seats.items():
            assert step["sources"][agent] == f"human:{pid}"
            assert step["actions"][agent] == key_action[pid]
    (session,) = kinds_of(events, "session")
    assert session["participant_id"] == match["match_id"] and set(session["data"]["policies"]) == {"agent_0", "agent_1"}
    matched = kinds_of(events, "matched")
    assert {e["participant_id"] for e in matched} == {"alice", "bob"}
    assert all(e["data"]["waited_s"] >= 0 and e["data"]["match_id"] == match["match_id"] for e in matched)
    assert status["duo"]["finished"][0]["reason"] == "done"
    data = mug.load(tmp_path / "data")
    assert list(data.matches["match_id"]) == [match["match_id"]]
    assert set(data.steps["match_id"]) == {match["match_id"]}
    assert set(data.steps[f"source_{seats['bob']}"]) == {"human:bob"}


def test_the_status_lists_waiting_and_running_matches(tmp_path):
    async def main():
        async with deployed(duo(max_steps=10_000, mode="realtime"), tmp_path) as d:
            alice = await Player(d.url, "alice").open()
            await alice.next("waitroom")
            waiting = d._server.matches.status()["duo"]
            bob = await Player(d.url, "bob").open()
            await alice.seat()
            await alice.next("frame")
            running = d._server.matches.status()["duo"]
            alice.close(), bob.close()
            return waiting, running

    waiting, running = run_async(main())
    assert waiting["waiting"] == 1 and waiting["running"] == [] and waiting["longest_wait_s"] >= 0
    assert running["waiting"] == 0
    (match,) = running["running"]
    assert sorted(match["members"].values()) == ["alice", "bob"] and match["episode"] == 0 and match["started"] > 0


def test_waitroom_messages_show_counts_and_time_left(tmp_path):
    async def main():
        async with deployed(duo(waitroom={"timeout_s": 30, "message": "Hold on"}), tmp_path) as d:
            alice = await Player(d.url, "alice").open()
            first = await alice.next("waitroom")
            alice.close()
            return first

    first = run_async(main())
    assert first["scene_id"] == "duo" and first["waiting"] == 1 and first["needed"] == 2 and first["message"] == "Hold on"
    assert 0 < first["time_left_s"] <= 30


def test_waitroom_timeout_end_gives_an_end_page_with_a_code_of_their_own_kept_on_reload(tmp_path):
    async def main():
        async with deployed(duo(waitroom={"timeout_s": 1, "on_timeout": "end", "timeout_message": "Nobody came"}), tmp_path) as d:
            alice = await Player(d.url, "alice").open()
            notice = await alice.next("notice")
            end = await alice.scene("end")
            alice.close()
            again = await Player(d.url, "alice", cookie=alice.cookie).open()
            reloaded = await again.scene("end")
            again.close()
            return notice, end, reloaded, d.participants

    notice, end, reloaded, participants = run_async(main())
    assert notice["code"] == "waitroom_timeout" and notice["message"] == "Nobody came"
    code = end["scene"]["completion_code"]
    assert end["scene"]["body"] == "Nobody came" and len(code) == 10
    assert reloaded["scene"] == end["scene"]
    row = participants.set_index("participant_id").loc["alice"]
    assert row["completion_code"] == code and bool(row["completed"])
    _, events, _ = stored(tmp_path)
    assert kinds_of(events, "waitroom_timeout")[0]["data"]["on_timeout"] == "end"
    assert kinds_of(events, "completed")[0]["data"]["completion_code"] == code


def test_waitroom_timeout_skip_goes_to_the_next_scene(tmp_path):
    async def main():
        async with deployed(duo(waitroom={"timeout_s": 1, "on_timeout": "skip"}), tmp_path) as d:
            alice = await Player(d.url, "alice").open()
            alice.playing = False
            notice = await alice.next("notice")
            text = await alice.scene("text")
            alice.close()
            return notice, text

    notice, text = run_async(main())
    assert notice["code"] == "waitroom_timeout" and text["scene"]["scene_id"] == "after"


def test_waitroom_timeout_ai_starts_the_match_with_the_fill_in_policy(tmp_path):
    async def main():
        study = duo(max_steps=8, waitroom={"timeout_s": 1, "on_timeout": "ai", "fill_with": mug.Random})
        async with deployed(study, tmp_path) as d:
            alice = await Player(d.url, "alice").open()
            match = await alice.seat()
            await alice.scene("end")
            alice.close()
            return match

    match = run_async(main())
    steps, _events, matches = stored(tmp_path)
    other = "agent_1" if match["seat"] == "agent_0" else "agent_0"
    assert matches[0]["seats"] == {match["seat"]: "alice"} and matches[0]["end_reason"] == "done"
    assert len(steps) == 8
    assert {s["sources"][other] for s in steps} == {"random"}
    assert {s["sources"][match["seat"]] for s in steps} == {"human:alice"}


def test_leaving_the_waitroom_past_the_grace_removes_the_participant(tmp_path):
    async def main():
        async with deployed(duo(waitroom={"leave_grace_s": 0.3}), tmp_path) as d:
            alice = await Player(d.url, "alice").open()
            await alice.next("waitroom")
            alice.close()
            await asyncio.sleep(1.0)
            bob = await Player(d.url, "bob").open()
            first = await bob.next("waitroom")
            bob.close()
            return first, d._server.matches.status()["duo"]

    first, status = run_async(main())
    assert first["waiting"] == 1 and status["running"] == []
    _, events, _ = stored(tmp_path)
    (left,) = kinds_of(events, "waitroom_left")
    assert left["participant_id"] == "alice" and left["data"]["reason"] == "left"


def test_a_throwing_matchmaker_falls_back_to_first_come_first_served(tmp_path):
    calls = []

    def matchmaker(candidates, seats):
        calls.append([c.participant_id for c in candidates])
        raise RuntimeError("bug in the researcher's code")

    async def main():
        async with deployed(duo(max_steps=3, matchmaking={"matchmaker": matchmaker}), tmp_path) as d:
            alice = await Player(d.url, "alice").open()
            bob = await Player(d.url, "bob").open()
            matches = [await p.seat() for p in (alice, bob)]
            alice.close(), bob.close()
            return matches

    matches = run_async(main())
    assert calls and calls[0] == ["alice", "bob"]
    assert matches[0]["match_id"] == matches[1]["match_id"]
    _, events, _ = stored(tmp_path)
    assert "RuntimeError: bug in the researcher's code" in kinds_of(events, "matchmaker_error")[0]["data"]["problem"]


def test_a_custom_matchmaker_sees_candidates_and_may_wait(tmp_path):
    seen = []

    def matchmaker(candidates, seats):
        seen.append(candidates)
        ids = [c.participant_id for c in candidates]
        return ["carol", "alice"] if {"alice", "carol"} <= set(ids) else None

    async def main():
        async with deployed(duo(max_steps=3, matchmaking={"matchmaker": matchmaker}), tmp_path) as d:
            players = [await Player(d.url, pid).open() for pid in ("alice", "bob", "carol")]
            match = await players[2].seat()
            for p in players:
                p.close()
            return match

    run_async(main())
    _, _, matches = stored(tmp_path)
    assert sorted(matches[0]["seats"].values()) == ["alice", "carol"]
    first = seen[0][0]
    assert isinstance(first, mug.Candidate) and first.participant_id == "alice" and first.waited_s >= 0
    assert first.params == {"participant": "alice"} and first.partners == frozenset()


def test_seats_are_deterministic_from_the_study_seed_and_a_seats_function_is_used_and_recorded(tmp_path):
    from mug.server.matches.matchmaker import assign_seats

    first = assign_seats(["bob", "alice"], ["agent_0", "agent_1"], 11, "duo-00001", None)[0]
    assert first == assign_seats(["alice", "bob"], ["agent_0", "agent_1"], 11, "duo-00001", None)[0]
    variants = {tuple(sorted(assign_seats(["a", "b"], ["x", "y"], 11, f"m-{i}", None)[0].items())) for i in range(20)}
    assert len(variants) == 2  # the seed and match id decide; both seatings happen

    async def run(tag, seats_fn=None):
        matching = {"seats": seats_fn} if seats_fn else {}
        async with deployed(duo(max_steps=3, matchmaking=matching), tmp_path / tag) as d:
            alice = await Player(d.url, "alice").open()
            bob = await Player(d.url, "bob").open()
            seat = (await alice.seat())["seat"]
            alice.close(), bob.close()
            return seat

    one, two = run_async(run("one")), run_async(run("two"))
    expected = next(agent for agent, pid in first.items() if pid == "alice")
    assert one == two == expected  # same seed, same match id: same seats
    chosen = run_async(run("fn", lambda pids, agents, seed: {"agent_1": "alice", "agent_0": "bob"}))
    assert chosen == "agent_1"
    store = Store(tmp_path / "fn" / "data", readonly=True)
    assert store.matches()[0]["seats"] == {"agent_1": "alice", "agent_0": "bob"}
    store.close()


def test_keep_groups_re_forms_the_same_groups_in_a_later_match_scene(tmp_path):
    first = duo_scene("first", max_steps=2)
    second = duo_scene("second", max_steps=2, matchmaking={"keep_groups": True})
    study = mug.Stager([first, mug.TextScene("break"), second, mug.EndScene(unique_code=True)], seed=3)

    async def main():
        async with deployed(study, tmp_path) as d:
            players = {pid: Player(d.url, pid) for pid in "adbc"}
            for p in players.values():
                p.auto_advance = False
            for pid in "adbc":  # arrivals: a, d form a group, then b, c
                await players[pid].open()
                await players[pid].next("waitroom")
            for p in players.values():
                await p.scene("text")
            for pid in "abcd":  # arrive in the second waitroom in this order: first come first served would pair a, b
                p = players[pid]
                await p.send({"type": "advance", "scene_id": "break"})
                await p.next("waitroom")
                await asyncio.sleep(0.3)
            for p in players.values():
                await p.scene("end")
                p.close()

    run_async(main())
    store = Store(tmp_path / "data", readonly=True)
    groups = {m["scene_id"]: set() for m in store.matches()}
    for m in store.matches():
        groups[m["scene_id"]].add(frozenset(m["seats"].values()))
    store.close()
    assert groups["first"] == {frozenset("ad"), frozenset("bc")}
    assert groups["second"] == groups["first"]


def test_sigkill_mid_match_loses_no_acknowledged_step_and_members_come_back_to_the_waitroom(tmp_path):
    import signal

    from tests.servers import ServerProcess

    data = tmp_path / "data"
    server = ServerProcess(["deploy", "tests/match_studies.py:duo_kill"], data).start()

    async def play():
        alice = await Player(server.url, "alice").open()
        bob = await Player(server.url, "bob").open()
        first = await alice.seat()
        await alice.next("frame", where=lambda m: m["step"] >= 30)
        return alice, bob, first

    try:
        alice, bob, first = run_async(play())
        acked = {p.participant_id: p.acked for p in (alice, bob)}
    finally:
        server.stop(signal.SIGKILL)
    store = Store(data, readonly=True)
    steps = store.steps("duo")
    store.close()
    assert len(steps) >= max(acked.values()) >= 30  # every step a frame was sent after is committed

    restarted = ServerProcess(["deploy", "tests/match_studies.py:duo_kill"], data).start()

    async def come_back():
        back = [await Player(restarted.url, p.participant_id, cookie=p.cookie).open() for p in (alice, bob)]
        notices = [await p.next("notice") for p in back]
        rooms = [await p.next("waitroom") for p in back]
        matches = [await p.seat() for p in back]
        await back[0].next("frame", where=lambda m: m["step"] >= 3)
        for p in back:
            p.close()
        return notices, rooms, matches

    try:
        notices, rooms, matches = run_async(come_back())
    finally:
        restarted.stop()
    assert [n["code"] for n in notices] == ["interrupted", "interrupted"]
    assert all(r["scene_id"] == "duo" for r in rooms)
    assert matches[0]["match_id"] == matches[1]["match_id"] != first["match_id"]
    store = Store(data, readonly=True)
    rows = {m["match_id"]: m for m in store.matches()}
    after = store.steps("duo")
    store.close()
    assert rows[first["match_id"]]["end_reason"] == "interrupted"
    assert len([s for s in after if s["match_id"] == first["match_id"]]) == len(steps)  # nothing lost or added


def test_match_data_in_exports_and_the_deployment_handle(tmp_path):
    import pyarrow.parquet as pq

    from mug.server.export import export

    async def main():
        async with deployed(duo(max_steps=4), tmp_path) as d:
            alice = await Player(d.url, "alice").open()
            bob = await Player(d.url, "bob").open()
            await alice.scene("end")
            await bob.scene("end")
            alice.close(), bob.close()
            return d.matches, d.data("duo")

    matches, steps = run_async(main())
    assert list(matches["end_reason"]) == ["done"] and str(matches["ended"].dtype).startswith("datetime64")
    assert len(steps) == 4 and steps["match_id"].nunique() == 1
    paths = {p.stem: p for p in export(tmp_path / "data", "parquet", tmp_path / "out")}
    assert pq.read_table(paths["matches"]).num_rows == 1
    assert pq.read_schema(paths["steps"]).field("match_id").type.equals(__import__("pyarrow").string())
    csv_paths = {p.stem: p for p in export(tmp_path / "data", "csv", tmp_path / "csv")}
    assert "duo-00001" in csv_paths["matches"].read_text()


def test_three_humans_in_one_game_and_a_pause_for_two_when_the_third_is_lost(tmp_path):
    from tests.match_studies import trio_scene

    study = mug.Stager([trio_scene(max_steps=10_000, on_partner_loss="wait", reconnect_timeout_s=20), mug.EndScene()])
    keys = {"ann": "ArrowUp", "ben": "ArrowDown", "cat": "ArrowLeft"}

    async def main():
        async with deployed(study, tmp_path) as d:
            players = {pid: await Player(d.url, pid, keys=[key]).open() for pid, key in keys.items()}
            seats = {pid: (await p.seat())["seat"] for pid, p in players.items()}
            await players["ann"].next("frame", where=lambda m: m["step"] >= 5)
            players["cat"].close()
            paused = [await players[pid].next("paused") for pid in ("ann", "ben")]
            back = await Player(d.url, "cat", cookie=players["cat"].cookie, keys=["ArrowLeft"]).open()
            await back.seat()
            resumed = [await players[pid].next("resumed") for pid in ("ann", "ben")]
            await back.next("frame", where=lambda m: m["step"] >= 10)
            for p in (players["ann"], players["ben"], back):
                p.close()
            return seats, paused, resumed

    seats, paused, resumed = run_async(main())
    assert sorted(seats.values()) == ["p0", "p1", "p2"] and all(p["reason"] == "partner_lost" for p in paused)
    assert all(r["type"] == "resumed" for r in resumed)
    store = Store(tmp_path / "data", readonly=True)
    steps = store.steps("trio")[:10]
    store.close()
    action = {"ArrowUp": 1, "ArrowDown": 2, "ArrowLeft": 3}
    for step in steps:
        for pid, agent in seats.items():
            assert step["sources"][agent] == f"human:{pid}" and step["actions"][agent] == action[keys[pid]]


class _Explodes(CoinGrid):
    """An env whose constructor fails once the deployment runs (the study built fine)."""

    armed = False

    def __init__(self, *args, **kwargs):
        if _Explodes.armed:
            raise RuntimeError("the env's data file is missing")
        super().__init__(*args, **kwargs)


def test_a_match_that_cannot_start_ends_its_members_studies_with_a_code(tmp_path):
    scene = (
        mug.GymScene("duo")
        .environment(_Explodes, {"size": 5}, seed=1)
        .policies({"agent_0": mug.Human, "agent_1": mug.Human})
        .gameplay(action_mapping={"ArrowUp": 1}, mode="lockstep", max_steps=10)
        .rendering(width=40, height=40)
    )

    async def main():
        async with deployed(duo(scene), tmp_path) as d:
            _Explodes.armed = True
            try:
                players = [await Player(d.url, pid).open() for pid in ("alice", "bob")]
                ends = [await p.scene("end") for p in players]
            finally:
                _Explodes.armed = False
            for p in players:
                p.close()
            return ends

    ends = run_async(main())
    assert all(e["scene"]["completion_code"] and "could not be started" in e["scene"]["body"] for e in ends)
    _, events, _ = stored(tmp_path)
    assert [e["data"]["error"] for e in kinds_of(events, "match_error")] == ["RuntimeError: the env's data file is missing"]


def test_the_study_link_parameters_are_kept_for_matchmaking_after_a_restart(tmp_path):
    """URL parameters are stored with the participant (a restarted server's matchmaker still sees them); a load
    of the bare page keeps them, and a request without the participant's cookie cannot change them."""
    from tornado.httpclient import AsyncHTTPClient

    async def get(url: str, cookie: str | None = None) -> tuple[int, str]:
        response = await AsyncHTTPClient().fetch(
            url, headers={"Cookie": cookie} if cookie else {}, follow_redirects=False, raise_error=False
        )
        return response.code, response.headers.get("Set-Cookie", "").split(";")[0]

    async def main():
        async with deployed(duo(), tmp_path) as d:
            code, cookie = await get(f"{d.url}?participant=alice&condition=blue")
            assert code == 200 and cookie
            assert (await get(f"{d.url}?participant=alice", cookie))[0] == 200  # the bare link again
            assert (await get(f"{d.url}?participant=alice&condition=red"))[0] == 403  # not alice's browser
        async with deployed(duo(), tmp_path) as d:  # a new server on the same data
            return dict(d._server.registry.get_or_create("alice").params)

    assert run_async(main()) == {"participant": "alice", "condition": "blue"}
