"""Participant-server load: N simulated participants playing CartPole at 30 fps against one server process.

    python benchmarks/server_load.py [--sizes 10,50,100,200,300] [--seconds 8] [--pin SERVER_CPU,BOTS_CPU]
                                     [--players human|server-ai]

The server (``mug deploy tests/e2e/studies.py:cartpole_realtime``) runs the
environment, draws CartPole as a two-object Surface and records every step
in SQLite. The participants are ``mug.simulate``'s bots (the participant
page's own code, all N in one Node process): each answers every frame with
an act holding its key. For each N this prints: frames/s per client,
inter-frame gap p50/p99 (client side), input-to-frame latency p50/p99 (act
sent -> the next frame), the server process's CPU share, the share of the
window it waited for its CPU (taken by other programs), its memory per
session, and the bots' CPU share. ``--pin 0,1`` puts the server on CPU 0 and
the bots on CPU 1 (``taskset``), so that neither steals the other's core;
without it both share every core. Target: N=300 at 30 fps with p99 gap < 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.load_common import parse_pin, play_and_measure, start_server
from mug.server.simulate import SimulatedParticipant

#: ``--players``: who plays each participant's CartPole (the bots send their keys either way).
STUDIES = {
    "human": ("tests/e2e/studies.py:cartpole_realtime", "a human (the bot's keys)"),
    "server-ai": ("tests/e2e/studies.py:cartpole_server_ai", "the CartPole LSTM, run by the server (inference='auto')"),
}


async def measure(n: int, seconds: float, warmup: float, pin: tuple[int, int] | None, players: str = "human") -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        study = ["deploy", STUDIES[players][0], "--participants-per-address", "0"]  # all bots: one address
        server = start_server(study, Path(tmp) / "data", pin)
        try:
            bots = [  # arrivals spread over a moment, as real participants' are
                SimulatedParticipant(server.url, f"load{i}", keys=["ArrowRight", "ArrowLeft"], arrive_after_s=0.01 * i)
                for i in range(n)
            ]
            _, r = await play_and_measure(server, bots, settle=0.01 * n + warmup, seconds=seconds, pin=pin)
        finally:
            server.stop()
    return {"n": n, **r, "mem": r["rss"] / n / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10,50,100,200,300")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--pin", default=None, metavar="SERVER_CPU,BOTS_CPU", help="pin server and bots to these CPUs")
    parser.add_argument("--players", choices=sorted(STUDIES), default="human", help="who plays CartPole (default: human)")
    args = parser.parse_args()
    pin = parse_pin(args.pin)
    where = f"server on CPU {pin[0]}, bots on CPU {pin[1]}" if pin else f"server and bots sharing {os.cpu_count()} cores"
    print(
        f"CartPole-v1 as a 2-object Surface at 30 fps played by {STUDIES[args.players][1]}, one server process, "
        f"bots on the same machine ({where})"
    )
    print(
        f"{'N':>5} {'frames/s/client':>16} {'gap p50 ms':>11} {'gap p99 ms':>11} {'input->frame p50':>17} {'p99 ms':>8}"
        f" {'server CPU %':>13} {'waited for CPU %':>17} {'KiB/session':>12} {'bots CPU %':>11}  target (30 fps, p99 gap < 50 ms)"
    )
    for n in (int(x) for x in args.sizes.split(",")):
        r = asyncio.run(measure(n, args.seconds, args.warmup, pin, args.players))
        verdict = "ok" if r["fps"] >= 29.7 and r["gap99"] < 50 else "MISSED"
        print(
            f"{r['n']:>5} {r['fps']:>16.1f} {r['gap50']:>11.1f} {r['gap99']:>11.1f} {r['lat50']:>17.1f} {r['lat99']:>8.1f}"
            f" {r['cpu']:>13.0f} {r['cpu_wait']:>17.0f} {r['mem']:>12.0f} {r['bots_cpu']:>11.0f}  {verdict}",
            flush=True,
        )


if __name__ == "__main__":
    main()
