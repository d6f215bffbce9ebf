"""Match load: M matches of two simulated participants each, playing a two-human realtime scene at 30 fps.

    python benchmarks/match_load.py [--matches 25,50,100,150] [--seconds 8] [--pin SERVER_CPU,BOTS_CPU]
                                    [--candidates 1000]

The server (``mug deploy benchmarks/match_load.py:study``) runs one CoinGrid per match (two ``mug.Human``
agents, drawn as a Surface, every step recorded once per match in SQLite); the participants are
``mug.simulate``'s bots (the participant page's own code, all 2M in one Node process), arriving 10 ms apart,
matched first-come first-served by the waitroom, each pressing a key every frame. For each M this prints:
frames/s per client, inter-frame gap p50/p99 (client side), input->frame latency p50/p99 (act sent -> the
next frame), the server process's CPU share, the share of the window it waited for its CPU (taken by other
programs: on a shared machine a low frame rate with a high figure there is the machine's, not the server's),
its memory per match, and the bots' CPU share.
``--pin 0,1`` puts the server on CPU 0 and the bots on CPU 1 (``taskset``). Then the waitroom's matching
cost with ``--candidates`` participants waiting, measured on the matchmaker API directly
(``mug.server.matches``): the default matchmaker and a researcher's callable that sorts by RTT.

Target: >= 100 matches (200 participants) at 30 fps with p99 gap < 50 ms on one core. For comparison, the
system MUG replaces, measured the same way on this machine in its server-authoritative mode with one human
per game, delivered 17 fps at 50 participants and 9.7 fps at 100.
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import mug
from mug.examples import CoinGrid
from mug.server.matches.matchmaker import choose_group

KEYS = {"ArrowUp": 1, "ArrowDown": 2, "ArrowLeft": 3, "ArrowRight": 4}
#: The study the server deploys (``mug deploy benchmarks/match_load.py:study``).
study = mug.Stager(
    [
        mug.GymScene("duo")
        .environment(CoinGrid, {"max_steps": 300, "coins": 5}, seed=3)
        .policies({"agent_0": mug.Human, "agent_1": mug.Human})
        .gameplay(action_mapping=KEYS, input_mode="single_keystroke", mode="realtime", num_episodes=1000)
        .rendering(mode="surface", draw=lambda env, s: env.draw(s), width=160, height=160, fps=30)
        .waitroom(timeout_s=120, on_timeout="end"),
        mug.EndScene("end", completion_code="LOAD"),
    ]
)


async def measure(m: int, seconds: float, warmup: float, pin: tuple[int, int] | None) -> dict[str, Any]:
    from benchmarks.load_common import play_and_measure, start_server
    from mug.server.simulate import SimulatedParticipant

    with tempfile.TemporaryDirectory() as tmp:
        args = ["deploy", f"{Path(__file__).resolve()}:study", "--participants-per-address", "0"]
        server = start_server(args, Path(tmp) / "data", pin)
        try:
            bots = [
                SimulatedParticipant(server.url, f"m{i:04d}", keys=["ArrowRight", "ArrowLeft"], arrive_after_s=0.01 * i)
                for i in range(2 * m)
            ]
            stats, r = await play_and_measure(server, bots, settle=0.02 * m + warmup, seconds=seconds, pin=pin)
        finally:
            server.stop()
    unmatched = [s.participant_id for s in stats if not s.matches]
    if unmatched:
        raise RuntimeError(f"{len(unmatched)} participants were never matched, e.g. {unmatched[:3]}")
    return {"m": m, **r, "mem": r["rss"] / m / 1024}


def _by_rtt(candidates: list[Any], seats: int) -> list[str] | None:
    """A researcher's matchmaker: the ``seats`` waiting longest among those with the lowest measured RTT."""
    known = sorted((c for c in candidates if c.rtt_ms is not None), key=lambda c: (c.rtt_ms, -c.waited_s))
    return [c.participant_id for c in known[:seats]] if len(known) >= seats else None


