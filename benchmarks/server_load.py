"""Participant-server load: N bot participants playing CartPole at 30 fps against one server process.

    python benchmarks/server_load.py [--sizes 10,50,100,200,300] [--seconds 8] [--pin SERVER_CPU,BOTS_CPU]
                                     [--players human|server-ai]

The server (``mug deploy tests/e2e/studies.py:cartpole_realtime``) runs the
environment, draws CartPole as a two-object Surface and records every step
in SQLite. Each bot answers every frame with an action. For each N this
prints: frames/s per client, inter-frame gap p50/p99 (client side),
input-to-frame latency p50/p99 (act sent -> the next frame), the server
process's CPU share and memory per session, and the bots' own CPU share (they
run in this process). ``--pin 0,1`` puts the server on CPU 0 and the bots on
CPU 1 (as ``taskset`` would), so that neither steals the other's core; without
it both share every core. Target: N=300 at 30 fps with p99 gap < 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tornado.httpclient import AsyncHTTPClient
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

from mug.server.simulate import join
from mug.session.messages import encode_envelope
from tests.servers import ServerProcess


class LoadBot(asyncio.BufferedProtocol):
    """One bot participant: answers every frame with an action.

    Written on asyncio's buffered protocol layer with the ``websockets`` Sans-I/O
    client (not Tornado's WebSocket client, which costs the bots' process about
    as much CPU per message as the server spends), so that the bots, which share
    this machine's two cores with the server, do not starve it.
    """

    def __init__(self, url: str, pid: str, cookie: str) -> None:
        self.ws = ClientProtocol(parse_uri(url.replace("http://", "ws://") + f"ws?participant={pid}"))
        request = self.ws.connect()
        request.headers["Cookie"] = cookie
        self.ws.send_request(request)
        self.arrivals: list[float] = []
        self.latencies: list[float] = []
        self.sent_at: float | None = None
        self.measuring = False
        self.failure: str | None = None
        self.transport: asyncio.Transport | None = None
        self.buffer = memoryview(bytearray(1 << 16))

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._flush()

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.ws.receive_data(bytes(self.buffer[:nbytes]))
        for event in self.ws.events_received():
            if isinstance(event, Response):
                if event.status_code != 101:
                    self.failure = f"handshake refused: {event.status_code}"
                self._send({"type": "ready"})
            elif isinstance(event, Frame) and event.opcode is Opcode.BINARY:
                self._on_message(event.data)
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.failure is None and self.measuring:
            self.failure = f"connection lost: {exc}"

    def _on_message(self, raw: bytes) -> None:
        now = time.perf_counter()
        (length,) = struct.unpack_from("<I", raw, 4)
        message = json.loads(raw[8 : 8 + length])["message"]
        if message["type"] != "frame":
            return
        if self.measuring:
            self.arrivals.append(now)
            if self.sent_at is not None:
                self.latencies.append(now - self.sent_at)
        self.sent_at = time.perf_counter()
        step = message["step"]
        self._send({"type": "act", "step": step, "keys": ["ArrowLeft"] if step % 2 else ["ArrowRight"], "policies": {}})

    def _send(self, message: dict) -> None:
        self.ws.send_binary(encode_envelope(message))

    def _flush(self) -> None:
        for data in self.ws.data_to_send():
            if data and self.transport is not None:
                self.transport.write(data)


def _proc_stats(pid: int) -> tuple[float, int]:
    """(CPU seconds, resident bytes) of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    rss_pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    return ticks / 100.0, rss_pages * 4096


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


#: ``--players``: who plays each participant's CartPole (the bots send their keys either way).
STUDIES = {
    "human": ("tests/e2e/studies.py:cartpole_realtime", "a human (the bot's keys)"),
    "server-ai": ("tests/e2e/studies.py:cartpole_server_ai", "the CartPole LSTM, run by the server (inference='auto')"),
}


def _start_server(data_dir: Path, pin: tuple[int, int] | None, players: str) -> ServerProcess:
    """The server process; with ``pin`` (server CPU, bots CPU) it runs on its CPU and this process on the other."""
    if pin is not None:
        os.sched_setaffinity(0, {pin[0]})  # the server process inherits this at its start...
    study = ["deploy", STUDIES[players][0], "--participants-per-address", "0"]  # all bots: one address
    server = ServerProcess(study, data_dir).start()
    if pin is not None:
        os.sched_setaffinity(0, {pin[1]})  # ...then the bots move to their own
    return server


