"""Verifying browser-recorded episodes: re-simulate them in CPython from the seed and the recorded actions.

:func:`verify_episode` steps a fresh env (the scene's portable spec: same
creator, config and episode seed) with each recorded step's actions and
compares what it returns with what the browser recorded: the observation hash,
every reward and every termination/truncation flag. Any difference flags that
step (a tampered record, a Pyodide/CPython difference, or an env that is not
deterministic). The result is stored as a ``verification`` event; the data's
``verified`` column reads it (true: checked and equal; false: differed or not
reached; empty: not verified, e.g. a server-side scene, or the env could not
start where it was verified: the record's ``error``).

The server verifies each episode when its ``episode_end`` is committed, in a
child process at low priority (:class:`Verifier`): neither the event loop nor
its share of the CPU waits for a re-simulation (a thread would hold the GIL).
What waits for the child is bounded: an episode that would bring the steps
waiting for verification past ``Verifier.max_backlog_steps`` (default
:data:`MAX_BACKLOG_STEPS`) is not verified now; a ``verification_skipped``
event ``{session_id, episode, scene_id, steps, backlog_steps, max_backlog_steps}``
says so (its steps are stored as always; ``verified`` stays empty for them).
``mug verify DATA_DIR`` verifies every browser-recorded episode of a data
directory again (e.g. episodes interrupted by a server restart).
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import multiprocessing
import os
import sys
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from mug.session.engine import episode_seed
from mug.session.snapshots import observation_hash

if TYPE_CHECKING:
    from mug.server.participants import ParticipantRegistry

__all__ = ["MAX_BACKLOG_STEPS", "Verifier", "verify_data_dir", "verify_episode"]

log = logging.getLogger("mug.server")
#: Most differing steps one verification lists (the count is exact).
MAX_LISTED = 200
#: Most episodes one job for the verifying child holds.
EPISODES_PER_JOB = 32
#: Most steps that wait for the verifying child (queued or being verified) by default: a child that cannot keep
#: up (more sessions than its CPU share verifies) then costs bounded memory, not all of it. About 30 s of the
#: steps of 200 sessions at 30 fps.
MAX_BACKLOG_STEPS = 200_000
#: Seconds between two warnings in the log about episodes left unverified (each one has its event).
SKIP_WARNING_EVERY_S = 60.0


def verify_episode(spec: dict[str, Any], session_id: str, episode: int, steps: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The ``verification`` record of one episode (``steps``: its recorded steps as the store gives them); its
    ``seconds`` are the CPU seconds the re-simulation took. ``error`` says why there is no verdict (the env could
    not start here: its modules do not import, or it raised in ``reset``); such a record says nothing of the steps
    and the ``verified`` column ignores it."""
    from mug.browser.scene import BrowserScene

    rows = sorted(steps, key=lambda s: s["step"])
    mismatches: list[dict[str, Any]] = []
    checked, count = 0, 0

    def differ(step: int, what: str) -> None:
        nonlocal count
        count += 1
        if len(mismatches) < MAX_LISTED:
            mismatches.append({"step": step, "what": what})

    started = time.process_time()  # CPU seconds: a low-priority child waits for its CPU
    try:
        scene = BrowserScene(spec)
        adapter = scene.make_env()
        adapter.reset(episode_seed(scene.seed, episode))
    except Exception as exc:  # not a verdict on the record: the env's code is not importable here, or broke
        failed = _result(session_id, episode, 0, [], 0, 0.0)
        return {**failed, "verified": False, "error": f"the env could not start: {type(exc).__name__}: {exc}"}
    for row in rows:
        step = row["step"]
        if step != checked:
            differ(checked, f"step {checked} is missing from the record")
            break
        checked += 1
        actions = row["actions"] or {}
        live = set(adapter.live_agents())
        if not set(actions) <= live:
            differ(step, f"actions for agents {sorted(set(actions) - live)} that are not live")
            continue
        try:
            result = adapter.step(actions)
        except Exception as exc:
            differ(step, f"env.step raised {type(exc).__name__}: {exc}")
            break
        truncated = dict(result.truncated)
        if scene.max_steps is not None and step + 1 >= scene.max_steps:
            truncated = dict.fromkeys(truncated or scene.agents, True)
        found = []
        if observation_hash(result.observations) != row.get("obs_hash"):
            found.append("observation")
        for name, value in (("reward", result.rewards), ("terminated", result.terminated), ("truncated", truncated)):
            if value != (row.get(f"{name}s" if name == "reward" else name) or {}):
                found.append(f"{name} ({value} re-simulated, {row.get(f'{name}s' if name == 'reward' else name)} recorded)")
        if found:
            differ(step, ", ".join(found))
    adapter.close()
    return _result(session_id, episode, checked, mismatches, count, time.process_time() - started)


