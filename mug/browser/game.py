"""``BrowserGame``: the engine as it runs in the participant's browser (a Pyodide Web Worker).

The worker builds ``BrowserGame(spec, post)`` with the scene's portable spec
(:meth:`mug.GymScene.browser_spec`) and a ``post(message, buffers)`` function
that hands engine output to JavaScript, then calls :meth:`step` once per
frame at the scene's fps with the page's messages that came since the last
call (and at once for an ``act`` the game waits for: see :meth:`step`).

``post`` receives the ordinary engine messages for the page (``scene``,
``frame``, ``episode_end``, ``scene_end``, ``error``) and ``steps`` messages
for the server (relayed by the page over its WebSocket)::

    {"type": "steps", "session_id": ..., "scene_id": ...,
     "records": [{"seq": 0, "kind": "event", "name": "session", "episode": null, "step": null,
                  "time": ..., "record": {"where": "browser", "mug_version": ..., "pyodide_version": ...,
                                          "seed": ..., "spec_sha256": ...}},
                 {"seq": 1, "kind": "event", "name": "scene_start", ...},
                 {"seq": 5, "kind": "step", "episode": 0, "step": 3, "time": ...,
                  "record": {"decision": 3, "actions": {...}, "sources": {...}, "rewards": {...},
                             "terminated": {...}, "truncated": {...}, "obs_hash": "...", ...}}]}

``seq`` counts 0, 1, 2, ... per session; the server stores each seq once and
acks the highest contiguous seq it committed (``steps_ack``). Records are
posted at the end of every :meth:`step` that made some.

Reload rule (see README, "Environments in the browser"): a reloaded page
restarts the episode that was running. The server gives the new worker
``spec["resume"] = {"episode": k, "seq": n}`` (the first episode without a
stored ``episode_end``, and the next seq it expects); the game then starts at
episode ``k`` with episode ``k``'s seed and numbers its records from ``n``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import sys
import time
import traceback
from collections.abc import Callable, Iterable
from typing import Any

from mug.browser.scene import BrowserScene
from mug.session.engine import GameSession
from mug.session.messages import jsonable
from mug.session.snapshots import restore_env, snapshot_env

__all__ = ["BrowserGame", "spec_sha256"]

#: The client id of the participant inside the worker's engine.
CLIENT = "participant"
_EVENT_KEYS = ("session_id", "scene_id", "time")


def spec_sha256(spec: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of ``spec`` without its per-participant parts (``session_id``, ``resume``).

    Integral floats count as integers: the spec reaches the worker through JavaScript, whose numbers do not
    keep ``1.0`` apart from ``1``."""
    shared = _canonical({k: v for k, v in spec.items() if k not in ("session_id", "resume")})
    return hashlib.sha256(json.dumps(shared, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _canonical(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _pyodide_version() -> str | None:
    module = sys.modules.get("pyodide")
    return getattr(module, "__version__", None) if module is not None else None


class _Outbox:
    """Transport and recorder of the worker's engine: page messages go out at once, records in batches."""

    def __init__(self, game: BrowserGame) -> None:
        self.game = game
        self.record_step = game._add_step  # the engine's call at every step, straight to the game

    def send(self, client_id: str, message: dict[str, Any], buffers: list[bytes]) -> None:
        self.game.post(message, buffers)

    def record(self, kind: str, data: dict[str, Any]) -> None:
        self.game._add_event(kind, {k: v for k, v in data.items() if k not in _EVENT_KEYS})


class BrowserGame:
    """One participant's game in the browser (see module docstring).

    Args:
        spec: the scene's portable spec, with ``session_id`` (and ``resume`` after a reload).
        post: ``post(message, buffers)``, called for every message to the page or the server.
        clock: seconds since the epoch (tests inject a fake one).
    """

    def __init__(
        self, spec: dict[str, Any], post: Callable[[dict[str, Any], list[bytes]], None], *, clock: Callable[[], float] = time.time
    ) -> None:
        self.spec, self.post, self.clock = spec, post, clock
        self.session_id: str = spec.get("session_id") or "browser"
        resume = spec.get("resume") or {}
        self.seq: int = int(resume.get("seq", 0))
        self._records: list[dict[str, Any]] = []
        self.scene = BrowserScene(spec)
        outbox = _Outbox(self)
        self.session = GameSession(self.scene, [CLIENT], outbox, outbox, clock=clock, session_id=self.session_id)
        self.session.episode = int(resume.get("episode", 0)) - 1  # start() begins the next one
        self._add_event(
            "session",
            {
                "where": "browser",
                "mug_version": spec.get("mug_version"),
                "pyodide_version": _pyodide_version(),
                "seed": self.scene.seed,
                "spec_sha256": spec_sha256(spec),
                "resumed_episode": resume.get("episode"),
            },
        )
        self.stepped = False
        self._start()

    # -- the worker's calls -------------------------------------------------------------

    def step(self, messages: Iterable[tuple[dict[str, Any], list[bytes]]] = (), tick: bool = True) -> bool:
        """The worker's one call per frame: the page's messages since the last call (``ready``, ``act``,
        ``client_error``, each with its buffers), in order, then one frame tick (``tick``; realtime scenes).

        A bad message gets an ``error`` reply; the records made go out in one ``steps`` message. Returns whether
        the page's next ``act`` should be handed over at once rather than with the next tick: in a lockstep
        scene, and while a realtime step waits for a browser-side policy's result (it is taken on arrival)."""
        s = self.session
        failed = s.failure is not None
        self.stepped = False
        try:
            for message, buffers in messages:
                s.receive(CLIENT, message, buffers)
            if tick:
                self.stepped = s.tick()
        except Exception as exc:
            self._crashed(exc)
        self._flush(failed)
        return s.acts_at_once

    def receive(self, message: dict[str, Any], buffers: list[bytes] | None = None) -> None:
        """One message from the page, now (:meth:`step` without a tick)."""
        self.step(((message, list(buffers or [])),), tick=False)

    def tick(self) -> bool:
        """One frame tick (:meth:`step` without messages); whether the env stepped."""
        self.step()
        return self.stepped

    @property
    def done(self) -> bool:
        """Whether the scene is over (or failed)."""
        return self.session.done

    def snapshot(self) -> dict[str, Any]:
        """The engine's and env's state now (restore it with :meth:`restore`)."""
        s = self.session
        return {
            "env": snapshot_env(s.env.env),
            "episode": s.episode,
            "step": s.step_index,
            "decision": s.decision,
            "obs": copy.deepcopy(s._obs),
            "totals": dict(s._totals),
            "previous": dict(s._previous),
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Go back to ``state`` (from :meth:`snapshot` of this game)."""
        s = self.session
        restore_env(s.env.env, state["env"])
        s.episode, s.step_index, s.decision = state["episode"], state["step"], state["decision"]
        s._obs, s._totals, s._previous = state["obs"], dict(state["totals"]), dict(state["previous"])
        s._pending.clear()
        s._acted.clear()

    # -- internals ----------------------------------------------------------------------

    def _add_event(self, name: str, data: dict[str, Any]) -> None:
        self._records.append(
            {
                "seq": self.seq,
                "kind": "event",
                "name": name,
                "episode": data.get("episode"),
                "step": data.get("step"),
                "time": self.clock(),
                "record": jsonable(data),
            }
        )
        self.seq += 1

    def _add_step(self, episode: int, step: int, time: float, data: dict[str, Any]) -> None:
        if "policy_outputs" in data:  # plain values (the engine converted infos and observations); policy
            data["policy_outputs"] = jsonable(data["policy_outputs"])  # tensors become lists here
        self._records.append({"seq": self.seq, "kind": "step", "episode": episode, "step": step, "time": time, "record": data})
        self.seq += 1

    def _start(self) -> None:
        try:
            self.session.start()
        except Exception as exc:
            self._crashed(exc)
        self._flush(False)

    def _crashed(self, exc: Exception) -> None:
        """An exception escaped the engine (a bug, or the env failing in ``draw``): reported, not raised into
        JavaScript."""
        s = self.session
        s.failure, s.failure_traceback, s.done = f"{type(exc).__name__}: {exc}", traceback.format_exc(limit=20), True
        self._add_event("error", {"code": "engine_error", "message": s.failure, "fatal": True})
        self.post({"type": "error", "code": "engine_error", "message": s.failure, "fatal": True}, [])

    def _flush(self, failed: bool) -> None:
        """Post the records made (every call does, failed or not); ``failed``: whether the game had failed before
        the call (a new failure is also reported to the server)."""
        if self._records:
            records, self._records = self._records, []
            self.post({"type": "steps", "session_id": self.session_id, "scene_id": self.scene.scene_id, "records": records}, [])
        s = self.session
        if s.failure is not None and not failed:  # the env (or a bug) stopped the game: tell the server
            message = {"session_id": self.session_id, "episode": s.episode, "step": s.step_index, "message": s.failure}
            self.post({"type": "env_error", **message, "traceback": s.failure_traceback or ""}, [])
