"""``ScenePreview``: a scene running live in the notebook, with the participant's view and a policy inspector.

The environment runs in the kernel through the same session engine as a
deployment; the front end is the participant client's game view (the same JS
runtime runs browser-side policies) plus an inspector. Messages travel as
anywidget custom messages with binary buffers.
"""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anywidget
import traitlets

from mug.jupyter import STATIC
from mug.scenes.policies import PolicySpec
from mug.session.clock import FrameClock
from mug.session.engine import GameSession
from mug.widgets.trace import Trace

if TYPE_CHECKING:
    from mug.scenes.gym_scene import GymScene

__all__ = ["ScenePreview"]

CLIENT = "preview"


class _NullTransport:
    def send(self, client_id: str, message: dict[str, Any], buffers: list[bytes]) -> None:
        pass


class _WidgetTransport:
    def __init__(self, widget: ScenePreview) -> None:
        self.widget = widget

    def send(self, client_id: str, message: dict[str, Any], buffers: list[bytes]) -> None:
        self.widget.send({"channel": "engine", **message}, buffers)


class ScenePreview(anywidget.AnyWidget):
    """A live preview of one :class:`~mug.GymScene` (``scene.preview()``).

    Play, pause, step and reset from the widget's buttons or from Python;
    keys pressed while the widget has focus drive Human agents. ``trace``
    fills with every step (observations, actions and sources, logits,
    probabilities, every hidden-state tensor, rewards, episode boundaries).
    """

    _esm = STATIC / "widget.js"
    playing = traitlets.Bool(False).tag(sync=True)
    speed = traitlets.Float(1.0).tag(sync=True)
    errors = traitlets.List(traitlets.Unicode()).tag(sync=True)
    status = traitlets.Unicode("").tag(sync=True)

    def __init__(self, scene: GymScene, *, autoplay: bool = False, speed: float = 1.0) -> None:
        super().__init__()
        scene.check_ready()
        self.scene = scene
        self.speed = speed
        self.trace = Trace({a: s.config.temperature for a, s in scene.policy_specs.items() if s.config is not None})
        self.session: GameSession | None = None
        self.frontend = False
        self.parity: dict[str, Any] | None = None
        self._autoplay = autoplay
        self._ticker: asyncio.Task | None = None
        self._recompute: list[tuple[dict[str, Any], list[bytes]]] = []
        self.on_msg(self._on_front_end)

    # -- lifecycle ----------------------------------------------------------------------

    def _start_session(self) -> None:
        scene = copy.copy(self.scene)
        scene.record_observations = True
        scene.record_policy_outputs = True
        self.session = GameSession(scene, [CLIENT], _WidgetTransport(self), self.trace, session_id="preview", host="preview")
        self.session.start()
        self._check_failure()

    def _check_failure(self) -> None:
        if self.session is not None and self.session.failure and self.session.failure not in self.errors:
            self.errors = [*self.errors, self.session.failure]

    def play(self) -> None:
        """Step at the scene's frame rate (times ``speed``) until paused or the scene ends."""
        self.playing = True
        if self._ticker is None or self._ticker.done():
            try:
                self._ticker = asyncio.get_running_loop().create_task(self._tick_loop())
            except RuntimeError:  # no running loop (plain Python): step on demand only
                self.playing = False

    def pause(self) -> None:
        """Stop stepping."""
        self.playing = False

    def step(self) -> bool:
        """One frame tick; returns whether the environment stepped."""
        if self.session is None:
            self._start_session()
        stepped = self.session.tick()  # type: ignore[union-attr]
        self._check_failure()
        return stepped

    def reset(self) -> None:
        """Start the scene again from its first episode (the trace keeps what it had)."""
        self.pause()
        self._start_session()

    async def _tick_loop(self) -> None:
        loop = asyncio.get_running_loop()
        clock = FrameClock(loop.time(), max_behind=0.25)  # a busy kernel: catch up a little, never burst
        while self.playing and self.session is not None and not self.session.done:
            self.step()
            await asyncio.sleep(clock.wait(1.0 / (self.scene.fps * max(self.speed, 0.01)), loop.time()))
        self.playing = False

    # -- front end ----------------------------------------------------------------------

    def _on_front_end(self, _widget: Any, content: dict[str, Any], buffers: list[Any]) -> None:
        kind = content.get("type")
        if kind == "control":
            action = content.get("action")
            if action == "play":
                self.play()
            elif action == "pause":
                self.pause()
            elif action == "step":
                self.step()
            elif action == "reset":
                self.reset()
            return
        if kind == "asset_request":
            self._send_asset(content.get("name", ""))
            return
        if kind == "recomputed":
            self._compare(content, buffers)
            return
        if kind == "client_error":
            self.errors = [*self.errors, str(content.get("message", ""))[:2000]]
        if kind == "ready" and self.session is None:
            self._start_session()
            if self._autoplay:
                self.play()
        elif self.session is not None:
            self.session.receive(CLIENT, content, [bytes(b) for b in buffers])
            self._check_failure()
        if kind == "ready":
            self.frontend = True
            if self._recompute:  # a rollout ran before the widget was on screen; the scene went first
                self.parity = {"ran": False, "reason": "JS comparison pending"}
                self._send_recompute()

    def _send_asset(self, name: str) -> None:
        """The ORT wasm (when the server extension is not there), a declared image or a browser-side policy's model."""
        prefix = f"assets/{self.scene.scene_id}/"  # the deployment's URL of a declared image
        image = self.scene.images.get(name[len(prefix) :]) if name.startswith(prefix) else None
        if name == "wasm":
            data = (STATIC / "ort-wasm-simd-threaded.wasm").read_bytes()
        elif image is not None:
            data = (self.scene.asset_dir / image).read_bytes()  # type: ignore[operator]
        else:
            path = next(
                (
                    Path(s.config.onnx_path)
                    for a, s in self.scene.policy_specs.items()
                    if s.config is not None and self.scene.model_path(a) == name
                ),
                None,
            )
            if path is None:
                known = [f"assets/{self.scene.scene_id}/{n}" for n in sorted(self.scene.images)]
                self.send({"channel": "asset", "name": name, "error": f"no model or declared image at {name!r}; images: {known}"})
                return
            data = path.read_bytes()
        self.send({"channel": "asset", "name": name}, [data])

    # -- rollouts -----------------------------------------------------------------------

    def rollout(self, steps: int, seed: int | None = None) -> Trace:
        """Step ``steps`` times at full speed with the Python runtime (Human agents take the default action).

        Returns a fresh :class:`Trace` of the rollout (also kept as ``self.rollout_trace``).
        With a front end connected, the browser runtime then recomputes every
        browser-side policy on the same observations and ``self.parity``
        receives the per-step max |Δ|; without one, ``self.parity`` says the JS
        comparison did not run.
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
        session = GameSession(scene, [CLIENT], _NullTransport(), trace, session_id="rollout", render=False)
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
        self.send(
            {"channel": "parity", "agent": agent, "max_delta": float(delta.max()), "differing_actions": differing},
            [delta.astype(np.float32).tobytes()],
        )

    def __repr__(self) -> str:
        return f"ScenePreview(scene={self.scene.scene_id!r}, steps={len(self.trace)})"
