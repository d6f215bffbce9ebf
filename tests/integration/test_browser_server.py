"""The server's side of browser-side scenes, with a Python client in the page's and the worker's role.

The client runs :class:`mug.browser.BrowserGame` in CPython (as the worker runs it in Pyodide) and relays its
``steps`` to the real server over a real WebSocket, keeping every record until ``steps_ack``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import random
import time
from typing import Any

from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

import mug
from mug.browser.game import BrowserGame
from mug.examples.browser_grid import PyCoinGrid, draw
from mug.server.store import Store
from mug.session.messages import decode_envelope, encode_envelope
from tests.bots import join, run_async
from tests.browser_envs import NoisyGrid


def study(creator=PyCoinGrid, episodes: int = 2) -> mug.Stager:
    game = (
        mug.GymScene("grid")
        .environment(creator, {"max_steps": 12}, seed=9)
        .policies({"agent_0": mug.Human, "agent_1": mug.Random})
        .gameplay(action_mapping={"ArrowUp": 1, "ArrowDown": 2, "ArrowLeft": 3, "ArrowRight": 4}, num_episodes=episodes)
        .rendering(mode="surface", draw=draw, width=200, height=200)
        .runtime(environment="browser")
    )
    return mug.Stager([game, mug.EndScene("end")])


class Page:
    """The participant page and its worker, in Python."""

    def __init__(self, url: str, pid: str) -> None:
        self.url, self.pid = url, pid
        self.game: BrowserGame | None = None
        self.unacked: dict[int, dict[str, Any]] = {}
        self.acks: list[int] = []
        self.errors: list[dict[str, Any]] = []
        self.scenes: list[dict[str, Any]] = []
        self.outgoing: list[dict[str, Any]] = []
        self.tamper = None

    async def connect(self, cookie: str | None = None) -> None:
        self.cookie = cookie or self.__dict__.get("cookie") or await join(self.url, self.pid)
        ws = self.url.replace("http://", "ws://") + f"ws?participant={self.pid}"
        self.ws = await websocket_connect(HTTPRequest(ws, headers={"Cookie": self.cookie}))
        await self.send({"type": "ready"})

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.write_message(encode_envelope(message), binary=True)

    def post(self, message: dict[str, Any], buffers: list[bytes]) -> None:
        if message["type"] == "steps":
            for r in message["records"]:
                if self.tamper:
                    self.tamper(r)
                self.unacked[r["seq"]] = r
            self.outgoing.append(message)
        elif message["type"] == "env_error":
            self.outgoing.append(message)

    async def read(self, until: str, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            raw = await asyncio.wait_for(self.ws.read_message(), deadline - time.monotonic())
            assert raw is not None, "socket closed"
            message, _ = decode_envelope(raw)
            if message["type"] == "steps_ack":
                self.acks.append(message["seq"])
                for seq in [s for s in self.unacked if s <= message["seq"]]:
                    del self.unacked[seq]
            elif message["type"] == "error":
                self.errors.append(message)
            elif message["type"] == "scene":
                self.scenes.append(message)
            if message["type"] == until:
                return message

    async def start_game(self, scene: dict[str, Any]) -> None:
        spec = scene["scene"]["environment"]["spec"]
        self.game = BrowserGame(spec, self.post)
        await self.flush()

    async def flush(self) -> None:
        sent, self.outgoing = self.outgoing, []
        for message in sent:
            await self.send(message)
            if message["type"] == "steps":
                await self.read("steps_ack")

    async def play(self, ticks: int, seed: int = 0) -> None:
        rng = random.Random(seed)
        for _ in range(ticks):
            if self.game.done:
                break
            s = self.game.session
            key = rng.choice(["ArrowUp", "ArrowDown", "ArrowLeft", "ArrowRight"])
            self.game.receive({"type": "act", "step": s.decision, "episode": s.episode, "keys": [key]})
            self.game.tick()
            await self.flush()

    async def resend_unacked(self, records: list[dict[str, Any]] | None = None) -> None:
        records = records or [self.unacked[s] for s in sorted(self.unacked)]
        await self.send({"type": "steps", "session_id": self.game.session_id, "scene_id": "grid", "records": records})
        await self.read("steps_ack")


async def wait_for_verifications(data_dir, count: int, timeout: float = 90.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        store = Store(data_dir, readonly=True)
        found = store.events("verification")
        store.close()
        if len(found) >= count:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"fewer than {count} verifications after {timeout} s")


def stored(data_dir) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    store = Store(data_dir, readonly=True)
    try:
        return store.steps("grid"), store.events()
    finally:
        store.close()


def test_a_browser_played_scene_is_stored_once_acked_and_verified(tmp_path):
    data = tmp_path / "data"

    async def main():
        deployment = mug.deploy(study(), port=0, data_dir=data)
        page = Page(deployment.url, "p1")
        await page.connect()
        scene = await page.read("scene")
        env = scene["scene"]["environment"]
        assert env["where"] == "browser" and env["pyodide"].startswith("pyodide/") and len(env["bundles"]) == 2
        assert scene["preload"]["bundles"] == sorted(env["bundles"])
        await page.start_game(scene)
        await page.play(100)
        end = await page.read("scene")
        assert end["scene"]["kind"] == "end"
        await wait_for_verifications(data, 2)
        bundle = await _fetch(deployment.url + env["bundles"][1])
        missing = await _fetch(deployment.url + "pybundle/0123456789abcdef.zip")
        deployment.stop()
        return page, bundle, missing

    page, bundle, missing = run_async(main())
    steps, events = stored(data)
    assert not page.unacked and not page.errors
    assert len(steps) == len({(s["episode"], s["step"]) for s in steps}) >= 12  # two episodes, none twice
    assert all(s["verified"] is True for s in steps)
    provenance = [e["data"] for e in events if e["kind"] == "session" and e["data"].get("where") == "browser"]
    assert provenance and provenance[0]["mug_version"] == mug.__version__ and provenance[0]["seed"] == 9
    assert bundle[0] == 200 and bundle[1]["Cache-Control"] == "public, max-age=31536000, immutable"
    assert missing[0] == 404


async def _fetch(url: str) -> tuple[int, Any]:
    from tornado.httpclient import AsyncHTTPClient

    response = await AsyncHTTPClient().fetch(url, raise_error=False)
    return response.code, response.headers


def test_resent_records_are_stored_once_and_a_gap_or_bad_action_is_refused(tmp_path):
    data = tmp_path / "data"

    async def main():
        deployment = mug.deploy(study(), port=0, data_dir=data)
        page = Page(deployment.url, "p2")
        kept: list[dict[str, Any]] = []
        page.tamper = kept.append  # keep a copy of every record sent
        await page.connect()
        await page.start_game(await page.read("scene"))
        await page.play(5)
        session = page.game.session_id
        await page.send({"type": "steps", "session_id": session, "scene_id": "grid", "records": kept[:4]})
        again = await page.read("steps_ack")
        assert again["seq"] == kept[-1]["seq"]  # everything was stored already: the ack stays
        last = kept[-1]
        gap = {**last, "seq": last["seq"] + 5}
        await page.send({"type": "steps", "session_id": session, "scene_id": "grid", "records": [gap]})
        await page.read("steps_ack")
        gap_error = await page.read("error")
        bad = {**last, "seq": last["seq"] + 1, "step": last["step"] + 1}
        bad["record"] = {**last["record"], "actions": {"agent_0": 9, "agent_1": 0}}
        await page.send({"type": "steps", "session_id": session, "scene_id": "grid", "records": [bad]})
        await page.read("steps_ack")
        bad_error = await page.read("error")
        await page.play(3)  # the game goes on
        deployment.stop()
        return gap_error, bad_error, kept

    gap_error, bad_error, kept = run_async(main())
    steps, events = stored(data)
    assert gap_error["code"] == "bad_steps" and "does not follow" in gap_error["message"]
    assert bad_error["code"] == "bad_steps" and "not in its action space" in bad_error["message"]
    assert len(steps) == len({(s["episode"], s["step"]) for s in steps}) == sum(r["kind"] == "step" for r in kept)
    assert len([e for e in events if e["kind"] == "bad_steps"]) == 2


def test_a_tampered_record_and_a_noisy_env_are_flagged_by_verification(tmp_path):
    def lie(record):
        if record["kind"] == "step" and record["episode"] == 0 and record["step"] == 3:
            record["record"]["rewards"] = {"agent_0": 5.0, "agent_1": 5.0}

    async def run(creator, data, tamper):
        deployment = mug.deploy(study(creator, episodes=1), port=0, data_dir=data)
        page = Page(deployment.url, "p3")
        page.tamper = tamper
        await page.connect()
        await page.start_game(await page.read("scene"))
        await page.play(40)
        await page.read("scene")
        found = await wait_for_verifications(data, 1)
        deployment.stop()
        return found

    tampered = run_async(run(PyCoinGrid, tmp_path / "a", lie))
    assert tampered[0]["data"]["mismatches"][0]["step"] == 3 and "reward" in tampered[0]["data"]["mismatches"][0]["what"]
    steps, _ = stored(tmp_path / "a")
    assert [s["step"] for s in steps if s["verified"] is False] == [3]
    frame = mug.load(tmp_path / "a").steps
    assert frame["verified"].tolist() == [s["step"] != 3 for s in steps]
    noisy = run_async(run(NoisyGrid, tmp_path / "b", None))
    assert noisy[0]["data"]["verified"] is False
    steps, _ = stored(tmp_path / "b")
    assert not any(s["verified"] for s in steps)


def test_a_reload_restarts_the_episode_in_a_new_session_and_env_errors_end_the_scene(tmp_path):
    data = tmp_path / "data"

    async def main():
        deployment = mug.deploy(study(episodes=3), port=0, data_dir=data)
        page = Page(deployment.url, "p4")
        await page.connect()
        await page.start_game(await page.read("scene"))
        await page.play(16)  # episode 0 (12 steps) done, episode 1 under way
        first = page.game.session_id
        page.ws.close()
        reloaded = Page(deployment.url, "p4")
        await reloaded.connect(page.cookie)
        scene = await reloaded.read("scene")
        spec = scene["scene"]["environment"]["spec"]
        await reloaded.start_game(scene)
        await reloaded.play(3)
        await reloaded.send(
            {
                "type": "env_error",
                "session_id": spec["session_id"],
                "episode": 1,
                "step": 3,
                "message": "boom",
                "traceback": "Traceback: x",
            }
        )
        after = await reloaded.read("scene")
        deployment.stop()
        return first, spec, after

    first, spec, after = run_async(main())
    assert spec["session_id"] != first and spec["resume"] == {"episode": 1, "seq": 0}
    assert after["scene"]["kind"] == "end"
    steps, events = stored(data)
    old = [(s["episode"], s["step"]) for s in steps if s["session_id"] == first]
    new = [(s["episode"], s["step"]) for s in steps if s["session_id"] == spec["session_id"]]
    assert old[:12] == [(0, i) for i in range(12)] and old[12:] == [(1, i) for i in range(4)]
    assert new == [(1, 0), (1, 1), (1, 2)]  # the episode started again, with its own seed
    errors = [e["data"] for e in events if e["kind"] == "env_error"]
    assert errors == [
        {
            "session_id": spec["session_id"],
            "episode": 1,
            "step": 3,
            "message": "boom",
            "traceback": "Traceback: x",
            "scene_id": "grid",
        }
    ]


def test_after_a_server_restart_the_page_resends_what_was_not_acked(tmp_path):
    data = tmp_path / "data"

    async def main():
        deployment = mug.deploy(study(), port=0, data_dir=data)
        page = Page(deployment.url, "p5")
        await page.connect()
        await page.start_game(await page.read("scene"))
        await page.play(5)
        deployment.stop()
        # the worker goes on while the server is away: its records stay unacked
        page.outgoing.clear()
        for _ in range(4):
            s = page.game.session
            page.game.receive({"type": "act", "step": s.decision, "episode": s.episode, "keys": ["ArrowUp"]})
            page.game.tick()
        page.outgoing.clear()
        pending = len(page.unacked)
        deployment = mug.deploy(study(), port=0, data_dir=data)
        page.url = deployment.url
        await page.connect(page.cookie)
        await page.read("scene")  # a new session is offered; this page's worker keeps its own
        records = [page.unacked[s] for s in sorted(page.unacked)]
        await page.resend_unacked()
        await page.resend_unacked(records)  # twice: stored once
        await page.play(100)
        deployment.stop()
        return pending, page

    pending, page = run_async(main())
    steps, _ = stored(data)
    assert pending >= 4 and not page.unacked, page.errors
    keys = [(s["episode"], s["step"]) for s in steps]
    assert len(keys) == len(set(keys)) and keys[:5] == [(0, i) for i in range(5)] and (1, 11) in keys


def test_mug_verify_re_simulates_a_data_dir_and_flags_tampering(tmp_path, capsys):
    from mug.cli import main

    def lie(record):
        if record["kind"] == "step" and record["step"] == 5:
            record["record"]["actions"] = {
                **record["record"]["actions"],
                "agent_0": (record["record"]["actions"]["agent_0"] + 1) % 5,
            }

    async def run(data, tamper):
        deployment = mug.deploy(study(episodes=1), port=0, data_dir=data)
        page = Page(deployment.url, "p6")
        page.tamper = tamper
        await page.connect()
        await page.start_game(await page.read("scene"))
        await page.play(40)
        await page.read("scene")
        await wait_for_verifications(data, 1)
        deployment.stop()

    run_async(run(tmp_path / "clean", None))
    assert main(["verify", str(tmp_path / "clean")]) == 0
    assert "1 of 1 episode(s) verified" in capsys.readouterr().out
    run_async(run(tmp_path / "lied", lie))
    assert main(["verify", str(tmp_path / "lied"), "--dry-run"]) == 1
    out = capsys.readouterr().out
    assert "DIFFER; first at step 5: observation" in out and "0 of 1 episode(s) verified" in out
    store = Store(tmp_path / "lied", readonly=True)
    assert len(store.events("verification")) == 1  # --dry-run stored nothing
    store.close()


def test_steps_recorded_faster_than_the_scene_plays_are_refused(tmp_path, monkeypatch):
    import mug.server.browser_sessions as ingestion

    monkeypatch.setattr(ingestion, "RATE_SLACK", 20)  # so that a slow machine's pace still breaks the limit
    monkeypatch.setattr(ingestion, "RATE_MARGIN", 0.2)  # 6 steps/s allowed

    async def main():
        deployment = mug.deploy(study(episodes=40), port=0, data_dir=tmp_path / "data")
        page = Page(deployment.url, "p7")
        await page.connect()
        await page.start_game(await page.read("scene"))
        await page.play(200)  # a fake clock: steps as fast as acks come back
        deployment.stop()
        return page

    page = run_async(main())
    steps, events = stored(tmp_path / "data")
    assert any("faster than the scene's 30 fps allows" in e["message"] for e in page.errors)
    assert 20 <= len(steps) < 200
    assert any(e["kind"] == "bad_steps" for e in events)


def test_a_reload_after_the_last_episode_ended_moves_on_instead_of_playing_another(tmp_path):
    class LosesTheEnd(Page):
        def post(self, message, buffers):
            if message["type"] == "steps":
                message["records"] = [r for r in message["records"] if r.get("name") != "scene_end"]
                if not message["records"]:
                    return
            super().post(message, buffers)

    async def main():
        deployment = mug.deploy(study(episodes=1), port=0, data_dir=tmp_path / "data")
        page = LosesTheEnd(deployment.url, "p8")
        await page.connect()
        await page.start_game(await page.read("scene"))
        await page.play(40)  # the episode ends; the scene_end record never reaches the server
        page.ws.close()
        reloaded = Page(deployment.url, "p8")
        await reloaded.connect(page.cookie)
        scene = await reloaded.read("scene")
        deployment.stop()
        return scene

    assert run_async(main())["scene"]["kind"] == "end"


def test_a_verification_cancelled_at_shutdown_is_dropped_quietly():
    from mug.server.verify import Verifier

    class Registry:
        def __getattr__(self, name):
            raise AssertionError(f"a cancelled verification must not touch the registry ({name})")

    loop = asyncio.new_event_loop()
    future = loop.create_future()  # what run_in_executor gives, cancelled when the child process is shut down
    future.cancel()
    try:
        Verifier(Registry())._done([("p", "grid")], 12, future)  # raised CancelledError in the loop's callback before
    finally:
        loop.close()


def test_a_verification_finishing_after_shutdown_is_dropped():
    from mug.server.verify import Verifier

    class Registry:
        def __getattr__(self, name):
            raise AssertionError(f"after close a verification must not touch the closed store ({name})")

    loop = asyncio.new_event_loop()
    future = loop.create_future()
    future.set_result([{"verified": True}])
    verifier = Verifier(Registry())
    verifier.close()
    try:
        verifier._done([("p", "grid")], 12, future)  # stored into the closed store before (a warning at every shutdown)
    finally:
        loop.close()


def test_each_kind_of_bad_step_record_is_refused_with_its_reason_and_what_came_before_is_stored(tmp_path):
    """The server's record checks, one bad field at a time (in process: the registry as the socket drives it)."""
    from mug.browser.run import game_trace
    from mug.server.participants import ParticipantRegistry

    class Tab:
        def __init__(self) -> None:
            self.messages: list[dict[str, Any]] = []

        def deliver(self, frames: list[bytes]) -> None:
            self.messages += [decode_envelope(f)[0] for f in frames]

    bad = {
        "an agent the scene does not have": lambda r: r["record"]["actions"].update(agent_9=1),
        "actions that are not a map": lambda r: r["record"].update(actions=[1, 2]),
        "an action outside the space": lambda r: r["record"]["actions"].update(agent_0=5),
        "a true for an action": lambda r: r["record"]["actions"].update(agent_0=True),
        "a text reward": lambda r: r["record"]["rewards"].update(agent_0="1"),
        "a number for terminated": lambda r: r["record"]["terminated"].update(agent_0=0),
        "a missing obs_hash": lambda r: r["record"].pop("obs_hash"),
        "a negative decision": lambda r: r["record"].update(decision=-1),
        "a skipped step": lambda r: r.update(step=r["step"] + 1),
    }
    reasons = {
        "an agent the scene does not have": "actions must map agents of",
        "actions that are not a map": "actions must map agents of",
        "an action outside the space": "action 5 of agent 'agent_0' is not in its action space Discrete(5)",
        "a true for an action": "action True of agent 'agent_0' is not in its action space",
        "a text reward": "rewards must be numbers",
        "a number for terminated": "terminated and truncated must be true or false",
        "a missing obs_hash": "needs its decision (integer) and obs_hash",
        "a negative decision": "needs its decision (integer) and obs_hash",
        "a skipped step": "step 5 of episode 0 after step 3 of episode 0",
    }

    async def main() -> dict[str, list[dict[str, Any]]]:
        out = {}
        store = Store(tmp_path / "data")
        registry = ParticipantRegistry(study(), store, 256 * 1024)
        for i, (what, spoil) in enumerate(bad.items()):
            participant = registry.get_or_create(f"p{i}")
            participant.connection = tab = Tab()  # type: ignore[assignment]
            participant.resume()
            registry.flush()
            session_id = participant.game.current
            spec = {**registry.browser.specs["grid"], "session_id": session_id}
            records = [r | {"time": time.time()} for r in game_trace({"spec": spec, "ticks": 10, "seed": 1})["records"]]
            steps = [r for r in records if r["kind"] == "step"]
            spoil(steps[4])
            upto = records.index(steps[4])
            participant.receive(
                encode_envelope({"type": "steps", "session_id": session_id, "scene_id": "grid", "records": records})
            )
            registry.flush()
            out[what] = tab.messages
            assert store.browser_seq(session_id) == records[upto - 1]["seq"], what
        registry.verifier.close()
        store.close()
        return out

    # in a thread of its own: in the full suite the session's Playwright has an event loop running in this one
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        replies = pool.submit(lambda: asyncio.run(main())).result()
    for what, reason in reasons.items():
        acks = [m for m in replies[what] if m["type"] == "steps_ack"]
        errors = [m for m in replies[what] if m["type"] == "error"]
        assert len(acks) == 1 and len(errors) == 1, what
        assert errors[0]["code"] == "bad_steps" and reason in errors[0]["message"], (what, errors[0]["message"])
