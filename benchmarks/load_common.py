"""What the load benchmarks share: a pinned server process, simulated participants on another CPU, and
the figures measured over one window of their play (frames/s per client, gaps, input->frame latency,
server CPU and memory, the share of the window the server waited for its CPU, the bots' CPU)."""

from __future__ import annotations

import asyncio
import os
import resource
import time
from pathlib import Path
from typing import Any

from mug.server.simulate import ParticipantStats, SimulatedParticipant, simulate
from tests.servers import ServerProcess


def proc_stats(pid: int) -> tuple[float, int]:
    """(CPU seconds, resident bytes) of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    rss_pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    return ticks / os.sysconf("SC_CLK_TCK"), rss_pages * os.sysconf("SC_PAGE_SIZE")


def run_queue_wait(pid: int) -> float:
    """Seconds the process's main thread (the server's event loop) has waited for a CPU while ready to run
    (``/proc/<pid>/schedstat``): on a shared machine, time other programs took from the server's core."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9


def pct(values: list[float], q: float) -> float:
    """The ``q`` quantile of ``values`` (nan when empty)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def parse_pin(text: str | None) -> tuple[int, int] | None:
    """``"0,1"`` -> (server CPU, bots CPU)."""
    if not text:
        return None
    pin = tuple(int(x) for x in text.split(","))
    if len(pin) != 2:
        raise SystemExit("--pin takes two CPU numbers, e.g. 0,1")
    return pin  # type: ignore[return-value]


def start_server(args: list[str], data_dir: Path, pin: tuple[int, int] | None) -> ServerProcess:
    """``mug <args>`` as a server process; with ``pin`` (server CPU, bots CPU) it runs on its CPU alone and this
    process moves to the other (the simulated participants' Node process is pinned there with ``taskset``)."""
    if pin is not None:
        os.sched_setaffinity(0, {pin[0]})  # the server process inherits this at its start...
    server = ServerProcess(args, data_dir).start()
    if pin is not None:
        os.sched_setaffinity(0, {pin[1]})  # ...then this process moves to the bots' CPU
    return server


def _window(stats: list[ParticipantStats], t0: float, t1: float) -> dict[str, Any]:
    """Frames/s per client, gaps and latencies (ms) of what arrived between t0 and t1 (epoch seconds)."""
    window = [s.during(t0, t1) for s in stats]
    rates = [len(s.frame_log) / (t1 - t0) for s in window]
    gaps = [g for s in window for g in s.gaps]
    latencies = [x for s in window for x in s.latencies]
    return {
        "fps": sum(rates) / len(rates),
        "fps_min": min(rates),
        "gap50": pct(gaps, 0.5) * 1e3,
        "gap99": pct(gaps, 0.99) * 1e3,
        "lat50": pct(latencies, 0.5) * 1e3,
        "lat99": pct(latencies, 0.99) * 1e3,
    }


async def play_and_measure(
    server: ServerProcess,
    bots: list[SimulatedParticipant],
    *,
    settle: float,
    seconds: float,
    pin: tuple[int, int] | None,
) -> tuple[list[ParticipantStats], dict[str, Any]]:
    """Run ``bots`` (one Node process) against ``server``; measure over ``seconds`` after ``settle`` seconds.

    The bots play until their timeout, a second after the window closes (the window is read from their
    frame logs, which carry the same clock as this process's ``time.time()``).
    """
    pid = server.proc.pid
    _, rss_idle = proc_stats(pid)
    children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.time()
    playing = asyncio.create_task(
        simulate(server.url, bots, timeout=settle + seconds + 1.0, cpus=None if pin is None else str(pin[1]))
    )
    await asyncio.sleep(settle)
    cpu0, _ = proc_stats(pid)
    wait0 = run_queue_wait(pid)
    t0 = time.time()
    await asyncio.sleep(seconds)
    cpu1, rss = proc_stats(pid)
    wait1 = run_queue_wait(pid)
    t1 = time.time()
    stats = await playing
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    bots_cpu = (children.ru_utime + children.ru_stime - children0.ru_utime - children0.ru_stime) / (time.time() - started)
    failed = [s for s in stats if s.errors or s.ended not in ("timeout", "acks")]
    if failed:
        raise RuntimeError(
            f"{len(failed)} simulated participants failed, e.g. {failed[0].participant_id}: {failed[0].errors[:2]} ({failed[0].ended})"
        )
    figures = _window(stats, t0, t1)
    figures.update(
        cpu=(cpu1 - cpu0) / (t1 - t0) * 100,
        cpu_wait=(wait1 - wait0) / (t1 - t0) * 100,
        rss=rss - rss_idle,
        bots_cpu=bots_cpu * 100,
    )
    return stats, figures