async def measure(n: int, seconds: float, warmup: float, pin: tuple[int, int] | None, players: str = "human") -> dict:
    AsyncHTTPClient.configure(None, max_clients=max(10, n))
    with tempfile.TemporaryDirectory() as tmp:
        server = _start_server(Path(tmp) / "data", pin, players)
        try:
            pid = server.proc.pid
            _, rss_idle = _proc_stats(pid)
            loop = asyncio.get_running_loop()
            host, port = urlparse(server.url).hostname, urlparse(server.url).port
            bots = []
            for i in range(n):  # arrivals spread over a moment, as real participants' are
                cookie = await join(server.url, f"load{i}")
                bot = LoadBot(server.url, f"load{i}", cookie)
                await loop.create_connection(lambda bot=bot: bot, host, port)
                bots.append(bot)
                await asyncio.sleep(0.01)
            while sum(1 for b in bots if b.sent_at is not None) < n:  # everyone is playing
                await asyncio.sleep(0.1)
                if failed := [b.failure for b in bots if b.failure]:
                    raise RuntimeError(failed[0])
            await asyncio.sleep(warmup)
            cpu0, _ = _proc_stats(pid)
            own0 = time.process_time()
            t0 = time.perf_counter()
            for b in bots:
                b.measuring = True
            await asyncio.sleep(seconds)
            for b in bots:
                b.measuring = False
            cpu1, rss = _proc_stats(pid)
            elapsed = time.perf_counter() - t0
            bots_cpu = (time.process_time() - own0) / elapsed * 100
            for b in bots:
                b.transport.close()
            if failed := [b.failure for b in bots if b.failure]:
                raise RuntimeError(f"{len(failed)} bots failed, e.g. {failed[0]}")
        finally:
            server.stop()
    gaps = [b - a for bot in bots for a, b in zip(bot.arrivals, bot.arrivals[1:])]
    latencies = [x for bot in bots for x in bot.latencies]
    return {
        "n": n,
        "fps": statistics.mean(len(b.arrivals) / elapsed for b in bots),
        "gap50": _pct(gaps, 0.5) * 1e3,
        "gap99": _pct(gaps, 0.99) * 1e3,
        "lat50": _pct(latencies, 0.5) * 1e3,
        "lat99": _pct(latencies, 0.99) * 1e3,
        "cpu": (cpu1 - cpu0) / elapsed * 100,
        "mem": (rss - rss_idle) / n / 1024,
        "bots": bots_cpu,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10,50,100,200,300")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--pin", default=None, metavar="SERVER_CPU,BOTS_CPU", help="pin server and bots to these CPUs")
    parser.add_argument("--players", choices=sorted(STUDIES), default="human", help="who plays CartPole (default: human)")
    args = parser.parse_args()
    pin = tuple(int(x) for x in args.pin.split(",")) if args.pin else None
    if pin is not None and len(pin) != 2:
        parser.error("--pin takes two CPU numbers, e.g. 0,1")
    where = f"server on CPU {pin[0]}, bots on CPU {pin[1]}" if pin else f"server and bots sharing {os.cpu_count()} cores"
    print(
        f"CartPole-v1 as a 2-object Surface at 30 fps played by {STUDIES[args.players][1]}, one server process, "
        f"bots on the same machine ({where})"
    )
    print(
        f"{'N':>5} {'frames/s/client':>16} {'gap p50 ms':>11} {'gap p99 ms':>11} {'input->frame p50':>17} {'p99 ms':>8}"
        f" {'server CPU %':>13} {'KiB/session':>12} {'bots CPU %':>11}  target (30 fps, p99 gap < 50 ms)"
    )
    for n in (int(x) for x in args.sizes.split(",")):
        r = asyncio.run(measure(n, args.seconds, args.warmup, pin, args.players))
        verdict = "ok" if r["fps"] >= 29.7 and r["gap99"] < 50 else "MISSED"
        print(
            f"{r['n']:>5} {r['fps']:>16.1f} {r['gap50']:>11.1f} {r['gap99']:>11.1f} {r['lat50']:>17.1f} {r['lat99']:>8.1f}"
            f" {r['cpu']:>13.0f} {r['mem']:>12.0f} {r['bots']:>11.0f}  {verdict}",
            flush=True,
        )


if __name__ == "__main__":
    main()
