"""Seeded runs of a browser-side scene that give the same output in CPython and in Pyodide.

``mug check-env``, the verification tests and ``benchmarks/browser_env.py``
call these in both interpreters (in Pyodide through ``pyodide-run.mjs``) and
compare. Arguments and results are plain JSON.
"""

from __future__ import annotations

import random
import struct
import time
from collections.abc import Callable
from typing import Any

from mug.browser.game import BrowserGame
from mug.browser.scene import BrowserScene
from mug.session.engine import episode_seed
from mug.session.snapshots import observation_hash, restore_env, snapshot_env, state_hash

__all__ = ["env_trace", "game_trace", "overhead_timing"]


class _Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class _StepCounter:
    """A ``post`` that counts the step records and keeps nothing (as the worker, once JavaScript has them)."""

    def __init__(self) -> None:
        self.steps = 0

    def __call__(self, message: dict[str, Any], buffers: list[bytes]) -> None:
        if message["type"] == "steps":
            for record in message["records"]:
                if record["kind"] == "step":
                    self.steps += 1


def game_trace(args: dict[str, Any]) -> dict[str, Any]:
    """Play ``args["spec"]`` with ``BrowserGame`` for up to ``ticks`` ticks, pressing keys drawn from
    ``random.Random(seed)`` (a fake clock: 1/fps per tick); browser-side policies answer with a drawn action
    and float32 logits, as the page's runtime would. Returns every record (times left out), the message
    types posted, and seconds per tick."""
    posted: list[dict[str, Any]] = []
    elapsed = _play(args, lambda message, buffers: posted.append(message))
    records = [
        {k: v for k, v in r.items() if k != "time"} | {"record": {k: v for k, v in r["record"].items() if k != "pyodide_version"}}
        for m in posted
        if m["type"] == "steps"
        for r in m["records"]
    ]
    steps = sum(1 for r in records if r["kind"] == "step")
    return {"records": records, "types": [m["type"] for m in posted], "steps": steps, "seconds": elapsed}


def _play(args: dict[str, Any], post: Callable[[dict[str, Any], list[bytes]], None]) -> float:
    """:func:`game_trace`'s game, its messages given to ``post``; the seconds the ticks took."""
    spec, ticks, seed = args["spec"], int(args.get("ticks", 100)), int(args.get("seed", 0))
    clock, rng = _Clock(), random.Random(seed)
    game = BrowserGame(spec, post, clock=clock)
    keys = [*sorted({k for combo, _ in spec["gameplay"]["action_mapping"] for k in combo.split("+")}), None]
    page = []  # what the page sends at each tick, drawn ahead: the page's work is not the engine's
    for _ in range(ticks):
        key = rng.choice(keys)
        policies, buffers = {}, []
        for agent in spec["browser_policies"]:
            n = spec["action_spaces"][agent]["n"]
            logits = [round(rng.uniform(-3, 3), 3) for _ in range(n)]
            buffers.append(struct.pack(f"<{n}f", *logits))
            ref = {"buffer": len(buffers) - 1, "dtype": "float32", "shape": [n]}
            policies[agent] = {"action": rng.randrange(n), "logits": ref}
        page.append(([key] if key else [], policies, buffers))
    period, s = 1.0 / spec["rendering"]["fps"], game.session
    started = time.perf_counter()
    for keys_held, policies, buffers in page:
        if s.done:
            break
        act = {"type": "act", "step": s.decision, "episode": s.episode, "keys": keys_held, "policies": policies}
        game.step([(act, buffers)])  # the worker's one call per tick
        clock.now += period
    return time.perf_counter() - started


def env_trace(args: dict[str, Any]) -> dict[str, Any]:
    """Step the spec's env ``steps`` times (episodes reset with the scene's episode seeds) with actions drawn
    from ``random.Random(seed)``; per step the observation hash, rewards, terminations and state hash; the
    time of the bare loop (``bare_seconds``: the same actions, nothing else), of a bare *game* loop
    (``frame_seconds``: draw each agent's action, step, and draw the frame with the scene's ``draw`` on a
    ``Surface``: what any loop that shows the game does, without mug's engine), and a snapshot round trip at
    every step (snapshot -> step -> restore -> step)."""
    scene = BrowserScene(args["spec"])
    steps, rng = int(args.get("steps", 200)), random.Random(int(args.get("seed", 0)))
    adapter, episode = scene.make_env(), 0
    adapter.reset(episode_seed(scene.seed, episode))
    trace, plan = [], []
    for _ in range(steps):
        live, episode, reset = _live_agents(scene, adapter, episode)
        if reset:
            plan.append(None)
        actions = {a: scene.action_space(a).sample_with(rng) for a in live}
        plan.append(actions)
        result = adapter.step(actions)
        trace.append(
            {
                "episode": episode,
                "obs_hash": observation_hash(result.observations),
                "rewards": result.rewards,
                "terminated": result.terminated,
                "truncated": result.truncated,
                "state_hash": state_hash(adapter.env),
            }
        )
    snapshot = _snapshot_round_trips(scene, plan)
    return {
        "trace": trace,
        "bare_seconds": _replay_seconds(scene, plan),
        "frame_seconds": _game_loop_seconds(scene, steps),
        "steps": len(trace),
        **snapshot,
    }


