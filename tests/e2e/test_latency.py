"""A realtime scene behind 100 ms of added round-trip latency: every AI action comes from its own step's observation.

A delaying TCP proxy on loopback (asyncio; each direction's bytes are passed on
``delay`` seconds after they arrived, in order) sits between the participant
(headless Chromium, or a simulated participant) and the real server.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from urllib.parse import urlsplit

import numpy as np
import pytest

from mug.server.store import Store
from mug.session.messages import decode_envelope, tensor_from_ref
from tests.bots import SimulatedParticipant, run_async
from tests.e2e.partner_studies import python_rerun
from tests.servers import ServerProcess


class DelayProxy:
    """Forwards 127.0.0.1:``port`` to ``target_port``, delaying each direction by ``delay`` seconds (order kept)."""

    def __init__(self, target_port: int, delay: float) -> None:
        self.target_port, self.delay = target_port, delay
        self.loop = asyncio.new_event_loop()
        self.port = 0

    def __enter__(self) -> DelayProxy:
        started = threading.Event()

        def serve() -> None:  # in a thread of its own: Playwright's sync API runs a loop in this one
            asyncio.set_event_loop(self.loop)
            self.server = self.loop.run_until_complete(asyncio.start_server(self._connect, "127.0.0.1", 0))
            self.port = self.server.sockets[0].getsockname()[1]
            started.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=serve, daemon=True)
        self.thread.start()
        started.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    async def _shutdown(self) -> None:
        self.server.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _connect(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        await asyncio.gather(self._pipe(client_reader, server_writer), self._pipe(server_reader, client_writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                await asyncio.sleep(max(0.0, due - loop.time()))
                if not data:
                    break
                writer.write(data)
                await writer.drain()
            writer.close()

        sender = loop.create_task(deliver())
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(1 << 16):
                queue.put_nowait((loop.time() + self.delay, data))
        queue.put_nowait((loop.time() + self.delay, b""))
        with contextlib.suppress(ConnectionError):
            await sender


def proxied(url: str, proxy: DelayProxy) -> str:
    return f"http://127.0.0.1:{proxy.port}{urlsplit(url).path}"


@pytest.fixture()
def study(request, tmp_path):
    server = ServerProcess(["deploy", f"tests/e2e/partner_studies.py:{request.param}"], tmp_path / "data").start()
    yield server
    server.stop()


def play_in_chromium(browser, url: str, pid: str) -> dict[tuple[int, int], np.ndarray]:
    """Play the study to its end page (no key pressed); returns the partner's observations the page was sent, by (episode, step)."""
    page = browser.new_context().new_page()
    errors: list[str] = []
    sent: dict[tuple[int, int], np.ndarray] = {}

    def on_frame(payload: bytes | str) -> None:
        if isinstance(payload, str):
            return
        message, buffers = decode_envelope(payload)
        if message["type"] == "frame" and "agent_1" in message["observations"]:
            sent[(message["episode"], message["step"])] = tensor_from_ref(message["observations"]["agent_1"], buffers, "obs")

    page.on("websocket", lambda ws: ws.on("framereceived", on_frame))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{url}?PROLIFIC_PID={pid}")
    page.wait_for_selector(".mug-code", timeout=60000)
    assert errors == []
    page.context.close()
    return sent


@pytest.mark.parametrize(
    ("study", "source"), [("server_partner", "server_policy"), ("browser_partner", "policy")], indirect=["study"]
)
def test_realtime_ai_actions_come_from_their_own_step_behind_100ms_round_trip(browser, study, source):
    port = urlsplit(study.url).port
    with DelayProxy(port, delay=0.05) as proxy:
        sent = play_in_chromium(browser, proxied(study.url, proxy), f"lat_{source}")
    store = Store(study.data_dir)
    steps = store.steps("grid")
    store.close()
    assert len(steps) == 30
    assert [st["sources"]["agent_1"] for st in steps] == [source] * 30  # no `late`, no `previous`
    actions, logits = python_rerun(steps)
    assert [st["actions"]["agent_1"] for st in steps] == actions  # each computed from its own step's observation
    np.testing.assert_allclose([st["policy_outputs"]["agent_1"]["logits"] for st in steps], logits, rtol=1e-5, atol=1e-5)
    if source == "policy":  # what was recorded is what the browser was sent, for every step
        assert sorted(sent) == [(0, s) for s in range(30)]
        for st in steps:
            np.testing.assert_array_equal(np.asarray(st["observations"]["agent_1"], np.float32), sent[(0, st["step"])])
    else:
        assert sent == {}  # the page is sent no observations: the server runs the partner


@pytest.mark.parametrize("study", ["browser_partner_strict"], indirect=True)
def test_a_round_trip_past_act_timeout_is_recorded_late(study):
    port = urlsplit(study.url).port
    with DelayProxy(port, delay=0.15) as proxy:  # 300 ms round trip, act_timeout_s=0.15
        stats = run_async(SimulatedParticipant(proxied(study.url, proxy), "lat_late").run(timeout=60))
    assert stats.completion_code == "DONE"
    store = Store(study.data_dir)
    steps, late = store.steps("grid"), store.events("late_act")
    store.close()
    sources = [st["sources"]["agent_1"] for st in steps]
    assert len(steps) == 12 and "late" in sources
    assert sources.count("late") >= len(steps) // 2  # a result needs 300 ms to come back, the step waits 150 ms
    assert late and all(e["data"]["agent"] == "agent_1" for e in late)
    assert {e["data"]["step"] for e in late} <= {st["step"] for st in steps if st["sources"]["agent_1"] == "late"}
