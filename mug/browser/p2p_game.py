"""``P2PGame``: one member's game of a peer-to-peer match, as it runs in the participant's browser (Pyodide worker).

Every member's page runs the same deterministic env (:class:`mug.netcode.EnvSimulation` over the
scene's :class:`~mug.browser.scene.BrowserScene`) under a :class:`mug.netcode.RollbackPeer` whose
peer id is the member's seat (``spec["p2p"]``: ``match_id``, ``seat``, ``owners``, ``ai_seats``,
``input_delay``, ``max_prediction``, ``hash_interval``, ``rejoin``). The worker builds ``P2PGame(spec, post)``
and then calls:

* :meth:`tick` once per display tick with the host clock and the keys the participant holds: the
  keys become the local seat's action (the scene's ``action_mapping``), the peer advances, and the
  display frame is drawn with the scene's ``draw`` on a ``Surface``;
* :meth:`receive` with the page's messages: ``ready`` (send the scene and the frame again),
  ``act`` (the ``GameView``'s answer to a frame: its ``keys`` are the keys held now), ``peer``
  ``{from, message}`` (a message of another member's peer), ``reconnected`` ``{peer}`` (the mesh's pair with
  that peer was made anew: control messages in flight were lost, see
  :meth:`mug.netcode.RollbackPeer.reconnected`), ``visibility`` ``{hidden}`` (the tab was hidden or shown:
  the time hidden per episode goes into each ``episode_end``'s ``stats`` as ``hidden_s``), ``seat_ai``
  ``{seat}`` (the server's ``p2p_seat_ai``: that member is lost and its seat goes to the fill-in policy at a
  frame the remaining peers agree on, :meth:`mug.netcode.RollbackPeer.lose_peer`; a seat that is not another
  member's is ignored) and ``ai`` (an answer to an AI request).

A page whose tab opened mid-match (``p2p["rejoin"]``: a reload) asks a peer for the confirmed state at its
first tick (:meth:`mug.netcode.RollbackPeer.request_state`, with ``p2p["stored_inputs"]``: its seat's inputs
as the server stored them), again every :data:`STATE_RETRY_S` until it comes,
and plays on from the frame the others are at; until then it shows the match's start state and sends no inputs.

``post(message, buffers)`` gets, for the page: ``scene``, ``frame``, ``episode_end``,
``scene_end`` and ``error`` (as :class:`~mug.browser.BrowserGame` posts them), and

* ``{"type": "peer", "messages": [[to_peer | None, channel, message], ...]}``: for the mesh
  (``None``: every other member; channel ``"input"`` or ``"control"``);
* ``{"type": "ai_request", "requests": [{seat, frame, episode, observation, restore, epoch}]}``:
  AI turns for the page's policy runtime, answered in order with ``ai`` messages
  ``{seat, frame, action, state, epoch}`` (``state``: the seat's hidden state, sampling stream,
  step count and episode as plain data after acting; its digest enters the frame's record);

and, for the server (the wire of the P2P match, relayed by the page, which keeps records until acked):
``{"type": "p2p_events", match_id, events}`` (the peer's events: desync, resync, episode_end with
the peer's statistics, seat_ai ``{seat, peer, frame}``), then ``{"type": "p2p_frames", match_id, records}`` (confirmed
:class:`~mug.netcode.FrameRecord` dicts in frame order), and once the last episode's end is agreed
``{"type": "p2p_done", match_id, reason: "scene_end"}``. Events go out before the records of the same
call, so a page that sees a ``resync`` drops its unacked records from the event's frame before the new
ones come.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import Any

from mug.browser.scene import BrowserScene
from mug.netcode import EnvSimulation, FrameRecord, FrameResult, RollbackPeer
from mug.netcode.simulation import Simulation, digest
from mug.session.hud import hud_line
from mug.session.inputs import KeyMap

__all__ = ["STATE_RETRY_S", "P2PGame", "ScoredSimulation", "scene_peer", "scene_simulation"]

#: Seconds a reopened page waits for the state before it asks again (a request sent before the mesh had a pair
#: with that peer is lost).
STATE_RETRY_S = 3.0


class ScoredSimulation:
    """An :class:`~mug.netcode.EnvSimulation` that also keeps each agent's return in the running episode (for
    the HUD). The returns are part of snapshots (a rollback restores them) but not of the state hash, which is
    the env simulation's own: peers compare exactly what a plain ``EnvSimulation`` would."""

    def __init__(self, inner: EnvSimulation) -> None:
        self.inner = inner
        self.totals: dict[str, float] = {}

    def step(self, inputs: dict[str, Any]) -> FrameResult:
        """One frame of the env simulation; returns restart at a reset step."""
        result = self.inner.step(inputs)
        if result.kind == "reset":
            self.totals = {}
        elif result.kind == "step":
            self.totals = {a: self.totals.get(a, 0.0) + float(result.rewards.get(a, 0.0)) for a in self.totals | result.rewards}
        return result

    def snapshot(self) -> dict[str, Any]:
        """The env simulation's snapshot and the returns."""
        return {"sim": self.inner.snapshot(), "totals": dict(self.totals)}

    def restore(self, state: dict[str, Any]) -> None:
        """Back to a :meth:`snapshot` (also one from another page, as JSON)."""
        self.inner.restore(state["sim"])
        self.totals = {str(a): float(r) for a, r in state["totals"].items()}

    def state_hash(self, state: Any = None) -> str:
        """The env simulation's hash of ``state`` (default: now)."""
        return self.inner.state_hash(None if state is None else state["sim"])

    def observation(self, seat: str) -> Any:
        """``seat``'s observation (see :meth:`mug.netcode.EnvSimulation.observation`)."""
        return self.inner.observation(seat)