def overhead_timing(args: dict[str, Any]) -> dict[str, Any]:
    """Seconds per step of the engine (:func:`game_trace`'s game), of the bare game loop and of the bare env loop
    (see :func:`env_trace`), ``steps`` steps each, run in turn ``repeat`` times in this interpreter; each the
    fastest of its runs (a shared machine's noise only ever adds time).

    The engine's messages are passed on and dropped, as the worker does once it has handed them to JavaScript:
    keeping thousands of frames alive (as :func:`game_trace` does, to return them) would time Python's garbage
    collector walking them, not the engine."""
    spec, steps, repeat, seed = args["spec"], int(args.get("steps", 1000)), int(args.get("repeat", 5)), int(args.get("seed", 0))
    scene, rng = BrowserScene(spec), random.Random(seed)
    adapter, episode, plan = scene.make_env(), 0, []
    adapter.reset(episode_seed(scene.seed, episode))
    for _ in range(steps):  # the bare env loop's actions, drawn ahead
        live, episode, reset = _live_agents(scene, adapter, episode)
        if reset:
            plan.append(None)
        plan.append({a: scene.action_space(a).sample_with(rng) for a in live})
        adapter.step(plan[-1])
    engine, loop, bare = [], [], []
    for _ in range(repeat):
        counter = _StepCounter()
        seconds = _play({"spec": spec, "ticks": steps, "seed": seed}, counter)
        engine.append(seconds / max(counter.steps, 1))
        loop.append((_game_loop_seconds(scene, steps) or 0.0) / steps)
        bare.append(_replay_seconds(scene, plan) / steps)
    return {"engine_s": min(engine), "game_loop_s": min(loop), "env_s": min(bare), "steps": steps, "repeat": repeat}


def _replay_seconds(scene: BrowserScene, plan: list[Any]) -> float:
    """Seconds of the bare env loop: reset, then ``plan``'s actions (``None``: reset into the next episode)."""
    adapter, episode = scene.make_env(), 0
    started = time.perf_counter()
    adapter.reset(episode_seed(scene.seed, 0))
    for actions in plan:
        if actions is None:
            episode += 1
            adapter.reset(episode_seed(scene.seed, episode))
        else:
            adapter.step(actions)
    return time.perf_counter() - started


def _live_agents(scene: BrowserScene, adapter: Any, episode: int) -> tuple[list[str], int, bool]:
    """The agents to act now, the episode, and whether the last one had ended (the env was reset into the next)."""
    live = adapter.live_agents()
    if live:
        return live, episode, False
    adapter.reset(episode_seed(scene.seed, episode + 1))
    return adapter.live_agents(), episode + 1, True


def _game_loop_seconds(scene: BrowserScene, steps: int) -> float | None:
    """Seconds of ``steps`` turns of a hand-written game loop: choose actions, step, draw (surface scenes)."""
    if scene.draw is None:
        return None
    from mug.rendering.surface import Surface

    adapter, episode, rng, surface = scene.make_env(), 0, random.Random(1), Surface(scene.width, scene.height)
    started = time.perf_counter()
    adapter.reset(episode_seed(scene.seed, 0))
    for _ in range(steps):
        live, episode, _ = _live_agents(scene, adapter, episode)
        adapter.step({a: scene.action_space(a).sample_with(rng) for a in live})
        scene.draw(adapter.env, surface)
    return time.perf_counter() - started


def _snapshot_round_trips(scene: BrowserScene, plan: list[Any]) -> dict[str, Any]:
    adapter, episode, failures, spent = scene.make_env(), 0, [], 0.0
    adapter.reset(episode_seed(scene.seed, 0))
    for index, actions in enumerate(plan):
        if actions is None:
            episode += 1
            adapter.reset(episode_seed(scene.seed, episode))
            continue
        started = time.perf_counter()
        state = snapshot_env(adapter.env)
        restore_env(adapter.env, state)
        spent += time.perf_counter() - started
        first = adapter.step(actions)
        first_hash = (observation_hash(first.observations), first.rewards, state_hash(adapter.env))
        restore_env(adapter.env, state)
        second = adapter.step(actions)
        if first_hash != (observation_hash(second.observations), second.rewards, state_hash(adapter.env)) and len(failures) < 5:
            failures.append(index)
    count = sum(1 for a in plan if a is not None)
    return {"snapshot_ok": not failures, "snapshot_failures": failures, "snapshot_restore_s": spent / max(count, 1)}
