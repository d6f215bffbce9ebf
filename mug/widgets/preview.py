"""``ScenePreview``: a scene running live in the notebook, with the participant's view and a policy inspector.

The environment runs in the kernel through the same session engine as a
deployment; the front end is the participant client's game view (the same JS
runtime runs browser-side policies) plus an inspector. Messages travel as
anywidget custom messages with binary buffers.

Live play takes every step on the browser runtime's result for that step's
observation: the kernel ticks at the scene's frame rate, and a tick whose
result has not arrived waits for it (the engine takes the step on arrival), up
to :data:`mug.session.engine.PREVIEW_WAIT_S`. So the achieved frame rate is what the comm round
trip allows; the widget shows it. One view drives the session: with the same
preview displayed twice, the view created or focused last sends the acts (the
others draw the same frames and run the same policies, passively).

A scene with several ``mug.Human`` agents is previewed with one seat per
Human agent (one session client each, as in a match): each view plays one
seat, chosen in its seat menu (a new view takes the first seat nobody plays
yet), so the researcher plays every seat from one view by switching, or from
two views side by side (``display(preview)`` again). ``seats=`` picks the
seats played from the notebook; ``others=`` plays the rest (``mug.Random``, a
``ModelConfig``, a callable).
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import anywidget
import traitlets

from mug.errors import ConfigError
from mug.jupyter import STATIC
from mug.scenes.policies import PolicySpec, check_model_fits, policy_spec
from mug.session.clock import FrameClock
from mug.session.engine import GameSession
from mug.session.envs import agent_key
from mug.widgets.assets import send_asset
from mug.widgets.trace import Trace

if TYPE_CHECKING:
    from mug.scenes.gym_scene import GymScene

__all__ = ["ScenePreview"]

#: The session client of the first seat (the only one of a scene with one Human agent, or none).
CLIENT = "preview"
#: Seconds :meth:`ScenePreview.parity_ready` waits for a front end to show the widget before it stops waiting.
FRONTEND_WAIT_S = 5.0
#: What :attr:`ScenePreview.status` can say.
STATUSES = ("not shown", "loading", "ready", "playing", "paused", "scene over", "stopped by an error")


class _NullTransport:
    def send(self, client_id: str, message: dict[str, Any], buffers: list[bytes]) -> None:
        pass


class _WidgetTransport:
    """Engine messages to the widget's views; the engine's errors go to ``ScenePreview.errors`` instead."""

    def __init__(self, widget: ScenePreview) -> None:
        self.widget = widget

    def send(self, client_id: str, message: dict[str, Any], buffers: list[bytes]) -> None:
        seat = self.widget._seat_of_client[client_id]
        if message["type"] == "error":  # one told to every seat is shown once
            self.widget._add_error(f"{message['code']}: {message['message']}")
            return
        if message["type"] == "scene":  # views tag their acts with it: acts of a replaced scene are dropped
            self.widget._generation[seat] = generation = self.widget._generation.get(seat, 0) + 1
            message = {**message, "generation": generation}
        self.widget.send({"channel": "engine", "seat": seat, **message}, buffers)


class ScenePreview(anywidget.AnyWidget):
    """A live preview of one :class:`~mug.GymScene` (``scene.preview()``).

    Play, pause, step and reset from the widget's buttons or from Python;
    keys pressed while the widget has focus drive Human agents. ``trace``
    fills with every step (observations, actions and sources, logits,
    probabilities, every hidden-state tensor, rewards, episode boundaries).

    Args:
        scene: a ready scene.
        autoplay: start playing as soon as the widget is shown.
        speed: multiplies the scene's frame rate.
        action_names: labels for the inspector's action bars: a list (every
            policy agent) or a dict of agent -> list, one name per action.
            By default the keys of ``action_mapping`` name the actions they map to.
        seats: the Human agents played from the notebook (env ids; default: every one). Each view
            plays one of them, picked in its seat menu.
        others: who plays the Human agents left out of ``seats``: a policy as in
            :meth:`GymScene.policies` (``mug.Random``, a ``ModelConfig``, a callable), or a dict of
            agent -> policy.

    Attributes:
        status: what the preview is doing, one of :data:`STATUSES` (``"scene over"``
            once the last episode ended; Reset plays the scene again).
        errors: every error shown in the widget's error box (scene faults, browser
            runtime errors, rejected messages), oldest first.
        parity: the JS-vs-Python comparison of the last :meth:`rollout` (see there).
        seats: the seats played from the notebook (env ids, in the scene's order of Human agents).
    """

    _esm = STATIC / "widget.js"
    playing = traitlets.Bool(False).tag(sync=True)
    speed = traitlets.Float(1.0).tag(sync=True)
    errors = traitlets.List(traitlets.Unicode()).tag(sync=True)
    status = traitlets.Unicode("not shown").tag(sync=True)
    _seats = traitlets.List(traitlets.Unicode()).tag(sync=True)  # seat keys ("" for a scene without Human agents)
    _view_seats = traitlets.Dict().tag(sync=True)  # view -> the seat it plays
    _drivers = traitlets.Dict().tag(sync=True)  # seat -> the view whose acts drive it
    _action_names = traitlets.Dict().tag(sync=True)

    def __init__(
        self,
        scene: GymScene,
        *,
        autoplay: bool = False,
        speed: float = 1.0,
        action_names: Sequence[str] | Mapping[str, Sequence[str]] | None = None,
        seats: Sequence[Any] | None = None,
        others: Any = None,
    ) -> None:
        super().__init__()
        scene.check_ready()
        self.scene = scene = _seated(scene, seats, others)
        keys = scene.humans or [""]
        self._seats = keys
        self.seats = [scene.agent_ids.get(k, k) for k in scene.humans]
        self._client_of_seat = {k: CLIENT if i == 0 else f"{CLIENT}:{k}" for i, k in enumerate(keys)}
        self._seat_of_client = {c: k for k, c in self._client_of_seat.items()}
        self.speed = speed
        self._action_names = _action_labels(scene, action_names)
        self.trace = Trace({a: s.config.temperature for a, s in scene.policy_specs.items() if s.config is not None})
        self.session: GameSession | None = None
        self.frontend = False  # a view has loaded ONNX Runtime and asked for the scene
        self.parity: dict[str, Any] | None = None
        self._shown = False  # a view has rendered (it may still be loading)
        self._autoplay = autoplay
        self._ticker: asyncio.Task | None = None
        self._recompute: list[tuple[dict[str, Any], list[bytes]]] = []
        self._parity_pending = 0  # browser-side agents whose JS re-evaluation has not come back
        self._generation: dict[str, int] = {}  # per seat: its latest scene message
        self.on_msg(self._on_front_end)

    # -- lifecycle ----------------------------------------------------------------------

    def _start_session(self) -> None:
        scene = copy.copy(self.scene)
        scene.record_observations = True
        scene.record_policy_outputs = True
        clients = list(self._client_of_seat.values())
        self.session = GameSession(scene, clients, _WidgetTransport(self), self.trace, session_id="preview", host="preview")
        self.session.start()
        self._update_status()

    def _add_error(self, text: str) -> None:
        if text not in self.errors:
            self.errors = [*self.errors, text]

    def _update_status(self) -> None:
        session = self.session
        if session is not None and session.failure:
            status = "stopped by an error"
        elif session is not None and session.done:
            status = "scene over"
        elif session is None:
            status = "loading" if self._shown else "not shown"
        else:
            status = "playing" if self.playing else ("paused" if session.episode or session.decision else "ready")
        self.status = status

    def play(self) -> None:
        """Step at the scene's frame rate (times ``speed``) until paused or the scene ends."""
        self.playing = True
        if self._ticker is None or self._ticker.done():
            try:
                self._ticker = asyncio.get_running_loop().create_task(self._tick_loop())
            except RuntimeError:  # no running loop (plain Python): step on demand only
                self.playing = False
        self._update_status()

    def pause(self) -> None:
        """Stop stepping."""
        self.playing = False
        self._update_status()

    def step(self) -> bool:
        """One frame tick; returns whether the environment stepped (``False`` once the scene is over:
        ``status`` then says ``"scene over"``)."""
        if self.session is None:
            self._start_session()
        stepped = self.session.tick()  # type: ignore[union-attr]
        self._update_status()
        return stepped

    def reset(self) -> None:
        """Start the scene again from its first episode (the trace keeps what it had)."""
        self.pause()
        self._start_session()

    async def _tick_loop(self) -> None:
        loop = asyncio.get_running_loop()
        clock = FrameClock(loop.time(), max_behind=0.25)  # a busy kernel: catch up a little, never burst
        period = 1.0 / (self.scene.fps * max(self.speed, 0.01))
        woke = planned = loop.time()
        while self.playing and self.session is not None and not self.session.done:
            if woke - planned < 0.5:
                self.step()
            # else the kernel was busy (another cell ran): the browser's result may be queued behind it, so the
            # wait deadline is not checked until that queue had its turn
            period = 1.0 / (self.scene.fps * max(self.speed, 0.01))
            delay = clock.wait(period, loop.time())
            planned = loop.time() + delay
            await asyncio.sleep(delay)
            woke = loop.time()
        self.playing = False
        self._update_status()

    # -- front end ----------------------------------------------------------------------

    def _on_front_end(self, _widget: Any, content: dict[str, Any], buffers: list[Any]) -> None:
        kind = content.get("type")
        view = str(content.get("view", ""))
        if kind == "shown":
            self._shown = True
            self._update_status()
            return
        if kind == "control":
            self._on_control(view, content.get("action"))
            return
        if kind == "asset_request":
            self._send_asset(content.get("name", ""))
            return
        if kind == "recomputed":
            self._compare(content, buffers)
            return
        if kind == "ready":
            self._on_view_ready(view, content)
            return
        seat = self._view_seats.get(view, self._seats[0])
        client = self._client_of_seat[seat]
        if kind == "client_error":
            self._add_error(str(content.get("message", ""))[:2000])
        if kind == "act":
            if not self._drivers.get(seat):
                self._drive(seat, view)
            if view != self._drivers.get(seat) or content.get("generation") != self._generation.get(seat):
                return  # a passive view's act, or one for a scene this preview has replaced
            if self.session is None or self.session.done:
                self._update_status()
                return  # the scene is over: a state, not an error
        if self.session is not None:
            self.session.receive(client, content, [bytes(b) for b in buffers])
        self._update_status()

    def _drive(self, seat: str, view: str) -> None:
        self._drivers = {**self._drivers, seat: view}

    def _on_view_ready(self, view: str, content: dict[str, Any]) -> None:
        """A view (re)loaded, or picked a seat (``seat``): it plays that seat (else the one it played, else the
        first seat nobody drives, else the first) and drives it (the newest view drives)."""
        self._shown = True
        asked = content.get("seat", self._view_seats.get(view))
        if asked not in self._seats:
            free = [k for k in self._seats if self._drivers.get(k) in (None, "", view)]
            asked = free[0] if free else self._seats[0]
        self._view_seats = {**self._view_seats, view: asked}
        self._drive(asked, view)
        if self.session is None:
            self._start_session()  # it sends the scene and the first frame to every seat
            if self._autoplay:
                self.play()
        else:
            self.session.receive(self._client_of_seat[asked], {"type": "ready"}, [])
        self.frontend = True
        if self._recompute:  # a rollout ran before the widget was on screen; the scene went first
            self.parity = {"ran": False, "reason": "JS comparison pending"}
            self._send_recompute()
        self._update_status()

    def _on_control(self, view: str, action: Any) -> None:
        if action == "play":
            self.play()
        elif action == "pause":
            self.pause()
        elif action == "step":
            self.step()
        elif action == "reset":
            self.reset()
        elif action == "drive":
            seat = self._view_seats.get(view, self._seats[0])
            handover = bool(self._drivers.get(seat)) and view != self._drivers[seat]
            self._drive(seat, view)
            if handover and self.session is not None and not self.session.done:
                # the old driver's act for the current step may be lost in flight: the seat's views get the scene
                # again with the policy state from before this step (as after a reconnect) and act on it anew
                self.session.receive(self._client_of_seat[seat], {"type": "ready"})
        elif action == "release":  # the view is gone: the next view to act on its seat drives it
            self._drivers = {k: v for k, v in self._drivers.items() if v != view}
            self._view_seats = {v: k for v, k in self._view_seats.items() if v != view}

    def _send_asset(self, name: str) -> None:
        send_asset(self, self.scene, name)

    # -- rollouts -----------------------------------------------------------------------

    def rollout(self, steps: int, seed: int | None = None) -> Trace:
        """Step ``steps`` times at full speed with the Python runtime (Human agents take the default action).

        Returns a fresh :class:`Trace` of the rollout (also kept as ``self.rollout_trace``).
        With a front end connected, the browser runtime then recomputes every
        browser-side policy on the same observations and ``self.parity``
        receives the per-step max |Δ|; without one, ``self.parity`` says the JS
        comparison did not run (it runs once the widget is shown). The comparison
        comes back while the kernel is free: read it in a later cell, or
        ``await preview.parity_ready()`` (see there) to wait for it.
        """
        scene = copy.copy(self.scene)
        if seed is not None:
            scene.seed = seed
        scene.num_episodes = 1_000_000
        scene.record_observations = scene.record_policy_outputs = True
        scene.step_mode = "realtime"
        scene.policy_specs = {
            a: PolicySpec(s.kind, "server", s.config, s.fn) if s.kind == "model" else s for a, s in scene.policy_specs.items()
        }
        trace = Trace(self.trace.temperatures)
        session = GameSession(
            scene, list(self._client_of_seat.values()), _NullTransport(), trace, session_id="rollout", render=False
        )
        session.start()
        while len(trace) < steps and not session.done:
            session.tick()
        if session.failure:
            raise RuntimeError(session.failure)
        self.rollout_trace = trace
        self.trace.extend(trace)
        browser_side = self.scene.browser_policies("preview")
        if not browser_side:
            self.parity = {"ran": False, "reason": "JS comparison did not run: the scene has no browser-side policy"}
            return trace
        observations = trace.observations
        resets = [i for kind, i in trace.boundaries if kind == "episode_start"]
        self._recompute = [
            (
                {
                    "channel": "recompute",
                    "agent": a,
                    "shape": list(observations[a].shape),
                    "resets": resets,
                    "seed": scene.policy_seed,
                },
                [observations[a].tobytes()],
            )
            for a in browser_side
        ]
        self._parity_pending = len(browser_side)
        if not self.frontend:
            self.parity = {
                "ran": False,
                "reason": "JS comparison did not run: no front end is connected (it runs once the widget is shown)",
            }
            return trace
        self.parity = {"ran": False, "reason": "JS comparison pending"}
        self._send_recompute()
        return trace

    def _send_recompute(self) -> None:
        for message, buffers in self._recompute:
            self.send(message, buffers)
        self._recompute = []

    def _compare(self, content: dict[str, Any], buffers: list[Any]) -> None:
        import numpy as np

        agent = content["agent"]
        trace = self.rollout_trace
        js_logits = np.frombuffer(bytes(buffers[0]), dtype=np.float32).reshape(len(trace), -1)
        js_actions = np.asarray(content["actions"])
        py_logits = trace.logits[agent]
        delta = np.abs(js_logits - py_logits).max(axis=1)
        differing = int((js_actions != trace.actions[agent]).sum())
        self.parity = {
            "ran": True,
            "agent": agent,
            "max_delta_per_step": delta,
            "max_delta": float(delta.max()),
            "differing_actions": differing,
            "diverged": bool(delta.max() > 1e-4 or differing),
        }
        self._parity_pending = max(0, self._parity_pending - 1)
        self.send(
            {"channel": "parity", "agent": agent, "max_delta": float(delta.max()), "differing_actions": differing},
            [delta.astype(np.float32).tobytes()],
        )

    async def parity_ready(self, timeout: float = 60.0) -> dict[str, Any] | None:
        """Wait until the browser's re-evaluation of the last :meth:`rollout` is in ``parity``; returns ``parity``.

        ``await preview.parity_ready()`` in a later cell (also under Run All, where the
        widget appears only after the rollout cell ran). Returns at once when there is
        nothing to wait for (no rollout, no browser-side policy, comparison done). When
        no front end shows the widget within :data:`FRONTEND_WAIT_S` seconds (as under
        nbval), it returns ``parity`` saying the JS comparison did not run.

        It must be awaited: the browser's answer arrives as a comm message, which the
        kernel dispatches while a cell awaits (ipykernel >= 7.4) but never during a
        blocking wait such as ``time.sleep``.

        Raises:
            TimeoutError: a front end is there but the comparison did not come back
                within ``timeout`` seconds.
        """
        loop = asyncio.get_running_loop()
        start = loop.time()
        while self._parity_pending:
            waited = loop.time() - start
            if not self._shown and waited >= FRONTEND_WAIT_S:
                break
            if waited >= timeout:
                raise TimeoutError(f"the browser's JS comparison did not come back within {timeout:g} s: {self.parity}")
            await asyncio.sleep(0.02)
        return self.parity

    def __repr__(self) -> str:
        return f"ScenePreview(scene={self.scene.scene_id!r}, steps={len(self.trace)})"


def _seated(scene: GymScene, seats: Sequence[Any] | None, others: Any) -> GymScene:
    """``scene``, or a copy in which the Human agents left out of ``seats`` are played by ``others``."""
    if seats is None:
        if others is not None:
            raise ConfigError("others: give seats=[...] too: others plays the Human agents left out of seats", field="others")
        return scene
    if isinstance(seats, (str, bytes)) or not isinstance(seats, Sequence) or not seats:
        raise ConfigError(f"seats: expected a non-empty list of Human agents, got {seats!r}", field="seats")
    humans = [scene.agent_ids.get(h, h) for h in scene.humans]
    chosen = [agent_key(scene.agent_ids, a, "seats") for a in seats]
    wrong = [scene.agent_ids.get(k, k) for k in chosen if k not in scene.humans]
    if wrong:
        raise ConfigError(
            f"seats: {wrong} are not mug.Human agents of scene {scene.scene_id!r}; its Human agents: {humans}", field="seats"
        )
    left = [k for k in scene.humans if k not in chosen]
    if not left:
        return scene
    if others is None:
        names = [scene.agent_ids.get(k, k) for k in left]
        raise ConfigError(
            f"others: nobody plays seat(s) {names}: give others=mug.Random, a ModelConfig or a callable", field="others"
        )
    by_agent = {agent_key(scene.agent_ids, a, "others"): v for a, v in others.items()} if isinstance(others, Mapping) else None
    specs = dict(scene.policy_specs)
    for key in left:
        agent = scene.agent_ids.get(key, key)
        if by_agent is not None and key not in by_agent:
            raise ConfigError(f"others: no policy for seat {agent!r}", field="others")
        spec = policy_spec(agent, by_agent[key] if by_agent is not None else others, "auto")
        if spec.kind == "human":
            raise ConfigError(f"others[{agent!r}]: mug.Human is a seat; list it in seats instead", field="others")
        if spec.kind == "model":
            check_model_fits(agent, spec.config, scene.action_space(key), scene.observation_space(key))  # type: ignore[arg-type]
        specs[key] = spec
    seated = copy.copy(scene)
    seated.policy_specs = specs
    return seated


def _action_labels(scene: GymScene, names: Sequence[str] | Mapping[str, Sequence[str]] | None) -> dict[str, list[str]]:
    """Per agent with a discrete action space: one label per action (``action_names``, else the mapped keys)."""
    labels: dict[str, list[str]] = {}
    by_agent = (  # keyed by the env's own ids, as everywhere researcher code names agents
        {agent_key(scene.agent_ids, a, "action_names"): v for a, v in names.items()} if isinstance(names, Mapping) else None
    )
    for agent in scene.agents:
        n = getattr(scene.action_space(agent), "n", None)
        if n is None:
            continue
        given = by_agent.get(agent) if by_agent is not None else names
        if given is None:
            keys: dict[int, list[str]] = {}
            for combo, action in scene.action_mapping.items():
                keys.setdefault(int(action), []).append(combo)
            labels[agent] = [" / ".join(keys.get(i, [])) for i in range(int(n))]
            continue
        given = list(given)
        if len(given) != int(n) or not all(isinstance(g, str) for g in given):
            raise ConfigError(
                f"action_names for agent {scene.agent_ids.get(agent, agent)!r}: expected {int(n)} names (one per action of {scene.action_space(agent)}),"
                f" got {given!r}",
                field="action_names",
            )
        labels[agent] = given
    return labels
