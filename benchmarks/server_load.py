"""Participant-server load: N bot participants playing CartPole at 30 fps against one server process.

    python benchmarks/server_load.py [--sizes 10,50,100,200,300] [--seconds 8]

The server (``mug deploy tests/e2e/studies.py:cartpole_realtime``) runs the
environment, draws CartPole as a two-object Surface and records every step
in SQLite. Each bot answers every frame with an action. For each N this
prints: frames/s per client, inter-frame gap p50/p99 (client side),
input-to-frame latency p50/p99 (act sent -> the next frame), and the server
process's CPU share and memory per session. Target: N=300 at 30 fps with
p99 gap < 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.websocket import websocket_connect

from mug.server.simulate import join
from mug.session.messages import encode_envelope
from tests.servers import ServerProcess


def _header(raw: bytes) -> dict:
    (length,) = struct.unpack("<I", raw[4:8])
    return json.loads(raw[8 : 8 + length])["message"]


class LoadBot:
    def __init__(self, url: str, pid: str) -> None:
        self.url, self.pid = url, pid
        self.arrivals: list[float] = []
        self.latencies: list[float] = []
        self.sent_at: float | None = None
        self.measuring = False

    async def run(self, stop: asyncio.Event) -> None:
        cookie = await join(self.url, self.pid)
        ws = await websocket_connect(
            HTTPRequest(self.url.replace("http://", "ws://") + f"ws?participant={self.pid}", headers={"Cookie": cookie})
        )
        await ws.write_message(encode_envelope({"type": "ready"}), binary=True)
        keys = (["ArrowLeft"], ["ArrowRight"])
        while not stop.is_set():
            raw = await ws.read_message()
            if raw is None:
                return
            now = time.perf_counter()
            message = _header(raw)
            if message["type"] != "frame":
                continue
            if self.measuring:
                self.arrivals.append(now)
                if self.sent_at is not None:
                    self.latencies.append(now - self.sent_at)
            self.sent_at = time.perf_counter()
            act = {"type": "act", "step": message["step"], "keys": keys[message["step"] % 2], "policies": {}}
            await ws.write_message(encode_envelope(act), binary=True)
        ws.close()


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


async def measure(n: int, seconds: float, warmup: float) -> dict:
    AsyncHTTPClient.configure(None, max_clients=max(10, n))
    with tempfile.TemporaryDirectory() as tmp:
        server = ServerProcess(["deploy", "tests/e2e/studies.py:cartpole_realtime"], Path(tmp) / "data").start()
        try:
            pid = server.proc.pid
            _, rss_idle = _proc_stats(pid)
            stop = asyncio.Event()
            bots = [LoadBot(server.url, f"load{i}") for i in range(n)]
            tasks = []
            for b in bots:  # arrivals spread over a moment, as real participants' are
                tasks.append(asyncio.create_task(b.run(stop)))
                await asyncio.sleep(0.01)
            while sum(1 for b in bots if b.sent_at is not None) < n:  # everyone is playing
                await asyncio.sleep(0.1)
                failed = [t for t in tasks if t.done() and t.exception()]
                if failed:
                    raise failed[0].exception()
            await asyncio.sleep(warmup)
            cpu0, _ = _proc_stats(pid)
            t0 = time.perf_counter()
            for b in bots:
                b.measuring = True
            await asyncio.sleep(seconds)
            for b in bots:
                b.measuring = False
            cpu1, rss = _proc_stats(pid)
            elapsed = time.perf_counter() - t0
            stop.set()
            await asyncio.wait(tasks, timeout=5)
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
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10,50,100,200,300")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    args = parser.parse_args()
    print("CartPole-v1 as a 2-object Surface at 30 fps, one server process, bots on the same machine (2 cores)")
    print(
        f"{'N':>5} {'frames/s/client':>16} {'gap p50 ms':>11} {'gap p99 ms':>11} {'input->frame p50':>17} {'p99 ms':>8} {'server CPU %':>13} {'KiB/session':>12}"
    )
    for n in (int(x) for x in args.sizes.split(",")):
        r = asyncio.run(measure(n, args.seconds, args.warmup))
        print(
            f"{r['n']:>5} {r['fps']:>16.1f} {r['gap50']:>11.1f} {r['gap99']:>11.1f} {r['lat50']:>17.1f} {r['lat99']:>8.1f} {r['cpu']:>13.0f} {r['mem']:>12.0f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
