"""Rollback netcode core on a simulated network: frame rate, rollbacks, re-simulation cost, input latency.

    python benchmarks/rollback.py [--seconds 20] [--peers 2] [--ai] [--delay 2] [--window 8]

Runs ``--peers`` :class:`mug.netcode.RollbackPeer` s at 30 fps on
:mod:`mug.netcode.simnet` for every RTT in 0/50/100/200 ms (half each way,
jitter +-10 % of the one-way latency, 5 % duplication, 5 % reordering) and
loss 0/5/15 % on the input channel (the control channel retransmits). The env
is ``PyCoinGrid`` (pure Python, as it runs in Pyodide) for two peers, else
``CoopGrid`` with one seat per peer; ``--ai`` adds a seat played by the
recurrent Overcooked LSTM through every peer's own ``PolicyRuntime``.

Columns: ``fps`` frames produced per simulated second (slowest peer),
``cpu us/f`` real CPU time of the whole run (all peers, the network and the
harness) per frame produced, ``rb/s`` rollbacks per simulated second per peer,
``depth p50/p99`` frames re-simulated per rollback, ``resim us/f`` real
re-simulation time per frame produced, ``max resim ms/tick`` the longest real
re-simulation time within one host tick of any peer (what must fit in the
33 ms of a frame at 30 fps, next to the frame's own step and rendering),
``stalls`` and ``held`` frames per peer (prediction window full / time
synchronisation), ``read->shown`` local input read -> first displayed on
the simulated clock (p50/p99 in ms and frames): by design the input delay
(``--delay`` frames) plus any frames lost to stalls and holds in between,
not a measured network latency (the other peers see the input one one-way
latency later, then roll back), ``desyncs`` unresolved at the end, ``same``
whether all peers' confirmed histories are identical frame by frame up to
the least confirmed frame, each from frame 0 without a gap, and every peer
confirmed within a second of the furthest one.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mug.examples.browser_grid import PyCoinGrid
from mug.netcode import EnvSimulation, RollbackPeer
from mug.netcode.records import percentile
from mug.netcode.simnet import Link, SimNet, held_inputs, run_peers

FPS = 30
RTTS_MS = (0, 50, 100, 200)
LOSSES = (0.0, 0.05, 0.15)


def _peers(args: argparse.Namespace) -> tuple[list[RollbackPeer], dict]:
    owners = {f"agent_{i}": f"p{i}" for i in range(args.peers)}
    options = {"input_delay": args.delay, "max_prediction": args.window, "fps": FPS}
    if args.peers == 2 and not args.ai:

        def make():
            return PyCoinGrid(max_steps=200)

        ai_seats: list[str] = []
    else:
        from tests.netcode.helpers import PlainCoopGrid

        agents = args.peers + (1 if args.ai else 0)
        ai_seats = [f"agent_{args.peers}"] if args.ai else []

        def make():
            return PlainCoopGrid(agents=agents, size=6, coins=8, max_steps=200)

    peers = [RollbackPeer(EnvSimulation(make, 1), pid, owners, ai_seats, **options) for pid in owners.values()]
    drivers = {}
    if args.ai:
        from tests.netcode.helpers import lstm_drivers

        drivers = lstm_drivers(peers)
    return peers, drivers


def _same(histories: dict) -> bool:
    lists = [[r.to_dict() for r in h] for h in histories.values()]
    if any([r["frame"] for r in h] != list(range(len(h))) for h in lists):
        return False
    n = min(len(h) for h in lists)
    if max(len(h) for h in lists) - n > FPS:  # a peer that stopped early
        return False
    return all(h[:n] == lists[0][:n] for h in lists)


def run(args: argparse.Namespace, rtt_ms: int, loss: float) -> dict:
    """One cell of the table."""
    peers, drivers = _peers(args)
    one_way = rtt_ms / 2000
    link = Link(latency_s=one_way, jitter_s=one_way / 10, loss=loss, duplicate=0.05, reorder=0.05)
    started = time.process_time()
    result = run_peers(
        peers, SimNet(default=link, seed=rtt_ms * 100 + int(loss * 100)), args.seconds, held_inputs(7), drivers=drivers
    )
    cpu = time.process_time() - started
    stats = list(result.stats.values())
    frames = sum(s["frames"] for s in stats)
    depths: dict[int, int] = {}
    latency: dict[int, int] = {}
    for s in stats:
        for table, merged in ((s["depths"], depths), (s["latency_ms"], latency)):
            for k, v in table.items():
                merged[k] = merged.get(k, 0) + v
    return {
        "fps": min(s["frames"] for s in stats) / args.seconds,
        "cpu_us": cpu / frames * 1e6,
        "rb_s": sum(s["rollbacks"] for s in stats) / len(stats) / args.seconds,
        "p50": percentile(depths, 0.5),
        "p99": percentile(depths, 0.99),
        "resim_us": sum(s["resim_seconds"] for s in stats) / frames * 1e6,
        "resim_tick_ms": max(s["resim_tick_max_seconds"] for s in stats) * 1e3,
        "stalls": sum(s["stalls"] for s in stats) / len(stats),
        "held": sum(s["held"] for s in stats) / len(stats),
        "lat50": percentile(latency, 0.5),
        "lat99": percentile(latency, 0.99),
        "desyncs": sum(p.unresolved_desyncs for p in peers),
        "same": _same(result.histories),
    }


def _text(value: int | None) -> str:
    return "-" if value is None else str(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="simulated seconds per cell")
    parser.add_argument("--peers", type=int, default=2, choices=(2, 3, 4))
    parser.add_argument("--ai", action="store_true", help="add a seat played by the recurrent ONNX LSTM")
    parser.add_argument("--delay", type=int, default=2, help="input delay (frames)")
    parser.add_argument("--window", type=int, default=8, help="max prediction (frames)")
    args = parser.parse_args()
    env = "PyCoinGrid" if args.peers == 2 and not args.ai else "CoopGrid"
    print(
        f"{args.peers} peers, {env}{' + LSTM AI seat' if args.ai else ''}, {FPS} fps, input delay {args.delay} "
        f"({args.delay * 1000 / FPS:.0f} ms), window {args.window}, {args.seconds:g} s simulated per row"
    )
    head = (
        f"{'RTT ms':>6} {'loss':>5} {'fps':>5} {'cpu us/f':>8} {'rb/s':>5} {'depth p50/p99':>13} {'resim us/f':>10} "
        f"{'max resim ms/tick':>17} {'stalls':>6} {'held':>5} {'read->shown p50/p99':>19} {'desyncs':>7} {'same':>5}"
    )
    print(head)
    print("-" * len(head))
    for rtt in RTTS_MS:
        for loss in LOSSES:
            r = run(args, rtt, loss)
            depth = f"{_text(r['p50'])}/{_text(r['p99'])}"
            frames = "/".join("-" if v is None else f"{v * FPS / 1000:.0f}" for v in (r["lat50"], r["lat99"]))
            latency = f"{_text(r['lat50'])}/{_text(r['lat99'])} ms {frames} f"
            print(
                f"{rtt:>6} {loss * 100:>4.0f}% {r['fps']:>5.1f} {r['cpu_us']:>8.0f} {r['rb_s']:>5.1f} {depth:>13} "
                f"{r['resim_us']:>10.1f} {r['resim_tick_ms']:>17.2f} {r['stalls']:>6.1f} {r['held']:>5.1f} {latency:>19} "
                f"{r['desyncs']:>7} {r['same']!s:>5}"
            )


if __name__ == "__main__":
    main()
