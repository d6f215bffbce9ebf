"""Admin CSV download of a big steps table while honest participants play: server memory and their frame rate.

    python benchmarks/admin_export.py [--mb 500] [--players 10] [--no-gzip]

Fills a data directory with a steps table of ``--mb`` megabytes (steps of two
agents with a small recurrent state recorded), starts the CartPole study of
``benchmarks/server_load.py`` on it, lets ``--players`` bots play at 30 fps,
then downloads ``/admin/steps.csv`` (as a browser does: gzip accepted, unless
``--no-gzip``). Prints, side by side: the download's size and rate, the server's
peak resident-memory growth during it (target < 50 MB), and the players'
frames/s and inter-frame gap p99 before and during the download (target 30
fps), and the growth counting the download's child process too. The server
(and so its export child) is pinned to core 0, bots and the downloading client
to core 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from benchmarks.server_load import LoadBot, _pct, _proc_stats
from mug.server.simulate import join
from mug.server.store import Store
from tests.servers import ServerProcess

STATE = [round(0.01 * i, 6) for i in range(32)]


def _tree_rss(pid: int) -> int:
    """Resident bytes of a process and its children (the admin download's child process)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    total = _proc_stats(pid)[1]
    for child in children:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            total += _proc_stats(int(child))[1]
    return total


def fill(data_dir: Path, megabytes: int) -> tuple[int, int]:
    """Write steps until the database file holds ``megabytes``; returns (rows, bytes)."""
    store = Store(data_dir)
    store.save_participant("recorded", {"index": 0, "order": ["cartpole"]}, "cartpole", True)
    rows, target = 0, megabytes * 1_000_000
    while (data_dir / "mug.sqlite").stat().st_size + (data_dir / "mug.sqlite-wal").stat().st_size < target:
        for _ in range(20_000):
            store.add_step(
                "recorded",
                {
                    "session_id": f"recorded-cartpole-{rows // 500}",
                    "scene_id": "cartpole",
                    "episode": rows // 500,
                    "step": rows % 500,
                    "decision": rows % 500,
                    "time": 1.7e9 + rows / 30,
                    "actions": {"agent_0": rows % 2, "agent_1": 1},
                    "sources": {"agent_0": "human", "agent_1": "policy"},
                    "rewards": {"agent_0": 1.0, "agent_1": 1.0},
                    "terminated": {"agent_0": False, "agent_1": False},
                    "truncated": {"agent_0": False, "agent_1": False},
                    "infos": {"agent_0": {}, "agent_1": {}},
                    "policy_outputs": {"agent_1": {"logits": [0.25, -0.5], "states": {"h": [STATE], "c": [STATE]}}},
                },
            )
            rows += 1
        store.commit()
    store.close()
    return rows, (data_dir / "mug.sqlite").stat().st_size


async def measure(data_dir: Path, players: int, gzip: bool, settle: float) -> dict:
    AsyncHTTPClient.configure(None, max_clients=max(10, players + 2), max_body_size=1 << 40)  # the CSV is big
    server = ServerProcess(["deploy", "tests/e2e/studies.py:cartpole_realtime"], data_dir).start()
    try:
        pid = server.proc.pid
        os.sched_setaffinity(pid, {0})
        os.sched_setaffinity(0, {1})
        loop = asyncio.get_running_loop()
        host, port = urlparse(server.url).hostname, urlparse(server.url).port
        bots = []
        for i in range(players):
            cookie = await join(server.url, f"player{i}")
            bot = LoadBot(server.url, f"player{i}", cookie)
            await loop.create_connection(lambda bot=bot: bot, host, port)
            bots.append(bot)
        while sum(1 for b in bots if b.sent_at is not None) < players:
            await asyncio.sleep(0.1)
        await asyncio.sleep(settle)

        def start_window() -> float:
            for b in bots:
                b.arrivals.clear()
                b.measuring = True
            return time.perf_counter()

        t0 = start_window()
        await asyncio.sleep(settle)
        before = _fps(bots, time.perf_counter() - t0)
        _, rss0 = _proc_stats(pid)
        peak = peak_tree = rss0
        received = 0

        def on_chunk(chunk: bytes) -> None:
            nonlocal received
            received += len(chunk)

        request = HTTPRequest(
            server.url + "admin/steps.csv",
            headers={"X-MUG-Admin-Token": server.admin_token, "Accept-Encoding": "gzip" if gzip else "identity"},
            decompress_response=False,
            streaming_callback=on_chunk,
            request_timeout=3600,
        )
        t0 = start_window()
        download = asyncio.ensure_future(AsyncHTTPClient().fetch(request))
        while not download.done():
            peak, peak_tree = max(peak, _proc_stats(pid)[1]), max(peak_tree, _tree_rss(pid))
            await asyncio.sleep(0.05)
        await download
        elapsed = time.perf_counter() - t0
        during = _fps(bots, elapsed)
        for b in bots:
            b.transport.close()
    finally:
        server.stop()
    return {
        "before": before,
        "during": during,
        "seconds": elapsed,
        "bytes": received,
        "rss": (peak - rss0) / 1e6,
        "tree": (peak_tree - rss0) / 1e6,
    }


def _fps(bots: list[LoadBot], elapsed: float) -> tuple[float, float]:
    gaps = [b - a for bot in bots for a, b in zip(bot.arrivals, bot.arrivals[1:])]
    return statistics.mean(len(b.arrivals) / elapsed for b in bots), _pct(gaps, 0.99) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=int, default=500, help="size of the steps table (MB of database)")
    parser.add_argument("--players", type=int, default=10)
    parser.add_argument("--no-gzip", action="store_true", help="download without gzip")
    parser.add_argument("--settle", type=float, default=3.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        t0 = time.perf_counter()
        rows, size = fill(data, args.mb)
        print(f"steps table: {rows} rows, database {size / 1e6:.0f} MB (written in {time.perf_counter() - t0:.0f} s)")
        r = asyncio.run(measure(data, args.players, not args.no_gzip, args.settle))
    fps0, gap0 = r["before"]
    fps1, gap1 = r["during"]
    print(
        f"{'download':>9} {'MB sent':>8} {'s':>6} {'rows/s':>7} {'server peak RSS growth MB':>26} {'with the export child MB':>25} "
        f"{'fps before':>11} {'fps during':>11} {'gap p99 before ms':>18} {'gap p99 during ms':>18}  target (< 50 MB, 30 fps)"
    )
    verdict = "ok" if r["rss"] < 50 and fps1 >= 29.5 else "MISSED"
    print(
        f"{'gzip' if not args.no_gzip else 'plain':>9} {r['bytes'] / 1e6:>8.1f} {r['seconds']:>6.1f} {rows / r['seconds']:>7.0f}"
        f" {r['rss']:>26.1f} {r['tree']:>25.1f} {fps0:>11.1f} {fps1:>11.1f} {gap0:>18.1f} {gap1:>18.1f}  {verdict}"
    )


if __name__ == "__main__":
    main()