def _result(session_id: str, episode: int, checked: int, mismatches: list, count: int, seconds: float) -> dict[str, Any]:
    return {
        "session_id": session_id,
        "episode": episode,
        "checked": checked,
        "verified": count == 0 and checked > 0,
        "mismatched": count,
        "mismatches": mismatches,
        "seconds": seconds,
        "error": None,
    }


def _child_init(paths: list[str], modules: list[str]) -> None:
    """A verifying child: low priority, the parent's import paths (the env modules' roots among them), and the
    modules re-simulation uses imported at its start (not in the first episode's time)."""
    import contextlib
    import importlib

    os.nice(10)
    _exit_with_parent()
    sys.path[:0] = [p for p in paths if p not in sys.path]
    for name in ["mug.browser.scene", *modules]:
        with contextlib.suppress(Exception):  # the episode that needs it reports the failure in its verification
            importlib.import_module(name)


def _exit_with_parent(every_s: float = 1.0) -> None:
    """End this child once its server is gone (a server killed with SIGKILL never shuts its pool down, and the
    pool's workers would wait for work forever): a daemon thread checks every ``every_s`` seconds."""
    import threading

    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every_s)
        os._exit(0)

    threading.Thread(target=watch, name="mug-verify-parent-watch", daemon=True).start()


def import_roots(modules: Iterable[str]) -> list[str]:
    """The directories from which the already imported ``modules`` were imported (for a child process)."""
    roots = []
    for name in modules:
        module = sys.modules.get(name)
        where = getattr(module, "__file__", None)
        if where:
            from pathlib import Path

            path = Path(where).resolve()
            depth = len(name.split(".")) - (0 if path.name == "__init__.py" else 1)
            roots.append(str(path.parents[depth]))
    return roots


def _verify_all(jobs: list[tuple[dict[str, Any], str, int, list[Any]]]) -> list[dict[str, Any] | str]:
    """In the verifying child: each job's ``verification`` record, or the traceback of a failure of ours."""
    import traceback

    from mug.server.browser_sessions import VERIFIED_FIELDS

    out: list[dict[str, Any] | str] = []
    for spec, session_id, episode, steps in jobs:
        try:
            rows = [s if isinstance(s, dict) else {"step": s[0], **_fields(json.loads(s[1]), VERIFIED_FIELDS)} for s in steps]
            out.append(verify_episode(spec, session_id, episode, rows))
        except Exception:
            out.append(traceback.format_exc())
    return out