def scene_simulation(scene: BrowserScene) -> EnvSimulation:
    """The deterministic simulation every peer of ``scene``'s match runs: its env, seed, episodes and step cap."""
    return EnvSimulation(
        lambda: scene.env_creator(**scene.env_config),
        scene.seed,
        num_episodes=scene.num_episodes,
        max_steps=scene.max_steps,
        default_action=scene.default_action,
    )


def scene_peer(scene: BrowserScene, sim: Simulation) -> RollbackPeer:
    """The :class:`~mug.netcode.RollbackPeer` of this page's member over ``sim``, as the spec's ``p2p`` sets it."""
    p2p = scene.spec["p2p"]
    return RollbackPeer(
        sim,
        str(p2p["seat"]),
        p2p["owners"],
        p2p.get("ai_seats", []),
        input_delay=int(p2p["input_delay"]),
        max_prediction=int(p2p["max_prediction"]),
        fps=float(scene.fps),
        default_action=scene.default_action,
        hash_interval=int(p2p.get("hash_interval", 1)),
    )


class P2PGame:
    """One member's game of a P2P match (see module docstring).

    Args:
        spec: the scene's portable spec with ``session_id`` and ``p2p``.
        post: ``post(message, buffers)``, called for every message to the page, the mesh or the server.
    """

    def __init__(self, spec: dict[str, Any], post: Callable[[dict[str, Any], list[bytes]], None]) -> None:
        from mug.rendering.surface import Surface

        self.spec, self.post = spec, post
        p2p = spec["p2p"]
        self.match_id: str = str(p2p["match_id"])
        self.seat: str = str(p2p["seat"])
        self.scene = scene = BrowserScene(spec)
        self.sim = ScoredSimulation(scene_simulation(scene))
        self.peer = scene_peer(scene, self.sim)
        self._rejoin = bool(p2p.get("rejoin"))  # a tab reopened mid-match: the state comes from a peer
        self._stored_inputs = p2p.get("stored_inputs")  # the seat's inputs the match's record holds (or None)
        self._asked: float | None = None  # when the state was last asked for
        self._hidden_since: float | None = None  # tick clock: since when the tab is hidden
        self._hidden_total = 0.0  # seconds hidden before that
        self._hidden_at_end = 0.0  # hidden seconds at the last agreed episode end
        self.keymap = KeyMap(scene.action_mapping, scene.default_action)
        self.surface = Surface(scene.width, scene.height, scene.images) if scene.render_mode == "surface" else None
        self.keys: list[str] = []
        self._now = 0.0
        self.done = False
        self.failure: str | None = None
        self._shown: tuple[int, int] | None = None  # (frame, rollbacks) of the last frame drawn
        self._episodes_ended = 0
        self._rewards: dict[int, dict[int, dict[str, float]]] = {}  # per episode: confirmed frame -> rewards

    # -- the worker's calls -------------------------------------------------------------

    def tick(self, now: float, keys: list[str] | None = None) -> None:
        """One display tick at ``now`` (host clock, seconds) with the keys held (default: the last ``act``'s)."""
        if self.done:
            return
        self._guard(lambda: self._tick(now, self.keys if keys is None else list(keys)))

    def receive(self, message: dict[str, Any]) -> None:
        """A message from the page: ``ready``, ``act``, ``peer`` or ``ai`` (module docstring); others are ignored."""
        kind = message.get("type")
        if kind == "peer":
            self._guard(lambda: self.peer.receive(str(message["from"]), message["message"]))
        elif kind == "visibility":
            self._visibility(bool(message.get("hidden")))
        elif kind == "reconnected" and str(message.get("peer")) in self.peer.remotes:  # the mesh's seats are peer ids
            self._guard(lambda: self.peer.reconnected(str(message["peer"])))
        elif kind == "seat_ai" and str(message.get("seat")) in self.peer.remotes:  # peer ids are seats
            self._guard(lambda: self.peer.lose_peer(str(message["seat"])))
        elif kind == "act":
            self.keys = [str(k) for k in message.get("keys") or []]
        elif kind == "ai":
            self._guard(lambda: self._provide_ai(message))
        elif kind == "ready":
            self._guard(self._ready)

    def provide_ai(self, seat: str, frame: int, action: Any, state: Any, epoch: int) -> bool:
        """The page's policy runtime acted for ``seat`` in ``frame`` (an ``ai_request``); ``state`` is its hidden
        state etc. after acting (digested into the record). Posts the AI requests this answer made due."""
        used = self.peer.provide_ai(seat, frame, action, digest(state), state, epoch=epoch)
        self._post_ai_requests()
        self._post_output()
        return used

    def hidden_seconds(self) -> float:
        """Seconds this page's tab has been hidden in the match so far (the page's ``visibility`` messages, timed
        by the tick clock); each agreed episode's statistics carry the part of it in that episode as ``hidden_s``."""
        since = self._hidden_since
        return self._hidden_total + (max(0.0, self._now - since) if since is not None else 0.0)

    # -- internals ----------------------------------------------------------------------

    def _visibility(self, hidden: bool) -> None:
        if hidden and self._hidden_since is None:
            self._hidden_since = self._now
        elif not hidden and self._hidden_since is not None:
            self._hidden_total, self._hidden_since = self.hidden_seconds(), None

    def _ready(self) -> None:
        meta = self.scene.client_metadata()
        meta["you"] = {"client_id": self.seat, "humans": [self.seat], "runs_policies": [], "policy_states": {}}
        self.post({"type": "scene", "scene": meta, "session_id": self.match_id}, [])
        if self.surface is not None:
            self.surface.resend()
        self._shown = None
        self._show()

    def _tick(self, now: float, keys: list[str]) -> None:
        self.keys, self._now = keys, now
        if self._rejoin and (self._asked is None or (self.peer.waiting_for_state and now - self._asked >= STATE_RETRY_S)):
            self.peer.request_state(self._stored_inputs)
            self._asked = now
        action, _ = self.keymap.action(keys)
        self.peer.add_local_input(self.seat, action)
        self._send(self.peer.advance(now))
        self._show()  # right after advance: the simulation holds the present state
        self._post_ai_requests()
        self._post_output()

    def _provide_ai(self, message: dict[str, Any]) -> None:
        self.provide_ai(
            str(message["seat"]), int(message["frame"]), message["action"], message.get("state"), int(message["epoch"])
        )

    def _send(self, out: list[tuple[str | None, str, dict[str, Any]]]) -> None:
        if out:
            self.post({"type": "peer", "messages": [[to, channel, message] for to, channel, message in out]}, [])

    def _post_ai_requests(self) -> None:
        requests = self.peer.ai_requests()
        if requests:
            self.post(
                {
                    "type": "ai_request",
                    "requests": [
                        {
                            "seat": r.seat,
                            "frame": r.frame,
                            "episode": r.episode,
                            "observation": r.observation,
                            "restore": r.restore,
                            "epoch": r.epoch,
                        }
                        for r in requests
                    ],
                },
                [],
            )

    def _post_output(self) -> None:
        """The peer's events, then its confirmed records, for the server; the page is told of agreed episode ends.
        Once the last episode's end is agreed, the peer's last control messages (its own episode report among
        them) go out, then ``p2p_done`` and ``scene_end``."""
        events, records = self.peer.take_events(), self.peer.take_records()
        for event in events:
            if event["type"] == "episode_end" and event.get("stats") is not None:
                hidden = self.hidden_seconds()
                event["stats"]["hidden_s"] = round(hidden - self._hidden_at_end, 3)
                self._hidden_at_end = hidden
        if events:
            self.post({"type": "p2p_events", "match_id": self.match_id, "events": events}, [])
        self._post_records(records)
        for event in (e for e in events if e["type"] == "episode_end"):
            episode = int(event["episode"])
            rewards: dict[str, float] = {}
            for step in self._rewards.pop(episode, {}).values():
                for agent, reward in step.items():
                    rewards[agent] = rewards.get(agent, 0.0) + float(reward)
            self.post(
                {
                    "type": "episode_end",
                    "scene_id": self.scene.scene_id,
                    "episode": episode,
                    "rewards": rewards,
                    "reason": "agreed",
                },
                [],
            )
            self._episodes_ended = max(self._episodes_ended, episode + 1)
        if self._episodes_ended >= self.scene.num_episodes and not self.done:
            self.done = True
            self._send(self.peer.advance(self._now))
            events = self.peer.take_events()
            if events:
                self.post({"type": "p2p_events", "match_id": self.match_id, "events": events}, [])
            self._post_records(self.peer.take_records())
            self.post({"type": "p2p_done", "match_id": self.match_id, "reason": "scene_end"}, [])
            self.post({"type": "scene_end", "scene_id": self.scene.scene_id}, [])

    def _post_records(self, records: list[FrameRecord]) -> None:
        for record in records:  # by frame: a frame confirmed again after a resync counts once
            if record.result.kind == "step":
                self._rewards.setdefault(record.result.episode, {})[record.frame] = dict(record.result.rewards)
        if records:
            self.post({"type": "p2p_frames", "match_id": self.match_id, "records": [r.to_dict() for r in records]}, [])

    def _show(self) -> None:
        """Post the display frame if it changed (a new frame, or a rollback re-simulated the present)."""
        shown = (self.peer.frame, self.peer.stats.rollbacks)
        if shown == self._shown:
            return
        self._shown = shown
        inner, display = self.sim.inner, self.peer.display
        env = inner.adapter.env
        if self.surface is not None and self.scene.draw is not None:
            self.scene.draw(env, self.surface)
            render: dict[str, Any] = {"kind": "surface", **self.surface.commit()}
        else:
            render = {"kind": "none"}
        step = inner.step_index
        episode = inner.episode if display is None or display.kind != "over" else display.episode
        hud = hud_line(self.scene, env, episode, step, self.sim.totals, inner.adapter.ids)
        frame = {"type": "frame", "scene_id": self.scene.scene_id, "episode": episode, "step": step, "render": render}
        self.post(frame | {"hud": hud, "observations": {}}, [])

    def _guard(self, call: Callable[[], Any]) -> None:
        """Run a call; an exception (the env, ``draw``, or a bug) stops the game and is reported to page and server."""
        if self.failure is not None:
            return
        try:
            call()
        except Exception as exc:
            self.failure, self.done = f"{type(exc).__name__}: {exc}", True
            self.post({"type": "error", "code": "engine_error", "message": self.failure, "fatal": True}, [])
            report = {"session_id": self.match_id, "episode": self.sim.inner.episode, "step": self.sim.inner.step_index}
            self.post({"type": "env_error", **report, "message": self.failure, "traceback": traceback.format_exc(limit=20)}, [])
