"""The participant server under bots: concurrency, crashes, and everything a browser could send wrong."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import struct
import subprocess
import sys

import pytest
from tornado.httpclient import HTTPRequest
from tornado.iostream import StreamClosedError
from tornado.websocket import WebSocketClosedError, websocket_connect

import mug
from mug.examples.demo import demo_study
from mug.server.app import MugServer
from mug.server.simulate import simulate
from mug.server.store import Store
from mug.session.messages import decode_envelope, encode_envelope
from tests.bots import Bot, join, raw_http, run_async
from tests.e2e.studies import cartpole_realtime
from tests.servers import ROOT, ServerProcess


@pytest.fixture()
def demo(tmp_path):
    server = ServerProcess(["demo"], tmp_path / "data").start()
    yield server
    server.stop()


def test_twenty_concurrent_bots_complete_the_study_and_every_acked_step_is_stored(demo):
    async def main():
        bots = [
            Bot(demo.url, f"bot{i:02d}", keys=[*["ArrowRight", "ArrowUp", "ArrowLeft", "ArrowDown"][i % 4 :], "s"])
            for i in range(20)
        ]
        return await simulate(demo.url, bots)  # all twenty in one Node process

    results = run_async(main())
    assert all(r.completion_code == "MUGDEMO" for r in results), [r.scenes for r in results]
    assert all(r.errors == [] for r in results)
    store = Store(demo.data_dir)
    for r in results:
        stored = [s for s in store.steps("coins") if s["participant_id"] == r.participant_id]
        assert len(stored) == r.acked_steps > 0
        assert {s["sources"]["agent_1"] for s in stored} == {"policy"}
    assert len(store.responses("survey")) == 20
    store.close()


def test_sigkill_loses_no_acknowledged_step_and_participants_resume(tmp_path):
    data = tmp_path / "data"
    server = ServerProcess(["demo"], data).start()
    bot = Bot(server.url, "crash1")
    stats = run_async(bot.run(stop_after_acks=12))
    assert stats.acked_steps == 12
    server.stop(signal.SIGKILL)
    store = Store(data)
    assert len(store.steps("coins")) >= stats.acked_steps
    assert store.participant("crash1")["scene_id"] == "coins"
    store.close()

    restarted = ServerProcess(["demo"], data).start()
    try:
        again = Bot(restarted.url, "crash1", cookie=bot.cookie)
        final = run_async(again.run())
        assert final.scenes[0] == "coins"  # resumed at the game, not at the start page
        assert final.completion_code == "MUGDEMO"
    finally:
        restarted.stop()
    store = Store(data)
    sessions = {s["session_id"] for s in store.steps("coins")}
    assert len(sessions) == 2  # the interrupted game and the one after the restart
    store.close()


async def _socket(url, pid, cookie):
    ws = await websocket_connect(
        HTTPRequest(url.replace("http://", "ws://") + f"ws?participant={pid}", headers={"Cookie": cookie} if cookie else {})
    )
    await ws.write_message(encode_envelope({"type": "ready"}), binary=True)
    return ws


async def _replies(ws, count=1, timeout=5.0):
    out = []
    while len(out) < count:
        raw = await asyncio.wait_for(ws.read_message(), timeout)
        if raw is None:
            out.append(("closed", ws.close_code, ws.close_reason))
            break
        message, _ = decode_envelope(raw)
        out.append(message)
    return out


def test_bad_input_is_rejected_and_nobody_else_is_affected(demo):
    async def main():
        cookie = await join(demo.url, "victim")
        bystander = Bot(demo.url, "bystander")
        bystander_task = asyncio.create_task(bystander.run())
        ws = await _socket(demo.url, "victim", cookie)
        first = (await _replies(ws))[0]
        assert first["type"] == "scene" and first["scene"]["scene_id"] == "start"
        results = {}
        for name, payload in {
            "garbage": b"\x00\xff\x13garbage",
            "not json": "{{{",
            "unknown type": encode_envelope({"type": "teleport"}),
            "unknown scene": encode_envelope({"type": "advance", "scene_id": "../../etc"}),
            "survey in the wrong scene": encode_envelope({"type": "response", "scene_id": "survey", "answers": {}}),
            "oversized": encode_envelope({"type": "act", "step": 0}, [b"\x00" * 300_000]),
            "bad envelope": b"MUG1" + struct.pack("<I", 999) + b"{}",
        }.items():
            await ws.write_message(payload, binary=not isinstance(payload, str))
            results[name] = (await _replies(ws))[0]
        assert {k: v["code"] for k, v in results.items()} == {
            "garbage": "bad_json",
            "not json": "bad_json",
            "unknown type": "unknown_type",
            "unknown scene": "unknown_scene",
            "survey in the wrong scene": "unknown_scene",
            "oversized": "too_large",
            "bad envelope": "bad_envelope",
        }
        assert "'../../etc'" in results["unknown scene"]["message"]
        await ws.write_message(encode_envelope({"type": "advance", "scene_id": "start"}), binary=True)
        assert (await _replies(ws))[0]["scene"]["scene_id"] == "coins"  # still served after all that
        with contextlib.suppress(WebSocketClosedError, StreamClosedError):  # the server may close mid-write
            await ws.write_message(b"x" * ((1 << 20) + 16), binary=True)  # beyond the socket limit: the server closes
        closed = await _replies(ws, 5)
        assert closed[-1][0] == "closed" and closed[-1][1] in (
            1009,
            None,
        )  # 1009 "message too big" when the close frame gets through
        forged = await _socket(demo.url, "victim", None)
        forged_reply = await _replies(forged, 2)
        assert forged_reply[0]["code"] == "forbidden" and forged_reply[1][0] == "closed"
        unknown = await _socket(demo.url, "nobody", cookie)
        assert (await _replies(unknown))[0]["code"] == "unknown_participant"
        stats = await bystander_task
        assert stats.completion_code == "MUGDEMO" and stats.errors == []

    run_async(main())


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("static/..%2fserver%2fstore.py", 403),
        ("static/../../pyproject.toml", 403),
        ("static/%2e%2e/%2e%2e/pyproject.toml", 403),
        ("static/client%00.js", 404),
        ("models/coins/..%2f..%2fagent_1.onnx", 404),
        ("models/nope/agent_1.onnx", 404),
        ("?PROLIFIC_PID=../../etc/passwd", 400),
        ("?participant=" + "x" * 65, 400),
        ("admin", 403),
        ("admin/steps.csv", 403),
        ("admin?token=wrong", 403),
    ],
)
def test_urls_that_must_not_work(demo, path, status):
    code, body = run_async(raw_http(demo.url + path))
    assert code == status
    assert "pyproject" not in body and "[project]" not in body


def test_assets_have_types_and_caching(demo):
    async def main():
        from tornado.httpclient import AsyncHTTPClient

        client = AsyncHTTPClient()
        wasm = await client.fetch(demo.url + "static/ort-wasm-simd-threaded.wasm")
        js = await client.fetch(demo.url + "static/client.js")
        model = await client.fetch(demo.url + demo_study().scenes["coins"].model_path("agent_1"))
        return wasm, js, model

    wasm, js, model = run_async(main())
    assert wasm.headers["Content-Type"] == "application/wasm" and "Etag" in wasm.headers
    assert js.headers["Content-Type"].startswith("text/javascript")
    assert model.body[:2] == b"\x08\x08"  # an ONNX protobuf (ir_version field)


def test_admin_view_needs_the_token_and_logs_never_show_it(tmp_path):
    server = ServerProcess(["demo"], tmp_path / "data").start()
    try:
        run_async(Bot(server.url, "someone").run(stop_after_acks=3))

        async def admin():
            from tornado.httpclient import AsyncHTTPClient

            client = AsyncHTTPClient()
            login = await client.fetch(f"{server.url}admin?token={server.admin_token}", follow_redirects=False, raise_error=False)
            cookie = login.headers["Set-Cookie"].split(";", 1)[0]
            page = await client.fetch(server.url + "admin", headers={"Cookie": cookie})
            export = await client.fetch(server.url + "admin/steps.csv", headers={"Cookie": cookie})
            return login.code, page.body.decode(), export.body.decode()

        code, page, export = run_async(admin())
        assert code == 302
        assert "someone" in page and "coins" in page
        assert export.splitlines()[0].startswith("participant_id,session_id,scene_id")
        store = Store(tmp_path / "data")
        assert len(export.splitlines()) == 1 + len(store.steps()) >= 4
        store.close()
    finally:
        output = server.stop()
    assert server.admin_token not in output  # the start-up line (read by start()) is the only place it appears


def test_researcher_images_are_served_by_their_declared_name_only(tmp_path):
    server = ServerProcess(["deploy", "tests/e2e/studies.py:with_assets"], tmp_path / "data").start()
    try:

        async def fetch_all():
            return [
                await raw_http(server.url + p)
                for p in ("assets/sprites/cart", "assets/sprites/../studies.py", "assets/sprites/%2e%2e/studies.py")
            ]

        ok, up, encoded = run_async(fetch_all())
    finally:
        server.stop()
    assert ok[0] == 200
    assert up[0] in (403, 404) and encoded[0] in (403, 404)
    assert "mug.Stager" not in up[1] + encoded[1]


class _Tab:
    """What the registry needs of a tab (the socket layer is tested in test_websocket.py)."""

    def __init__(self) -> None:
        self.messages: list[dict] = []

    def deliver(self, frames: list[bytes]) -> None:
        self.messages += [decode_envelope(f)[0] for f in frames]

    def close_with(self, message: dict) -> None:
        self.messages.append(message)


def test_participants_away_too_long_are_dropped_and_their_game_interrupted(tmp_path):
    server = MugServer(cartpole_realtime, tmp_path, "token")
    registry = server.registry
    players = {}
    for pid in ("leaver", "stayer", "finisher"):
        participant, tab = registry.get_or_create(pid), _Tab()
        participant.attach(tab)
        participant.receive(encode_envelope({"type": "ready"}))
        players[pid] = (participant, tab)
    for _ in range(5):
        server.tick(30)
    finisher = players["finisher"][0]
    finisher.game = None
    finisher.advance()  # on to the end scene: the study is complete
    registry.flush()
    for pid in ("leaver", "finisher"):
        players[pid][0].detach(players[pid][1])

    assert registry.forget_idle(idle_after=60) == ["finisher"]  # complete: dropped at once; the leaver may come back
    leaver_game = players["leaver"][0].game
    assert registry.forget_idle(idle_after=60, now=players["leaver"][0].left_at + 61) == ["leaver"]
    assert leaver_game.done and sorted(registry.participants) == ["stayer"]
    server.tick(30)
    assert players["stayer"][0].game.decision == 6  # the others' departure did not disturb the one still playing

    interrupted = server.store.events("interrupted")
    assert [(e["participant_id"], e["data"]["steps"]) for e in interrupted] == [("leaver", 5)]
    back = registry.get_or_create("leaver")  # returns later: loaded from the store, the scene starts again
    tab = _Tab()
    back.attach(tab)
    back.receive(encode_envelope({"type": "ready"}))
    registry.flush()
    assert back is not players["leaver"][0] and back.game.session_id != leaver_game.session_id
    assert [m["type"] for m in tab.messages][:2] == ["scene", "frame"]
    server.store.close()


def test_a_participant_who_never_opens_a_tab_is_dropped_after_the_idle_time(tmp_path):
    server = MugServer(cartpole_realtime, tmp_path, "token")
    visitor = server.registry.get_or_create("visitor")  # the page was opened; no WebSocket ever came
    assert server.registry.forget_idle(idle_after=60) == []
    assert server.registry.forget_idle(idle_after=60, now=visitor.left_at + 61) == ["visitor"]
    assert server.store.participant("visitor") is not None  # known to the store: can still come back
    server.store.close()


def test_deploying_inside_a_running_loop_leaves_the_notebook_heap_unfrozen(tmp_path):
    async def main():
        before = gc.get_freeze_count()
        deployment = mug.deploy(cartpole_realtime, port=0, data_dir=tmp_path / "data")
        try:
            return before, gc.get_freeze_count()
        finally:
            deployment.stop()

    before, after = run_async(main())
    assert after == before


def test_a_server_process_of_its_own_freezes_its_start_up_heap(tmp_path):
    script = (
        "import gc, os, signal, sys, threading, time, mug\n"
        "from tests.e2e.studies import cartpole_realtime\n"
        "def watch():\n"
        "    while not gc.get_freeze_count():\n"
        "        time.sleep(0.05)\n"
        "    print('frozen', gc.get_freeze_count() > 0, flush=True)\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "threading.Thread(target=watch, daemon=True).start()\n"
        "mug.deploy(cartpole_realtime, port=0, data_dir=sys.argv[1])\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "data")], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert "frozen True" in proc.stdout and "stopped" in proc.stdout, proc.stdout + proc.stderr


class _PingedTab(_Tab):
    """A tab whose socket records its pings (the pings themselves are tested in test_websocket.py)."""

    def __init__(self, clock: list[float], pinged_at: float) -> None:
        super().__init__()
        self.socket, self.clock, self.pings = self, clock, []
        self.pinged_at = pinged_at

    def ping(self) -> None:
        self.pinged_at = self.clock[0]
        self.pings.append(self.clock[0])


def test_each_socket_is_pinged_on_its_own_schedule_not_all_in_one_check(tmp_path):
    server = MugServer(cartpole_realtime, tmp_path, "token")
    clock = [0.0]
    tabs = {}
    for pid, opened in (("a", 0.0), ("b", 0.75), ("c", 1.5)):  # each attached (and first pinged) at its time
        tabs[pid] = _PingedTab(clock, opened)
        server.registry.get_or_create(pid).attach(tabs[pid])
    for step in range(1, 25):  # the checks, every 0.25 s, for 6 s
        clock[0] = step * 0.25
        server.ping_due(clock[0])
    assert {pid: tab.pings for pid, tab in tabs.items()} == {"a": [2.0, 4.0, 6.0], "b": [2.75, 4.75], "c": [3.5, 5.5]}
    server.store.close()