def _fields(record: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    return {k: record.get(k) for k in names}


class Verifier:
    """Verifies episodes in one child process once their records are committed; results go back to the loop.

    The episodes one commit made verifiable go to the child together, in jobs of up to ``EPISODES_PER_JOB``
    (the event loop pays for one hand-over per job, not one per episode; results come back job by job).
    At most ``max_backlog_steps`` steps wait for the child (or one longer episode, when nothing else waits); an
    episode past that is left unverified, with a ``verification_skipped`` event (``mug verify DATA_DIR`` verifies it
    later)."""

    def __init__(self, registry: ParticipantRegistry) -> None:
        self.registry = registry
        #: The bound (``deploy(verify_backlog_steps=...)`` sets it; 0: nothing is verified while serving).
        self.max_backlog_steps = MAX_BACKLOG_STEPS
        #: Steps of the episodes queued or given to the child and not verified yet.
        self.backlog_steps = 0
        self._queued: list[tuple[str, dict[str, Any], str, int, list[Any]]] = []
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        self._skipped_since_warning, self._warned_at = 0, -SKIP_WARNING_EVERY_S

    def after_commit(self, participant_id: str, spec: dict[str, Any], session_id: str, episode: int, steps: list[Any]) -> None:
        """Verify this episode once the records now queued in the store are committed (see :meth:`committed`).

        ``steps``: the episode's steps in order, each a dict (``step`` and the ``VERIFIED_FIELDS``) or a pair
        (step, the JSON text stored for its record), which is what browser sessions keep while an episode runs.
        Past the backlog bound the episode is not verified now: a ``verification_skipped`` event says so."""
        alone = self.backlog_steps == 0 and self.max_backlog_steps > 0  # an episode longer than the bound, nothing waiting
        if self.backlog_steps + len(steps) > self.max_backlog_steps and not alone:
            self._skip(participant_id, spec["scene_id"], session_id, episode, len(steps))
            return
        self.backlog_steps += len(steps)
        self._queued.append((participant_id, spec, session_id, episode, steps))

    def _skip(self, participant_id: str, scene_id: str, session_id: str, episode: int, steps: int) -> None:
        values = {"steps": steps, "backlog_steps": self.backlog_steps, "max_backlog_steps": self.max_backlog_steps}
        data = {"session_id": session_id, "episode": episode, "scene_id": scene_id, **values}
        self.registry.store.add_event(participant_id, "verification_skipped", data)
        self._skipped_since_warning += 1
        now = time.monotonic()
        if now - self._warned_at >= SKIP_WARNING_EVERY_S:
            log.warning(
                "%d episode(s) left unverified: the verifying child is %d steps behind (at most %d wait for it); "
                "`mug verify DATA_DIR` verifies them later",
                self._skipped_since_warning,
                self.backlog_steps,
                self.max_backlog_steps,
            )
            self._skipped_since_warning, self._warned_at = 0, now

    def start(self) -> None:
        """Start the verifying child now (a browser-side scene began), not when the first episode ends: its
        start-up (a new interpreter and the env's imports) then never lands in the middle of a busy commit."""
        if self._pool is not None:
            return
        specs = self.registry.browser.specs.values()
        modules = {ref.partition(":")[0] for spec in specs for ref in _refs(spec)}
        self._pool = concurrent.futures.ProcessPoolExecutor(
            1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_child_init,
            initargs=([*import_roots(sorted(modules)), *sys.path], sorted(modules)),
        )
        self._pool.submit(_verify_all, [])  # a process pool starts its child with its first job

    def committed(self) -> None:
        """The store committed: start what waited for it (in jobs of at most ``EPISODES_PER_JOB``)."""
        if not self._queued:
            return
        import asyncio

        loop = asyncio.get_running_loop()
        self.start()
        queued, self._queued = self._queued, []
        for i in range(0, len(queued), EPISODES_PER_JOB):
            chunk = queued[i : i + EPISODES_PER_JOB]
            jobs = [(spec, session_id, episode, steps) for _, spec, session_id, episode, steps in chunk]
            whose = [(participant_id, spec["scene_id"]) for participant_id, spec, *_ in chunk]
            size = sum(len(steps) for *_, steps in chunk)
            future = loop.run_in_executor(self._pool, _verify_all, jobs)
            future.add_done_callback(lambda f, whose=whose, size=size: self._done(whose, size, f))

    def _done(self, whose: list[tuple[str, str]], size: int, future: Any) -> None:
        self.backlog_steps -= size
        if future.cancelled() or self._pool is None:  # the server is stopping or stopped (see close), its store
            return  # closed: ``mug verify`` can verify the episodes later
        try:
            results = future.result()
        except Exception:  # the child died: logged, the server goes on (``mug verify`` can verify them later)
            log.exception("verifying %d episode(s) failed", len(whose))
            return
        for (participant_id, scene_id), result in zip(whose, results):
            if isinstance(result, str):  # a bug of ours: logged, the server goes on
                log.error("verifying an episode failed:\n%s", result)
                continue
            if result["error"]:
                log.error("session %s episode %s not verified: %s", result["session_id"], result["episode"], result["error"])
            elif not result["verified"]:
                log.warning(
                    "session %s episode %s: %d step(s) differ from a CPython re-simulation (first: %s)",
                    result["session_id"],
                    result["episode"],
                    result["mismatched"],
                    result["mismatches"][:1],
                )
            self.registry.store.add_event(participant_id, "verification", {**result, "scene_id": scene_id})
        self.registry.flush()

    def close(self) -> None:
        """Stop the child process (server shutdown); episodes not verified yet are left to ``mug verify``."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


def _refs(spec: dict[str, Any]) -> list[str]:
    return [r for r in (spec["env"]["creator"], spec["rendering"]["draw"], spec["rendering"]["hud"]) if r]


def verify_data_dir(data_dir: Any, *, record: bool = True) -> list[dict[str, Any]]:
    """Verify every browser-recorded episode stored in ``data_dir`` (``mug verify``); with ``record`` the results
    are stored as ``verification`` events (the latest per episode is what the ``verified`` column shows), except
    those with an ``error`` (the env could not start here), which are only returned.

    The env modules named by the sessions' specs must be importable (run it where the study's files are)."""
    from mug.errors import MugError
    from mug.server.store import Store

    reader = Store(data_dir, readonly=True)
    try:
        specs = {e["session_id"]: (e["participant_id"], e["data"]["spec"]) for e in reader.iter_events("browser_session")}
        episodes: dict[tuple[str, int], list[dict[str, Any]]] = {}
        for step in reader.iter_steps():
            if step["session_id"] in specs:
                episodes.setdefault((step["session_id"], step["episode"]), []).append(step)
    finally:
        reader.close()
    results = []
    for (session_id, episode), steps in episodes.items():
        participant_id, spec = specs[session_id]
        result = verify_episode(spec, session_id, episode, steps)
        results.append({**result, "participant_id": participant_id, "scene_id": spec["scene_id"]})
    verdicts = [r for r in results if not r["error"]]  # an env that could not start here says nothing of the data
    if record and verdicts:
        writer = Store(data_dir)
        try:
            for r in verdicts:
                writer.add_event(r["participant_id"], "verification", {k: v for k, v in r.items() if k != "participant_id"})
            if not writer.commit():
                raise MugError(f"could not store the verifications in {data_dir}: the database stays locked by another program")
        finally:
            writer.close()
    return results
