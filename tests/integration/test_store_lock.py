"""The store under a write lock held by another program: nothing acknowledged is lost, nobody is cut off."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import mug
from mug.server.simulate import SimulatedParticipant, simulate
from mug.server.store import Store
from tests.bots import run_async
from tests.e2e.studies import cartpole_realtime

LOCK_S = 10.0
HOLD_LOCK = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
db.execute("COMMIT")
print("released", flush=True)
"""


def test_an_external_write_lock_loses_no_acknowledged_step_and_closes_no_connection(tmp_path):
    data = tmp_path / "data"

    async def main():
        deployment = mug.deploy(cartpole_realtime, port=0, data_dir=data)
        loop = asyncio.get_running_loop()
        beats: list[float] = []

        async def heartbeat():
            while True:
                beats.append(loop.time())
                await asyncio.sleep(0.05)

        beat = asyncio.create_task(heartbeat())
        bots = [SimulatedParticipant(deployment.url, f"bot{i}", keys=["ArrowLeft", "ArrowRight"]) for i in range(5)]
        playing = asyncio.create_task(simulate(deployment.url, bots, stop_after_acks=150, timeout=90))
        await asyncio.sleep(1.5)  # the bots' Node process starts and they play
        holder = await asyncio.create_subprocess_exec(
            sys.executable, "-c", HOLD_LOCK, str(data / "mug.sqlite"), str(LOCK_S), stdout=subprocess.PIPE
        )
        assert (await holder.stdout.readline()).strip() == b"locked"
        locked_at, locked_wall = loop.time(), time.time()
        assert (await holder.stdout.readline()).strip() == b"released"
        released_at, released_wall = loop.time(), time.time()
        await holder.wait()
        results = await playing
        beat.cancel()
        deployment.stop()
        during = [b for b in beats if locked_at <= b <= released_at]
        frames_during = sum(locked_wall <= t <= released_wall for r in results for t in r.frame_times)
        return results, during, locked_at, released_at, frames_during

    results, during, locked_at, released_at, frames_during = run_async(main())
    # the loop saw the lock start and end LOCK_S apart: it was not blocked waiting for the lock meanwhile
    assert released_at - locked_at >= LOCK_S - 0.5, "the event loop was blocked for the whole lock"
    # the event loop kept running through the lock (a commit that waited for it would stall it for seconds)
    gaps = [b - a for a, b in zip([locked_at, *during], [*during, released_at])]
    assert max(gaps) < 2.0, f"the event loop stalled for {max(gaps):.1f} s during the lock"
    assert frames_during <= 5 * 2  # games pause while nothing can be committed: no frame is sent for unstored steps
    assert all(r.errors == [] for r in results), [r.errors for r in results]
    assert all(r.acked_steps == 150 for r in results)  # every bot played on after the lock: none was cut off
    store = Store(data, readonly=True)
    steps = store.steps("cartpole")
    store.close()
    for r in results:
        stored = {(s["episode"], s["decision"]) for s in steps if s["participant_id"] == r.participant_id}
        acknowledged = {(episode, step - 1) for episode, step in r.steps if step > 0}
        assert acknowledged <= stored, f"{r.participant_id}: acknowledged steps missing: {sorted(acknowledged - stored)[:5]}"
        assert len(stored) >= 150