def matching_cost(n: int, repeats: int = 50) -> list[tuple[str, float, float]]:
    """(matchmaker, ms for one call with ``n`` waiting, ms per group to match all ``n`` two by two)."""
    candidates = [
        mug.Candidate(
            participant_id=f"c{i:05d}",
            waited_s=float(n - i) * 0.1,
            rtt_ms=20.0 + (i * 37) % 180,
            params={"PROLIFIC_PID": f"c{i:05d}"},
            answers={},
            partners=set(),
        )
        for i in range(n)
    ]
    out = []
    for name, custom in (("default (FIFO)", None), ("by RTT (callable)", _by_rtt)):

        def matchmaker(waiting: list[Any], seats: int, custom: Any = custom) -> list[str] | None:
            return choose_group(waiting, seats, custom, "bench")[0]

        t0 = time.perf_counter()
        for _ in range(repeats):
            group = matchmaker(list(candidates), 2)
        one = (time.perf_counter() - t0) / repeats * 1e3
        if not group or len(group) != 2:
            raise RuntimeError(f"the {name} matchmaker formed no group of 2 from {n} candidates: {group!r}")
        waiting = list(candidates)
        t0 = time.perf_counter()
        groups = 0
        while len(waiting) >= 2:
            group = matchmaker(waiting, 2)
            if not group:
                break
            taken = set(group)
            waiting = [c for c in waiting if c.participant_id not in taken]
            groups += 1
        out.append((name, one, (time.perf_counter() - t0) / max(groups, 1) * 1e3))
    return out


def main() -> None:
    from benchmarks.load_common import parse_pin

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--matches", default="25,50,100,150")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--pin", default=None, metavar="SERVER_CPU,BOTS_CPU", help="pin server and bots to these CPUs")
    parser.add_argument("--candidates", type=int, default=1000, help="waiting candidates for the matching cost")
    args = parser.parse_args()
    pin = parse_pin(args.pin)
    where = f"server on CPU {pin[0]}, bots on CPU {pin[1]}" if pin else f"server and bots sharing {os.cpu_count()} cores"
    print(f"CoinGrid, two humans a match, realtime at 30 fps, one server process, simulated participants ({where})")
    print(
        f"{'M':>5} {'people':>6} {'frames/s/client':>16} {'gap p50 ms':>11} {'gap p99 ms':>11} {'input->frame p50':>17}"
        f" {'p99 ms':>8} {'server CPU %':>13} {'waited for CPU %':>17} {'KiB/match':>10} {'bots CPU %':>11}  target (30 fps, p99 gap < 50 ms)"
    )
    for m in (int(x) for x in args.matches.split(",")):
        r = asyncio.run(measure(m, args.seconds, args.warmup, pin))
        verdict = "ok" if r["fps"] >= 29.7 and r["gap99"] < 50 else "MISSED"
        print(
            f"{m:>5} {2 * m:>6} {r['fps']:>16.1f} {r['gap50']:>11.1f} {r['gap99']:>11.1f} {r['lat50']:>17.1f}"
            f" {r['lat99']:>8.1f} {r['cpu']:>13.0f} {r['cpu_wait']:>17.0f} {r['mem']:>10.0f} {r['bots_cpu']:>11.0f}  {verdict}",
            flush=True,
        )
    print("system replaced (server-authoritative, one human a game, same machine): 17 fps at 50 participants, 9.7 at 100")
    print(f"\nwaitroom matching cost with {args.candidates} candidates waiting (groups of 2):")
    print(f"{'matchmaker':>20} {'one call ms':>12} {'per group, all matched ms':>26}")
    for name, one, per_group in matching_cost(args.candidates):
        print(f"{name:>20} {one:>12.3f} {per_group:>26.3f}")
    print("(the matchmakers called in this process on the same Candidate objects the waitroom hands them)")


if __name__ == "__main__":
    main()
