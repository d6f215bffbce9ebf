"""Browser-side environments (Pyodide): start-up, stepping speed, engine overhead, snapshots, server load.

    python benchmarks/browser_env.py [--steps 3000] [--sizes 100,300,1000] [--seconds 8] [--pin 0,1] [--no-server]

Prints, side by side in one run, for the pure-Python demo env
(:class:`mug.examples.browser_grid.PyCoinGrid`, surface rendering):

1. Pyodide cold start to the first frame, **under Node** (``pyodide-run.mjs``: load Pyodide from
   ``mug/static/pyodide/``, unpack the bundles, build ``BrowserGame``, first ``frame`` posted);
   a browser adds fetching the files from the server and the worker start.
2. Env steps/s in Pyodide vs CPython (the bare env loop; ratio).
3. mug's engine overhead in Pyodide: time per step of ``BrowserGame`` (one ``BrowserGame.step`` call per
   tick, as the worker makes: act message in and checked, keys to actions, random partner's draw, env step,
   the scene's ``draw``, Surface frame message, HUD, step record with observation hash, ``steps`` batch)
   over a bare game loop without mug's engine (draw the actions, step, draw the frame with the same
   ``draw``; target <= 1.3). The ratio over ``env.step`` alone is printed too. Neither side includes the
   JSON that carries messages between Python and JavaScript in the worker; the engine's messages are dropped once
   posted, as the worker drops them once JavaScript has them. Engine, game loop and env loop
   (2.'s figures too) run in turn in one interpreter, each the fastest of 5 runs
   (:func:`mug.browser.run.overhead_timing`).
4. Env snapshot + restore time per frame in Pyodide, and how many frames could be re-simulated
   (restore once, then step) within one 33 ms frame: the rollback budget.
5. Server CPU per session at 30 fps: browser-side sessions (simulated pages sending ``steps`` batches
   every ``--batch-ms`` (default 500 ms: 15 records, as the page's ``StepUploader`` does), acked after commit, each episode verified by re-simulation) vs
   server-side sessions of the same scene (the server steps, draws and sends 30 frames/s; the bots
   answer each frame); and how many browser-side sessions one server core records at 30 fps
   (target >= 1,000). Verification runs in the server's low-priority child process; the CPU verifying
   every episode takes (the re-simulations' time per step, from the ``verification`` events, times the steps
   recorded: the child may fall behind, so this is what it needs, not what it got) is shown beside the
   server's. A count "kept up" when every page's acks did (none more than two batches behind at the end);
   a line below each browser-side count gives the ack latency (batch sent to its ``steps_ack``, p50 and p99),
   how long the server waited for its CPU (time other programs took from its core) and the load client's CPU.
   ``--pin 0,1`` puts the server on CPU 0 and the clients on CPU 1 (as ``taskset`` would).

``--no-server`` prints 1.-4. only (about half a minute).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

import mug  # noqa: E402
from mug.examples.browser_grid import PyCoinGrid, draw  # noqa: E402

FPS = 30
#: Groups of simulated pages that send their steps at different moments of each ``--batch-ms`` period.
PHASES = 25
KEYS = {"ArrowUp": 1, "ArrowDown": 2, "ArrowLeft": 3, "ArrowRight": 4}


def grid_scene(environment: str) -> mug.GymScene:
    """The demo scene: PyCoinGrid with a human and a random partner, 200 steps per episode."""
    return (
        mug.GymScene("grid")
        .environment(PyCoinGrid, {"size": 7, "coins": 10, "max_steps": 200}, seed=1)
        .policies({"agent_0": mug.Human, "agent_1": mug.Random})
        .gameplay(action_mapping=KEYS, num_episodes=1000)
        .rendering(mode="surface", draw=draw, fps=FPS, width=280, height=280)
        .runtime(environment=environment)
    )


# the studies the server process deploys (``mug deploy benchmarks/browser_env.py:<name>``)
browser_study = mug.Stager([grid_scene("browser"), mug.EndScene("end")])
server_study = mug.Stager([grid_scene("server"), mug.EndScene("end")])


def in_pyodide_and_cpython(steps: int) -> dict[str, float]:
    from mug.browser.check import run_in_pyodide
    from mug.browser.run import env_trace, overhead_timing

    scene = grid_scene("browser")
    spec = {**scene.browser_spec(), "session_id": "bench"}
    first = run_in_pyodide(scene, "mug.browser.run:game_trace", {"spec": spec, "ticks": 0})
    env_args = {"spec": spec, "steps": steps, "seed": 3}
    # engine, game loop and env loop in turn in one interpreter, the fastest of 5 runs each: a ratio of
    # runs in different processes, minutes apart, on a shared machine says more about the machine
    timing_args = {"spec": spec, "steps": steps, "seed": 3, "repeat": 5}
    here_env, here = env_trace(env_args), overhead_timing(timing_args)
    there_env = run_in_pyodide(scene, "mug.browser.run:env_trace", env_args)["result"]
    there = run_in_pyodide(scene, "mug.browser.run:overhead_timing", timing_args)["result"]
    return {
        "cold_start_s": first["load_s"] + first["call_s"],
        "cpython_env_us": here["env_s"] * 1e6,
        "pyodide_env_us": there["env_s"] * 1e6,
        "cpython_frame_us": here["game_loop_s"] * 1e6,
        "pyodide_frame_us": there["game_loop_s"] * 1e6,
        "cpython_engine_us": here["engine_s"] * 1e6,
        "pyodide_engine_us": there["engine_s"] * 1e6,
        "pyodide_snapshot_us": there_env["snapshot_restore_s"] * 1e6,
        "cpython_snapshot_us": here_env["snapshot_restore_s"] * 1e6,
    }


def recorded_batches(batch: int) -> list[list[dict]]:
    """A long browser-recorded session (in CPython), cut into ``steps`` batches of ``batch`` records."""
    from mug.browser.run import game_trace

    spec = {**browser_study.scenes["grid"].browser_spec(), "session_id": "x"}
    records = game_trace({"spec": spec, "ticks": 4000, "seed": 1})["records"]
    now = time.time()
    for r in records:
        r["time"] = now
    return [records[i : i + batch] for i in range(0, len(records), batch)]


async def server_cpu(kind: str, n: int, seconds: float, pin: tuple[int, int] | None, batch_s: float = 0.5) -> dict[str, Any]:
    """Server CPU % with ``n`` sessions of ``kind`` ("browser" or "server") at 30 fps."""
    from load_common import pct, proc_stats, run_queue_wait
    from tornado.httpclient import AsyncHTTPClient
    from websockets.client import ClientProtocol
    from websockets.frames import Frame, Opcode
    from websockets.http11 import Response
    from websockets.uri import parse_uri

    from mug.server.simulate import join
    from mug.server.store import Store
    from mug.session.messages import decode_envelope, encode_envelope
    from tests.servers import ServerProcess

    size = round(FPS * batch_s)  # records per steps message
    batches = recorded_batches(size) if kind == "browser" else []

    class LoadPage(asyncio.BufferedProtocol):
        """A light load client on the ``websockets`` Sans-I/O protocol (cheap enough for 1,000 in one process).
        Browser-side: it sends the recorded steps at 30 per second in batches and counts acks; server-side:
        it answers each frame with an act, as a participant's page would."""

        def __init__(self, url: str, pid: str, cookie: str) -> None:
            self.ws = ClientProtocol(parse_uri(url.replace("http://", "ws://") + f"ws?participant={pid}"))
            request = self.ws.connect()
            request.headers["Cookie"] = cookie
            self.ws.send_request(request)
            self.transport: asyncio.Transport | None = None
            self.buffer = memoryview(bytearray(1 << 16))
            self.session_id: str | None = None
            self.started = False
            self.acked, self.sent, self.frames = -1, 0, 0
            self.unacked: list[tuple[int, float]] = []  # (last seq, when sent) of each batch not acked yet
            self.ack_latencies: list[tuple[float, float]] = []  # (when acked, seconds from send to ack)

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport  # type: ignore[assignment]
            self._flush()

        def get_buffer(self, sizehint: int) -> memoryview:
            return self.buffer

        def buffer_updated(self, nbytes: int) -> None:
            self.ws.receive_data(bytes(self.buffer[:nbytes]))
            for event in self.ws.events_received():
                if isinstance(event, Response):
                    self.ws.send_binary(encode_envelope({"type": "ready"}))
                elif isinstance(event, Frame) and event.opcode is Opcode.BINARY:
                    self._on_message(decode_envelope(event.data)[0])
            self._flush()

        def _on_message(self, message: dict) -> None:
            if message["type"] == "scene" and "environment" in message["scene"]:
                self.session_id = message["scene"]["environment"]["spec"]["session_id"]
                self.started = True
            elif message["type"] == "steps_ack":
                self.acked = message["seq"]
                now = time.perf_counter()
                done = 0
                for last, sent_at in self.unacked:
                    if last > self.acked:
                        break
                    self.ack_latencies.append((now, now - sent_at))
                    done += 1
                del self.unacked[:done]
            elif message["type"] == "frame":
                self.started = True
                self.frames += 1
                keys = ["ArrowLeft"] if message["step"] % 2 else ["ArrowRight"]
                act = {"type": "act", "step": message["step"], "episode": message["episode"], "keys": keys, "policies": {}}
                self.ws.send_binary(encode_envelope(act))

        def send_due(self, due: int) -> None:
            """Send the batches due by now (a late wake-up catches up: 30 steps/s on average)."""
            while self.session_id is not None and self.sent < min(due, len(batches)):
                records = batches[self.sent]
                self.sent += 1
                self.unacked.append((records[-1]["seq"], time.perf_counter()))
                self.ws.send_binary(
                    encode_envelope({"type": "steps", "session_id": self.session_id, "scene_id": "grid", "records": records})
                )
            self._flush()

        def _flush(self) -> None:
            for data in self.ws.data_to_send():
                if data and self.transport is not None:
                    self.transport.write(data)

    AsyncHTTPClient.configure(None, max_clients=max(10, n))
    with tempfile.TemporaryDirectory() as tmp:
        if pin is not None:
            os.sched_setaffinity(0, {pin[0]})
        target = f"benchmarks/browser_env.py:{kind}_study"
        server = ServerProcess(["deploy", target, "--participants-per-address", "0"], Path(tmp) / "data").start(timeout=120)
        if pin is not None:
            os.sched_setaffinity(0, {pin[1]})
        try:
            pid = server.proc.pid
            loop = asyncio.get_running_loop()
            host, port = urlparse(server.url).hostname, urlparse(server.url).port
            bots = []
            for i in range(n):
                cookie = await join(server.url, f"b{i}")
                bot = LoadPage(server.url, f"b{i}", cookie)
                await loop.create_connection(lambda bot=bot: bot, host, port)
                bots.append(bot)
            while sum(1 for b in bots if b.started) < n:
                await asyncio.sleep(0.1)

            async def pace() -> None:
                """A batch of FPS * batch_s records every batch_s seconds per page (30 steps/s), the pages in
                ``PHASES`` groups a fraction of batch_s apart: real pages' upload timers start whenever their
                participants did, not all at the same instant (which would make every ack wait for all n)."""
                start, turn = time.perf_counter(), 0
                while True:
                    for b in bots[turn % PHASES :: PHASES]:
                        b.send_due(turn // PHASES + 1)
                    turn += 1
                    await asyncio.sleep(max(0.0, start + turn * batch_s / PHASES - time.perf_counter()))

            pacer = loop.create_task(pace()) if kind == "browser" else None
            await asyncio.sleep(2.0)
            cpu0, t0 = proc_stats(pid)[0], time.perf_counter()
            waited0, client0 = run_queue_wait(pid), time.process_time()
            sent0 = sum(b.sent for b in bots)
            frames0 = sum(b.frames for b in bots)
            await asyncio.sleep(seconds)
            cpu1, elapsed = proc_stats(pid)[0], time.perf_counter() - t0
            steps_per_s = (
                (sum(b.sent for b in bots) - sent0) * size / elapsed / n
                if kind == "browser"
                else (sum(b.frames for b in bots) - frames0) / elapsed / n
            )
            waited, client_cpu = run_queue_wait(pid) - waited0, time.process_time() - client0
            latencies = [x for b in bots for t, x in b.ack_latencies if t >= t0]
            behind = sum(1 for b in bots if kind == "browser" and b.acked < (b.sent - 1) * size - 30)
            if pacer is not None:
                pacer.cancel()
            for b in bots:
                b.transport.close()
            store = Store(Path(tmp) / "data", readonly=True)
            verified = [e["data"] for e in store.iter_events("verification")]
            skipped = sum(1 for _ in store.iter_events("verification_skipped"))
            store.close()
        finally:
            server.stop()
    cpu = (cpu1 - cpu0) / elapsed * 100
    # what verifying every episode of n sessions takes: the re-simulations' time per step (all done in the run)
    # times the steps recorded; the child may fall behind (it runs at low priority), so not the time it got.
    # None: no verification finished within the run (nothing to measure it by)
    verify: float | None = 0.0
    if kind == "browser":
        checked = sum(v["checked"] for v in verified)
        verify = sum(v["seconds"] for v in verified) / checked * steps_per_s * n * 100 if checked else None
    return {
        "n": n,
        "cpu": cpu,
        "verify": verify,
        "verified": len(verified),
        "skipped": skipped,
        "steps_per_s": steps_per_s,
        "behind": behind,
        "ack_p50": pct(latencies, 0.5),
        "ack_p99": pct(latencies, 0.99),
        "waited": waited / elapsed * 100,
        "client_cpu": client_cpu / elapsed * 100,
        "load": os.getloadavg()[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--sizes", default="100,300,1000", help="browser-side session counts")
    parser.add_argument("--server-sizes", default="50,100", help="server-side session counts")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--pin", default=None, metavar="SERVER_CPU,CLIENTS_CPU")
    parser.add_argument(
        "--batch-ms", type=int, default=500, help="how often a page sends its steps (default: 500 ms, the page's SEND_EVERY_MS)"
    )
    parser.add_argument("--no-server", action="store_true", help="print sections 1-4 only (no server CPU runs)")
    args = parser.parse_args()
    pin = tuple(int(x) for x in args.pin.split(",")) if args.pin else None

    r = in_pyodide_and_cpython(args.steps)
    print(f"PyCoinGrid 7x7, 10 coins, two agents, surface frames; {args.steps} seeded steps")
    print(f"{'':44} {'Pyodide (Node)':>15} {'CPython':>10} {'ratio':>7}  target")
    print(f"{'cold start to first frame, s (Node, local)':44} {r['cold_start_s']:>15.2f} {'':>10} {'':>7}")
    print(
        f"{'env steps/s (bare loop)':44} {1e6 / r['pyodide_env_us']:>15.0f} {1e6 / r['cpython_env_us']:>10.0f}"
        f" {r['cpython_env_us'] / r['pyodide_env_us']:>7.2f}"
    )
    print(f"{'bare game loop (step + draw), us':44} {r['pyodide_frame_us']:>15.1f} {r['cpython_frame_us']:>10.1f}")
    print(
        f"{'engine step, us (BrowserGame)':44} {r['pyodide_engine_us']:>15.1f} {r['cpython_engine_us']:>10.1f}"
        f" {'':>7}  overhead in Pyodide x{r['pyodide_engine_us'] / r['pyodide_frame_us']:.2f} over the game loop"
        f" (target <= 1.3), x{r['pyodide_engine_us'] / r['pyodide_env_us']:.2f} over env.step alone"
    )
    budget = 33_000 - r["pyodide_snapshot_us"]
    print(
        f"{'snapshot + restore per frame, us':44} {r['pyodide_snapshot_us']:>15.1f} {r['cpython_snapshot_us']:>10.1f}"
        f" {'':>7}  frames re-simulable in 33 ms (Pyodide): {budget / r['pyodide_env_us']:.0f}"
    )
    if args.no_server:
        return
    where = f"server on CPU {pin[0]}, clients on CPU {pin[1]}" if pin else f"server and clients sharing {os.cpu_count()} cores"
    print(f"\nserver CPU at {FPS} fps ({where}; browser pages send their steps every {args.batch_ms} ms)")
    print(
        f"{'sessions':>9} {'where the env runs':>19} {'steps/s/session':>16} {'server CPU %':>13} {'+ verifying %':>14}"
        f" {'CPU % per session':>18} {'recording only':>15}"
    )
    per: dict[str, tuple[float | None, float]] = {}
    for kind, sizes in (("server", args.server_sizes), ("browser", args.sizes)):
        for n in (int(x) for x in sizes.split(",")):
            m = asyncio.run(server_cpu(kind, n, args.seconds, pin, args.batch_ms / 1000))
            verify = m["verify"]
            if not m["behind"]:  # the figures of the largest count the server kept up with
                per[kind] = (None if verify is None else (m["cpu"] + verify) / n, m["cpu"] / n)
            late = f"  ({m['behind']} pages behind on acks)" if m["behind"] else ""
            shown = (
                (f"{verify:>14.1f}", f"{(m['cpu'] + verify) / n:>18.3f}")
                if verify is not None
                else (f"{'n/a':>14}", f"{'n/a':>18}")
            )
            print(
                f"{n:>9} {kind:>19} {m['steps_per_s']:>16.1f} {m['cpu']:>13.1f} {shown[0]} {shown[1]} {m['cpu'] / n:>15.3f}{late}",
                flush=True,
            )
            if kind == "browser":
                print(
                    f"{'':>9} acks {m['ack_p50']:.2f} s after the batch (p50), {m['ack_p99']:.2f} s (p99); the server waited"
                    f" {m['waited']:.0f} % of the time for its CPU (other programs; load average {m['load']:.1f});"
                    f" load client {m['client_cpu']:.0f} % CPU; episodes verified {m['verified']}, left unverified"
                    f" (backlog bound) {m['skipped']}",
                    flush=True,
                )
    if "browser" in per and "server" in per:
        total, recording = per["browser"]
        if total is None:
            print(
                f"one core records ~{100 / recording:.0f} browser-side sessions at {FPS} fps (target >= 1,000); no "
                "episode's verification finished within the run, so its cost is not known (give it more --seconds)"
            )
        else:
            print(
                f"a browser-side session costs the server x{total / per['server'][0]:.2f} of a server-side one (verification "
                f"included); one core records ~{100 / recording:.0f} browser-side sessions at {FPS} fps, ~{100 / total:.0f} "
                "when it also verifies every episode (target >= 1,000; from the largest count whose acks kept up)"
            )


if __name__ == "__main__":
    main()
