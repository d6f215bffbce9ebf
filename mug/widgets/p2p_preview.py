"""``P2PPreview``: a peer-to-peer scene tried in the notebook, one game view per Human seat, side by side.

``scene.preview()`` of a ``multiplayer(mode="p2p")`` scene returns one. Each Human seat is a real peer: the
page-side game of a P2P match (:class:`mug.browser.p2p_game.P2PGame`: the scene's env under a
:class:`~mug.netcode.RollbackPeer`, keys -> action, drawn on a ``Surface``), run here in the kernel instead
of a Pyodide worker. The peers' messages travel through a simulated network
(:class:`mug.netcode.simnet.SimNet`) whose latency, jitter and loss are set from Python or from the widget's
link controls, and can be changed while the scene plays. The keys held in a seat's view drive that seat (a
seat whose view does not have the focus holds no key; of several views of one preview, the focused one acts). AI seats run as in a P2P match: on the confirmed
timeline, each peer with its own :class:`~mug.inference.PolicyRuntime` of the seat's model (seeded with the
scene's ``policy_seed``), served by :class:`mug.netcode.ai.PolicyDriver`.

Time is the peers' own clock: every tick advances it by one frame (``1 / fps`` seconds), whether the tick
comes from live play (at the scene's frame rate times ``speed``) or from :meth:`P2PPreview.step`. So a link
latency of 100 ms is 100 ms of game time, and a run driven from Python is reproducible.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import anywidget
import traitlets

from mug.browser.p2p_game import P2PGame
from mug.errors import ConfigError
from mug.jupyter import STATIC
from mug.netcode.ai import PolicyDriver
from mug.netcode.records import AIRequest, FrameRecord, percentile
from mug.netcode.simnet import Link, SimNet
from mug.netcode.simulation import FrameResult
from mug.server.matches.p2p import HASH_INTERVAL  # hashes exchanged as often as in a deployed P2P match
from mug.session.clock import FrameClock
from mug.session.envs import agent_key
from mug.widgets.assets import send_asset
from mug.widgets.trace import Trace

if TYPE_CHECKING:
    from mug.scenes.gym_scene import GymScene

__all__ = ["P2PPreview"]

#: The match id of a preview's peers (in their specs and records).
MATCH_ID = "preview"
#: Ticks between two updates of the widget's statistics line (and at the end of every :meth:`P2PPreview.step`).
STATS_EVERY = 5


class _SeatRequests:
    """What :class:`~mug.netcode.ai.PolicyDriver` serves: one AI seat's requests posted by one peer's game,
    answered through the game (as the page's policy runtime answers them)."""

    def __init__(self, game: P2PGame) -> None:
        self.game = game
        self.pending: list[AIRequest] = []

    def ai_requests(self) -> list[AIRequest]:
        out, self.pending = self.pending, []
        return out

    def provide_ai(self, seat: str, frame: int, action: Any, state_digest: str | None, state: Any, *, epoch: int) -> None:
        self.game.receive({"type": "ai", "seat": seat, "frame": frame, "action": action, "state": state, "epoch": epoch})


def _plain_action(action: Any) -> Any:
    """A runtime's action (NumPy scalar or array) as the plain ints the peer's action check expects."""
    if hasattr(action, "tolist"):
        action = action.tolist()
    return [int(a) for a in action] if isinstance(action, (list, tuple)) else int(action)


class P2PPreview(anywidget.AnyWidget):
    """A live preview of a ``multiplayer(mode="p2p")`` scene: one rollback peer per Human seat (module docstring).

    Args:
        scene: a ready P2P scene (``runtime(environment="browser")``, 2 to 4 ``mug.Human`` agents).
        latency_ms, jitter_ms, loss: the simulated link, each direction between every two peers (jitter:
            uniform +/- around the latency; loss: the fraction of input packets lost, a lost control packet is
            retransmitted).
        autoplay: start playing as soon as the widget is shown.
        speed: multiplies the scene's frame rate in live play.
        seed: seeds the simulated network's random draws.

    Attributes:
        seats: the Human seats, one peer and one view each (env ids, in the scene's order).
        games: seat -> its :class:`~mug.browser.p2p_game.P2PGame` (``games[seat].peer`` is its RollbackPeer).
        histories: seat -> its peer's confirmed :class:`~mug.netcode.FrameRecord` s in frame order (what the
            server's record of the match is built from; every peer's must be the same).
        events: seat -> its peer's events (``desync``, ``resync``, ``episode_end`` with the episode's stats).
        traces: seat -> its :class:`Trace`: the confirmed steps, the rollback statistics per tick
            (``trace.netcode``) and per episode (``trace.netcode_episodes``).
        status: ``"ready"``, ``"playing"``, ``"paused"``, ``"scene over"`` or ``"stopped by an error"``.
        errors: every error shown in the widget, oldest first.
    """

    _esm = STATIC / "widget.js"
    _kind = traitlets.Unicode("p2p").tag(sync=True)
    playing = traitlets.Bool(False).tag(sync=True)
    speed = traitlets.Float(1.0).tag(sync=True)
    latency_ms = traitlets.Float(100.0).tag(sync=True)
    jitter_ms = traitlets.Float(0.0).tag(sync=True)
    loss = traitlets.Float(0.0).tag(sync=True)
    errors = traitlets.List(traitlets.Unicode()).tag(sync=True)
    status = traitlets.Unicode("ready").tag(sync=True)
    _seats = traitlets.List(traitlets.Unicode()).tag(sync=True)
    _stats = traitlets.Dict().tag(sync=True)  # seat -> the statistics line's numbers

    def __init__(
        self,
        scene: GymScene,
        *,
        latency_ms: float = 100.0,
        jitter_ms: float = 0.0,
        loss: float = 0.0,
        autoplay: bool = False,
        speed: float = 1.0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        scene.check_ready()
        if scene.multiplayer_options.mode != "p2p":
            raise ConfigError(
                f'P2PPreview: scene {scene.scene_id!r} is not a P2P scene; expected multiplayer(mode="p2p") '
                "(scene.preview() previews other scenes with ScenePreview)",
                field="mode",
            )
        self.scene = scene
        self._spec = scene.browser_spec() | {"session_id": MATCH_ID}
        self._seats = [str(k) for k in scene.humans]
        self.seats = [scene.agent_ids.get(k, k) for k in scene.humans]
        self._ai_keys = {str(a): a for a in scene.agents if a not in scene.humans}  # wire seat -> agent key
        self._ai_seats = list(self._ai_keys)
        for key in self._ai_keys.values():
            if scene.policy_specs[key].kind != "model":
                raise ConfigError(
                    f"P2PPreview: AI seat {scene.agent_ids.get(key, key)!r} is played by a "
                    f"{scene.policy_specs[key].kind} policy; a P2P match runs ONNX models (ModelConfig) only",
                    field="policies",
                )
        self._seed = seed
        self.speed = speed
        self._autoplay = autoplay
        self._ticker: asyncio.Task | None = None
        self.set_link(latency_ms=latency_ms, jitter_ms=jitter_ms, loss=loss)
        self.observe(self._on_link, names=["latency_ms", "jitter_ms", "loss"])
        self.on_msg(self._on_front_end)
        self._start()

    # -- the peers ----------------------------------------------------------------------

    def _start(self) -> None:
        """New peers and a new network, from the scene's first frame (``reset``)."""
        options = self.scene.multiplayer_options
        self.net = SimNet(default=self._link(), seed=self._seed)
        self.now = 0.0
        self.ticks = 0
        self.failure: str | None = None  # an AI seat's runtime failed (a game's own failure is its ``failure``)
        self.games: dict[str, P2PGame] = {}
        self.histories: dict[str, list[FrameRecord]] = {}
        self.events: dict[str, list[dict[str, Any]]] = {}
        self.traces: dict[str, Trace] = {}
        self._ai: dict[str, dict[str, tuple[_SeatRequests, PolicyDriver]]] = {}
        owners = {s: s for s in self._seats}
        for seat in self._seats:
            p2p = {
                "match_id": MATCH_ID,
                "seat": seat,
                "owners": owners,
                "ai_seats": self._ai_seats,
                "input_delay": options.input_delay,
                "max_prediction": options.max_prediction,
                "hash_interval": HASH_INTERVAL,
            }
            self.histories[seat], self.events[seat], self.traces[seat] = [], [], Trace()
            game = P2PGame(self._spec | {"p2p": p2p}, lambda message, buffers, seat=seat: self._route(seat, message, buffers))
            self.games[seat] = game
            self._ai[seat] = {a: (_SeatRequests(game), self._driver(a)) for a in self._ai_seats}
        self._send_stats()
        self._update_status()

    def _driver(self, seat: str) -> PolicyDriver:
        from mug.inference.runtime import PolicyRuntime

        config = self.scene.policy_specs[self._ai_keys[seat]].config
        runtime = PolicyRuntime(config, seed=self.scene.policy_seed, name=seat)  # type: ignore[arg-type]
        return PolicyDriver(runtime, act=_plain_action)

    def _route(self, seat: str, message: dict[str, Any], buffers: list[bytes]) -> None:
        """One message a peer's game posted: to the network, the AI runtimes, the record, or the seat's view."""
        kind = message["type"]
        if kind == "peer":
            for to, channel, body in message["messages"]:
                for other in [to] if to is not None else [s for s in self._seats if s != seat]:
                    self.net.send(self.now, seat, other, channel, body)
        elif kind == "ai_request":
            for request in message["requests"]:
                self._ai[seat][request["seat"]][0].pending.append(AIRequest(**request))
        elif kind == "p2p_frames":
            records = [_record(r) for r in message["records"]]
            self.histories[seat].extend(records)
            for record in records:
                self._trace_step(seat, record)
        elif kind == "p2p_events":
            for event in message["events"]:
                self.events[seat].append(event)
                if event["type"] == "resync":  # the peer confirms these frames again
                    self.histories[seat][:] = [r for r in self.histories[seat] if r.frame < event["frame"]]
                    self.traces[seat].clear_steps()
                    for record in self.histories[seat]:
                        self._trace_step(seat, record)
                elif event["type"] == "episode_end":
                    self.traces[seat].record("netcode_episode", {"episode": event["episode"], **event["stats"]})
        elif kind == "env_error":
            self._add_error(f"{seat}: {message['message']}\n{message.get('traceback', '')}".strip())
        elif kind != "p2p_done":  # scene, frame, episode_end, scene_end, error: for the seat's view
            if kind == "error":
                self._add_error(f"{seat}: {message['code']}: {message['message']}")
            self.send({"channel": "engine", "seat": seat, **message}, buffers)

    def _serve_ai(self) -> None:
        """Answer every due AI request of every peer (an answer can make the next one due). A runtime that
        raises stops the preview with the error (as a failing policy stops a P2P match's page)."""
        while self.failure is None and any(queue.pending for seats in self._ai.values() for queue, _ in seats.values()):
            for peer, seats in self._ai.items():
                for seat, (queue, driver) in seats.items():
                    try:
                        driver.serve(queue)  # type: ignore[arg-type]
                    except Exception as exc:
                        name = self.scene.agent_ids.get(self._ai_keys[seat], seat)
                        self.failure = f"the policy of AI seat {name!r} (peer {peer}) failed: {type(exc).__name__}: {exc}"
                        self._add_error(self.failure)
                        return

    def _trace_step(self, seat: str, record: FrameRecord) -> None:
        result, trace = record.result, self.traces[seat]
        if result.kind == "reset" or record.frame == 0:
            trace.record("episode_start", {"episode": result.episode})
        if result.kind != "step":
            return
        ids = self.scene.agent_ids
        sources = {ids.get(s, s): "human" if s in self._seats else "policy" for s in record.inputs}
        trace.record(
            "step",
            {
                "episode": result.episode,
                "frame": record.frame,
                "actions": {ids.get(s, s): a for s, a in record.inputs.items()},
                "sources": sources,
                "rewards": {ids.get(s, s): r for s, r in result.rewards.items()},
            },
        )

    def _tick(self, keys: Mapping[str, Sequence[str]] | None = None) -> None:
        """One frame of every peer: due packets delivered, each peer advanced with its seat's keys, AI served."""
        before = {seat: game.peer.stats.counts() for seat, game in self.games.items()}  # a delivery may count too
        for dst, src, body in self.net.deliver(self.now):
            self.games[dst].receive({"type": "peer", "from": src, "message": body})
        for seat, game in self.games.items():
            held = None if keys is None or seat not in keys else list(keys[seat])
            game.tick(self.now, held)
            self._serve_ai()
        for seat in self.games:
            self._trace_tick(seat, before[seat])
        self.ticks += 1
        self.now = self.ticks / float(self.scene.fps)
        if self.ticks % STATS_EVERY == 0:
            self._send_stats()

    def _trace_tick(self, seat: str, before: dict[str, Any]) -> None:
        peer, delta = self.games[seat].peer, self.games[seat].peer.stats.since(before)
        depths = delta.pop("depths")
        self.traces[seat].record(
            "netcode",
            {"tick": self.ticks, "frame": peer.frame, "confirmed": peer.confirmed, **delta, "depth": max(depths, default=0)},
        )

    # -- Python API ---------------------------------------------------------------------

    @property
    def done(self) -> bool:
        """Whether the preview is over: every peer's game ended (the scene, or an error), or an AI seat failed."""
        return self.failure is not None or all(g.done for g in self.games.values())

    def step(self, frames: int = 1, keys: Mapping[Any, Sequence[str]] | None = None) -> int:
        """Tick every peer ``frames`` times; returns how many ticks ran (fewer once the scene is over).

        ``keys``: seat (env id) -> the keys held in its view during these frames (e.g.
        ``{"agent_0": ["ArrowRight"]}``); a seat left out keeps what its view last held (none without a view).
        """
        held = None if keys is None else {str(agent_key(self.scene.agent_ids, a, "keys")): list(k) for a, k in keys.items()}
        ran = 0
        while ran < frames and not self.done:
            self._tick(held)
            ran += 1
        self._send_stats()
        self._update_status()
        return ran

    def set_link(self, *, latency_ms: float | None = None, jitter_ms: float | None = None, loss: float | None = None) -> None:
        """Change the simulated link between every two peers (also while playing; packets in flight keep theirs).
        Setting ``latency_ms``, ``jitter_ms`` or ``loss`` does the same for one of them."""
        values = {"latency_ms": latency_ms, "jitter_ms": jitter_ms, "loss": loss}
        given = {name: _checked_link(name, value) for name, value in values.items() if value is not None}
        with self.hold_trait_notifications():
            for name, value in given.items():
                setattr(self, name, value)

    @traitlets.validate("latency_ms", "jitter_ms", "loss")
    def _valid_link(self, proposal: Any) -> float:
        return _checked_link(proposal["trait"].name, proposal["value"])

    def _link(self) -> Link:
        return Link(latency_s=self.latency_ms / 1000.0, jitter_s=self.jitter_ms / 1000.0, loss=self.loss)

    def _on_link(self, change: dict[str, Any]) -> None:
        if hasattr(self, "net"):  # set_link in __init__ runs before the network exists
            self.net.default = self._link()

    def stats(self, seat: Any) -> dict[str, Any]:
        """``seat``'s peer statistics so far (:meth:`mug.netcode.PeerStats.to_dict`)."""
        return self.games[str(agent_key(self.scene.agent_ids, seat, "seat"))].peer.stats.to_dict()

    def play(self) -> None:
        """Tick at the scene's frame rate (times ``speed``) until paused or the scene ends."""
        self.playing = True
        if self._ticker is None or self._ticker.done():
            try:
                self._ticker = asyncio.get_running_loop().create_task(self._tick_loop())
            except RuntimeError:  # no running loop (plain Python): step() only
                self.playing = False
        self._update_status()

    def pause(self) -> None:
        """Stop ticking."""
        self.playing = False
        self._update_status()

    def reset(self) -> None:
        """Start the scene again with new peers and an empty network (the traces start afresh too)."""
        self.pause()
        self._start()
        for game in self.games.values():
            game.receive({"type": "ready"})

    async def _tick_loop(self) -> None:
        loop = asyncio.get_running_loop()
        clock = FrameClock(loop.time(), max_behind=0.25)
        while self.playing and not self.done:
            self._tick()
            self._update_status()
            await asyncio.sleep(clock.wait(1.0 / (self.scene.fps * max(self.speed, 0.01)), loop.time()))
        self.playing = False
        self._send_stats()
        self._update_status()

    # -- front end ----------------------------------------------------------------------

    def _on_front_end(self, _widget: Any, content: dict[str, Any], buffers: list[Any]) -> None:
        kind = content.get("type")
        seat = str(content.get("seat", ""))
        if kind == "ready":  # a view (re)loaded: every seat's scene and present frame
            for game in self.games.values():
                game.receive({"type": "ready"})
            self._send_stats()
            if self._autoplay:
                self._autoplay = False
                self.play()
        elif kind == "control":
            action = content.get("action")
            if action in ("play", "pause", "reset"):
                getattr(self, str(action))()
            elif action == "step":
                self.step()
        elif kind == "asset_request":
            send_asset(self, self.scene, str(content.get("name", "")))
        elif kind == "client_error":
            self._add_error(str(content.get("message", ""))[:2000])
        elif kind == "act" and seat in self.games:
            self.games[seat].receive({"type": "act", "keys": content.get("keys") or []})
        self._update_status()

    def _add_error(self, text: str) -> None:
        if text not in self.errors:
            self.errors = [*self.errors, text]

    def _update_status(self) -> None:
        if self.failure is not None or any(g.failure for g in self.games.values()):
            status = "stopped by an error"
        elif self.done:
            status = "scene over"
        elif self.playing:
            status = "playing"
        else:
            status = "paused" if self.ticks else "ready"
        self.status = status

    def _send_stats(self) -> None:
        """The statistics line of each seat's view."""
        out = {}
        for seat, game in self.games.items():
            peer, stats = game.peer, game.peer.stats
            out[seat] = {
                "frame": peer.frame,
                "confirmed": peer.confirmed,
                "rollbacks": stats.rollbacks,
                "depth_p50": percentile(stats.depths, 0.5),
                "depth_max": max(stats.depths, default=0),
                "resim_frames": stats.resim_frames,
                "stalls": stats.stalls,
                "desyncs": stats.desyncs,
                "resyncs": stats.resyncs,
            }
        self._stats = out

    def __repr__(self) -> str:
        return (
            f"P2PPreview(scene={self.scene.scene_id!r}, seats={self.seats}, latency_ms={self.latency_ms:g}, "
            f"jitter_ms={self.jitter_ms:g}, loss={self.loss:g}, ticks={self.ticks})"
        )


#: The largest value of each link setting.
LINK_LIMITS = {"latency_ms": 5000.0, "jitter_ms": 5000.0, "loss": 1.0}


def _checked_link(name: str, value: Any) -> float:
    """A link setting as a float; ``ConfigError`` naming it unless it is a number from 0 to its limit."""
    top = LINK_LIMITS[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= top:
        raise ConfigError(f"{name}: expected a number from 0 to {top:g}, got {value!r}", field=name)
    return float(value)


def _record(data: dict[str, Any]) -> FrameRecord:
    """A ``p2p_frames`` record back as a :class:`~mug.netcode.FrameRecord`."""
    result = FrameResult(**data["result"])
    return FrameRecord(data["frame"], data["inputs"], data["ai_digests"], result, data["state_hash"], data["chain"])
