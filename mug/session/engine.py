"""``GameSession``: the one episode loop, shared by the notebook preview and the participant server.

The engine steps the environment, gathers each agent's action (a human's keys,
a browser-side policy's ``act``, a server-side policy, or a random draw),
renders, and records. It talks to its clients only through a
:class:`~mug.session.transport.Transport` and :mod:`~mug.session.messages`,
so it does not know whether a client is a widget or a web page.

The host drives time: ``receive()`` for every inbound message and ``tick()``
once per frame (``1 / fps`` seconds). In ``lockstep`` mode the env steps as
soon as every client has acted for the current step; ``tick()`` only applies
``act_timeout_s``. In ``realtime`` mode every ``tick()`` steps the env with
what has arrived: a human's held keys (else the default action), and each
server-side policy's action for the current observation.

No AI agent acts on an observation older than the step it acts in. A
browser-side policy in a realtime scene therefore holds the step back: a due
tick waits until that step's result has arrived (the step is then taken on
its arrival), up to ``act_timeout_s`` (default :data:`BROWSER_WAIT_S`; the
preview waits at least :data:`PREVIEW_WAIT_S`), after
the client has loaded its policies (its first ``act``; until then up to
:data:`LOAD_WAIT_S`). Past the deadline a deployment steps with the agent's
previous action, recorded with source ``late`` (the result, when it comes, is
recorded as a ``late_act`` event and not used); the notebook preview, which
exists to test the browser runtime, stops with an error instead.
"""

from __future__ import annotations

import copy
import functools
import logging
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from mug.errors import MugError, PolicyError
from mug.rendering.surface import Surface
from mug.session.hud import hud_line, returns_text
from mug.session.inputs import KeyMap, contains_action
from mug.session.messages import MAX_MESSAGE_BYTES, MessageError, decode_inbound, jsonable, np, tensor_ref
from mug.session.recording import Recorder
from mug.session.seeds import fnv1a32, seed_word
from mug.session.snapshots import observation_hash
from mug.session.transport import Transport

if TYPE_CHECKING:
    from mug.inference.runtime import PolicyRuntime
    from mug.scenes.gym_scene import GymScene

__all__ = ["BROWSER_WAIT_S", "LOAD_WAIT_S", "PREVIEW_WAIT_S", "GameSession", "episode_seed"]

log = logging.getLogger("mug.session")
#: Seconds a realtime step waits for a browser-side policy's result by default (``runtime(act_timeout_s=)``).
BROWSER_WAIT_S = 1.0
#: Seconds the notebook preview waits at least (a longer ``act_timeout_s`` counts) before a missing result
#: stops it: far above any healthy comm round trip, which also paces it.
PREVIEW_WAIT_S = 10.0
#: Seconds a client has to load its browser-side policies (ONNX Runtime and the models) before its first result.
LOAD_WAIT_S = 120.0


@functools.lru_cache(maxsize=4096)  # sessions of one scene share their seeds: a server computes each once
def episode_seed(scene_seed: int, episode: int) -> int:
    """The env seed of episode ``episode``: ``SeedSequence([scene_seed, episode])``'s first 32-bit word."""
    return seed_word((scene_seed, episode))


def _observation_ref(obs: Any, buffers: list[bytes]) -> dict[str, Any]:
    if isinstance(obs, dict):
        return {"dict": {str(k): tensor_ref(v if np is None else np.asarray(v), buffers) for k, v in obs.items()}}
    return tensor_ref(obs if np is None else np.asarray(obs), buffers)


class GameSession:
    """Runs one :class:`~mug.GymScene` for one group of clients.

    Args:
        scene: a ready scene (environment and policies set).
        clients: client ids; client *i* plays the scene's *i*-th Human agent.
            The first client also runs every browser-side (``client``) policy.
        transport: sends messages to clients.
        recorder: receives every event (optional).
        clock: seconds since the epoch (inject a fake one for reproducible records).
        session_id: recorded with every event.
        render: draw frames (``False`` for headless rollouts: frames then carry no image).
        host: ``"deployment"`` or ``"preview"``: decides where ``inference="auto"`` policies
            run (:meth:`~mug.GymScene.browser_policies`) and what a missing browser result means.
    """

    def __init__(
        self,
        scene: GymScene,
        clients: Sequence[str],
        transport: Transport,
        recorder: Recorder | None = None,
        *,
        clock: Callable[[], float] = time.time,
        session_id: str = "session",
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        render: bool = True,
        host: str = "deployment",
    ) -> None:
        scene.check_ready()
        humans = scene.humans
        if len(clients) != max(1, len(humans)) or len(set(clients)) != len(clients):
            raise MugError(
                f"scene {scene.scene_id!r} has {len(humans)} Human agent(s) {humans}; it needs {max(1, len(humans))} distinct client(s), got {list(clients)}"
            )
        self.scene, self.transport, self.recorder, self.clock = scene, transport, recorder, clock
        self._record_step_fn = getattr(recorder, "record_step", None)  # see Recorder
        self.session_id, self.max_message_bytes, self.render = session_id, max_message_bytes, render
        self.clients = list(clients)
        self.human_of = {c: [h] for c, h in zip(self.clients, humans)}
        self._client_of = {h: c for c, hs in self.human_of.items() for h in hs}
        self.host = host
        self.client_models = scene.browser_policies(host)
        self.runs_models = {c: (self.client_models if i == 0 else []) for i, c in enumerate(self.clients)}
        self.env = scene.make_env()
        self.keymap = KeyMap(scene.action_mapping, scene.default_action)
        self.surface = Surface(scene.width, scene.height, scene.images) if scene.render_mode == "surface" else None
        self._runtimes: dict[str, PolicyRuntime] = {}
        self._random_spaces: dict[str, Any] = {}  # this session's own copy of each mug.Random agent's space (and RNG)
        shared: dict[int, PolicyRuntime] = {}
        for agent, spec in scene.policy_specs.items():
            if spec.kind == "model" and agent not in self.client_models:
                from mug.inference.runtime import PolicyRuntime  # ONNX Runtime: only where a server-side model runs

                key = id(spec.config)
                if key not in shared:
                    shared[key] = PolicyRuntime(spec.config, seed=scene.policy_seed, name=agent)  # type: ignore[arg-type]
                self._runtimes[agent] = shared[key]
            elif spec.kind == "random":
                space = self._random_spaces[agent] = copy.deepcopy(scene.action_space(agent))
                space.seed(seed_word((scene.policy_seed, fnv1a32(agent))))
        self.episode = -1
        self.step_index = 0
        self.decision = 0
        self.done = False
        self.failure: str | None = None
        self.failure_traceback: str | None = None
        self._obs: dict[str, Any] = {}
        self._pending: dict[str, tuple[Any, dict[str, Any]]] = {}
        self._acted: set[str] = set()
        self._held: dict[str, list[str]] = {c: [] for c in self.clients}
        self._presses: dict[str, list[str]] = {c: [] for c in self.clients}
        self._previous: dict[str, Any] = {}
        self._totals: dict[str, float] = {}
        self._returns_text: tuple[tuple[float, ...], str] = ((), "")  # see _hud
        self._step_started = clock()
        self._due = False  # a realtime tick came while a browser-side result was still awaited
        self._loaded: set[str] = set()  # clients that have acted since they last (re)loaded the scene
        self._saved: dict[str, list[tuple[tuple[int, int], dict[str, Any]]]] = {}  # see _save_policy_state

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Send the scene to every client and begin the first episode."""
        self._record("scene_start", {"agents": self.scene.agents, "clients": self.clients, "seed": self.scene.seed})
        for runtime in set(self._runtimes.values()):
            runtime.boundary("scene")
        for client in self.clients:
            self._send_scene(client)
        self._begin_episode()

    def _send_scene(self, client: str) -> dict[str, Any]:
        """Send the scene; a client that runs policies also gets their saved states (returned) to resume from."""
        meta = self.scene.client_metadata(self.host)
        saved = {}
        for agent in self.runs_models[client]:
            before = [state for key, state in self._saved.get(agent, []) if key < (self.episode, self.decision)]
            if before:  # the state the agent had when it computed the step the client is about to get
                saved[agent] = before[-1]
        meta["you"] = {
            "client_id": client,
            "humans": self.human_of.get(client, []),
            "runs_policies": self.runs_models[client],
            "policy_states": {a: jsonable(state) for a, state in saved.items()},  # exact: JSON numbers round-trip float32/64
        }
        self.transport.send(client, {"type": "scene", "scene": meta, "session_id": self.session_id}, [])
        return saved

    def _begin_episode(self) -> None:
        self.episode += 1
        seed = episode_seed(self.scene.seed, self.episode)
        try:
            self._obs, _ = self.env.reset(seed)
        except Exception as exc:
            self._fail("env_error", f"env.reset(seed={seed}) failed: {type(exc).__name__}: {exc}")
            return
        self.step_index = self.decision = 0
        self._totals = dict.fromkeys(self.scene.agents, 0.0)
        self._previous = {}
        for agent, runtime in self._runtimes.items():
            runtime.boundary("episode", agent)
        self._record("episode_start", {"episode": self.episode, "seed": seed})
        self._send_frame()

    def interrupt(self, reason: str) -> None:
        """End the scene where it is (its participant left); recorded as an ``interrupted`` event."""
        if self.done:
            return
        self._record("interrupted", {"episode": self.episode, "steps": self.step_index, "reason": reason})
        self.done = True
        self.env.close()

    def _end_episode(self, reason: str) -> None:
        data = {"episode": self.episode, "steps": self.step_index, "rewards": dict(self._totals), "reason": reason}
        self._record("episode_end", data)
        self._broadcast({"type": "episode_end", "scene_id": self.scene.scene_id, **jsonable(data)})
        if self.episode + 1 < self.scene.num_episodes:
            self._begin_episode()
            return
        self.done = True
        self._record("scene_end", {"episodes": self.episode + 1})
        self._broadcast({"type": "scene_end", "scene_id": self.scene.scene_id})
        self.env.close()

    def _fail(self, code: str, message: str) -> None:
        """A fault of the scene itself (env, server policy, HUD): reported and the scene stops."""
        log.error("session %s, scene %s: %s", self.session_id, self.scene.scene_id, message)
        self.failure = message
        #: The Python traceback of the exception behind :attr:`failure` (``None`` if there was none).
        self.failure_traceback = traceback.format_exc(limit=20) if sys.exc_info()[0] is not None else None
        self.done = True
        self._record("error", {"code": code, "message": message, "fatal": True, "traceback": self.failure_traceback})
        self._broadcast({"type": "error", "code": code, "message": message, "fatal": True})

    # -- output -------------------------------------------------------------------------

    def _broadcast(self, message: dict[str, Any], buffers: list[bytes] | None = None) -> None:
        for client in self.clients:
            self.transport.send(client, message, list(buffers or []))

    def _render(self, buffers: list[bytes]) -> dict[str, Any]:
        if self.surface is not None:
            self.scene.draw(self.env.env, self.surface)  # type: ignore[misc]
            return {"kind": "surface", **self.surface.commit()}
        from mug.rendering.frames import encode_rgb  # NumPy: rgb frames only

        meta, data = encode_rgb(self.env.render(), self.scene.encoding)
        return {**meta, "buffer": tensor_buffer(data, buffers)}

    def _send_frame(self) -> None:
        shared: list[bytes] = []
        try:
            render = self._render(shared) if self.render else {"kind": "none"}
            hud = self._hud()
        except Exception as exc:
            self._fail("render_error", f"drawing the frame failed: {type(exc).__name__}: {exc}")
            return
        base = {
            "type": "frame",
            "scene_id": self.scene.scene_id,
            "episode": self.episode,
            "step": self.decision,
            "render": render,
            "hud": hud,
        }
        last = self.clients[-1]
        for client in self.clients:
            buffers = list(shared)
            observations = {a: _observation_ref(self._obs[a], buffers) for a in self.runs_models[client] if a in self._obs}
            message = base if client == last else dict(base)  # each client's own (the transport may keep it)
            message["observations"] = observations
            self.transport.send(client, message, buffers)
        self._step_started = self.clock()

    def _hud(self) -> str:
        """The frame's HUD line (:func:`mug.session.hud.hud_line`); the return text is formatted again only when a
        return changed (most steps reward nothing)."""
        totals = tuple(self._totals.values())
        if self.scene.hud is None and totals != self._returns_text[0]:
            self._returns_text = (totals, returns_text(self._totals))
        return hud_line(
            self.scene, self.env.env, self.episode, self.step_index, self._totals, self.env.ids, self._returns_text[1]
        )

    def _reject(self, client: str, code: str, message: str) -> None:
        log.warning("session %s: rejected a message from client %s: %s (%s)", self.session_id, client, message, code)
        self.transport.send(client, {"type": "error", "code": code, "message": message, "fatal": False}, [])

    def _record(self, kind: str, data: dict[str, Any]) -> None:
        if self.recorder is not None:
            self.recorder.record(
                kind, {"session_id": self.session_id, "scene_id": self.scene.scene_id, "time": self.clock(), **data}
            )

    # -- input --------------------------------------------------------------------------

    def receive(self, client: str, raw: Any, buffers: list[bytes] | None = None) -> None:
        """Handle one inbound message from ``client``. Never raises for a bad message: it gets an ``error`` reply."""
        try:
            message = decode_inbound(raw, buffers, max_bytes=self.max_message_bytes)
        except MessageError as exc:
            self._reject(client, exc.code, str(exc))
            return
        self.handle(client, message)

    def handle(self, client: str, message: dict[str, Any]) -> None:
        """Handle one inbound message already checked by :func:`~mug.session.messages.decode_inbound`."""
        if client not in self.human_of and client not in self.runs_models:
            log.warning("session %s: message from unknown client %r ignored", self.session_id, client)
            return
        try:
            if message["type"] == "ready":
                self._on_ready(client)
            elif message["type"] == "act":
                self._on_act(client, message)
            elif message["type"] == "client_error":
                log.warning("session %s: client %s reports: %r", self.session_id, client, message["message"])  # no forged lines
                self._record("client_error", {"client": client, "message": message["message"]})
            else:
                raise MessageError("wrong_scene", f"{message['type']!r} is not part of environment scene {self.scene.scene_id!r}")
        except MessageError as exc:
            self._reject(client, exc.code, str(exc))

    def _on_ready(self, client: str) -> None:
        """A (re)connected client: send it the scene and the current frame."""
        self._loaded.discard(client)  # it loads its policies again before it can act
        saved = self._send_scene(client)
        if saved:
            self._record(
                "policy_restored",
                {
                    "client": client,
                    "episode": self.episode,
                    "step": self.decision,
                    "agents": {a: {"episode": st["episode"], "step": st["step"]} for a, st in saved.items()},
                },
            )
        if not self.done:
            if self.surface is not None:
                self.surface.resend()
            self._send_frame()

    def _on_act(self, client: str, message: dict[str, Any]) -> None:
        if self.done:
            raise MessageError("scene_over", f"scene {self.scene.scene_id!r} is over; no more actions are taken")
        step, episode = message["step"], message["episode"]
        if episode is not None and episode > self.episode:
            raise MessageError("future_step", f"act for episode {episode}, but the scene is in episode {self.episode}")
        late = step < self.decision or (episode is not None and episode < self.episode)
        if late and self.scene.step_mode != "realtime":
            raise MessageError("stale_step", f"act for step {step} arrived after the scene moved on to step {self.decision}")
        if step > self.decision and not late:
            raise MessageError("future_step", f"act for step {step}, but the scene is at step {self.decision}")
        policies = message["policies"]  # the results of the client's browser-side agents (most scenes have none)
        if policies:
            allowed = self.runs_models[client]
            for agent, result in policies.items():
                if agent not in allowed:
                    raise MessageError(
                        "unknown_agent", f"client {client!r} does not run a policy for agent {agent!r}; it runs {allowed}"
                    )
                space = self.scene.action_space(agent)
                action = result["action"]
                if not contains_action(space, action):
                    raise MessageError("bad_action", f"action {action!r} for agent {agent!r} is not in its action space {space}")
            if np is not None:  # without NumPy (Pyodide) the server checks what it stores
                from mug.session.act_checks import check_policy_result

                unfit = []
                for agent, result in policies.items():
                    try:  # logits/states as the model makes them, before they are stored
                        check_policy_result(self.scene, agent, result)
                    except MessageError as exc:  # the action stands (checked above): only the tensors are left out
                        result["logits"], result["states"], result["rng"] = None, {}, None
                        unfit.append(str(exc))
                if unfit:
                    self._reject(client, "bad_tensor", "; ".join(unfit))
                    self._record("bad_tensor", {"client": client, "episode": episode, "step": step, "problems": unfit})
        self._take_keys(client, message["keys"])
        self._loaded.add(client)
        for agent, result in policies.items():
            self._save_policy_state(agent, self.episode if episode is None else episode, step, result)
        if message.get("dropped"):
            self._record("frames_dropped", {"client": client, "episode": episode, "step": step, "count": message["dropped"]})
        if late:  # realtime: keys count now; a result past its step's deadline is recorded, never acted on
            for agent, result in policies.items():
                self._record("late_act", {"agent": agent, "episode": episode, "step": step, "action": result["action"]})
            return
        for agent, result in policies.items():
            self._pending[agent] = (result["action"], result)
        self._acted.add(client)
        if self.scene.step_mode == "lockstep":
            if self._everyone_acted():
                self._advance()
        elif self._due and not self._awaited():
            self._advance()

    def _save_policy_state(self, agent: str, episode: int, step: int, result: dict[str, Any]) -> None:
        """Keep a browser-side agent's state after ``step`` (hidden state, sampling stream, step count).

        The latest two are kept: a client that reconnects gets the one from before the
        step it is sent (it may have acted on that step already, and acts on it again).
        """
        if result.get("rng") is None:
            return
        state = {
            "episode": episode,
            "step": step,
            "rng": result["rng"],
            "steps": result["steps"],
            "states": {name: {"data": t.reshape(-1), "dims": list(t.shape)} for name, t in result["states"].items()},
        }
        kept = [entry for entry in self._saved.get(agent, []) if entry[0] < (episode, step)]
        self._saved[agent] = [*kept[-1:], ((episode, step), state)]

    def _take_keys(self, client: str, keys: list[str]) -> None:
        """Take a client's keys: held keys now, or new presses queued (single_keystroke)."""
        if self.scene.input_mode == "single_keystroke":
            self._presses[client].extend(keys)
        self._held[client] = keys

    def _everyone_acted(self) -> bool:
        return all(c in self._acted for c in self.clients if self.human_of.get(c) or self.runs_models[c])

    def restart_wait(self) -> None:
        """The current frame reaches its clients only now (a host held it back, e.g. while its store could not
        commit): the wait for this step's acts (``act_timeout_s``) starts again."""
        self._step_started = self.clock()

    @property
    def acts_at_once(self) -> bool:
        """Whether an ``act`` should reach the engine as soon as it arrives, rather than with the next tick: in a
        lockstep scene (acts step the env), and while a due realtime step waits for a browser-side result."""
        return self.scene.step_mode == "lockstep" or self._due

    def _awaited(self) -> list[str]:
        """Browser-side agents whose result for the current step has not arrived."""
        return [a for a in self.client_models if a in self._obs and a not in self._pending]

    def _wait_limit(self) -> float:
        if self.clients[0] not in self._loaded:  # the first client runs every browser-side policy
            return LOAD_WAIT_S
        asked = self.scene.act_timeout_s
        if self.host == "preview":
            return max(asked or 0.0, PREVIEW_WAIT_S)
        return asked if asked is not None else BROWSER_WAIT_S

    def tick(self) -> bool:
        """One frame tick; returns whether the env stepped."""
        if self.done:
            return False
        if self.scene.step_mode == "realtime":
            awaited = self._awaited()
            if awaited:
                limit = self._wait_limit()
                if self.clock() - self._step_started < limit:
                    self._due = True  # taken as soon as the result arrives
                    return False
                if self.host == "preview":
                    self._fail(
                        "no_policy_result",
                        f"the browser runtime sent no result for agent(s) {awaited} at step {self.decision} of episode "
                        f"{self.episode} within {limit:g} s",
                    )
                    return False
            self._advance()
            return True
        timeout = self.scene.act_timeout_s
        if timeout is not None and self.clock() - self._step_started >= timeout:
            self._advance()
            return True
        return False

    # -- stepping -----------------------------------------------------------------------

    def _choose(self) -> tuple[dict[str, Any], dict[str, str], dict[str, dict[str, Any]]]:
        actions, sources, outputs = {}, {}, {}
        live = set(self.env.live_agents())
        lockstep = self.scene.step_mode == "lockstep"
        for agent, spec in self.scene.policy_specs.items():
            if agent not in live:
                continue
            if spec.kind == "human":
                client = self._client_of[agent]
                if lockstep and client not in self._acted:
                    action, matched = self.scene.default_action, False
                elif self.scene.input_mode == "single_keystroke":
                    presses = self._presses[client]
                    action, matched = self.keymap.action([presses.pop(0)] if presses else [])
                else:
                    action, matched = self.keymap.action(self._held[client])
                actions[agent], sources[agent] = action, "human" if matched else "default"
            elif agent in self.client_models:
                if agent in self._pending:
                    action, result = self._pending[agent]
                    actions[agent], sources[agent] = action, "policy"
                    outputs[agent] = {"logits": result["logits"], "states": result["states"]}
                elif not lockstep:  # its deadline passed (see tick)
                    actions[agent], sources[agent] = self._previous.get(agent, self.scene.default_action), "late"
                else:
                    actions[agent], sources[agent] = self.scene.default_action, "default"
            elif spec.kind == "model":
                out = self._runtimes[agent].step(self._obs[agent], agent)
                actions[agent], sources[agent] = out.action, "server_policy"
                outputs[agent] = {"logits": out.logits, "states": out.states}
            elif spec.kind == "callable":
                env_id = self.env.ids[agent]  # researcher code gets the env's own agent id
                action = spec.fn(self._obs[agent], env_id)  # type: ignore[misc]
                if not contains_action(self.scene.action_space(agent), action):
                    raise PolicyError(
                        f"policy of agent {env_id!r} returned {action!r}, not an action of {self.scene.action_space(agent)}",
                        policy=agent,
                    )
                actions[agent], sources[agent] = action, "server_policy"
            else:
                actions[agent], sources[agent] = self._random_spaces[agent].sample(), "random"
        return actions, sources, outputs

    def _advance(self) -> None:
        try:
            actions, sources, outputs = self._choose()
        except Exception as exc:
            self._fail("policy_error", f"choosing actions at step {self.decision} failed: {type(exc).__name__}: {exc}")
            return
        self._pending.clear()
        self._acted.clear()
        self._due = False
        self._previous.update(actions)
        scene, ended = self.scene, None
        for repeat in range(scene.frame_skip):
            observed = self._obs
            try:
                result = self.env.step(
                    {a: v for a, v in actions.items() if a in set(self.env.live_agents())} if repeat else actions
                )
            except Exception as exc:
                self._fail("env_error", f"env.step failed at step {self.step_index}: {type(exc).__name__}: {exc}")
                return
            self.step_index += 1
            truncated = result.truncated  # the adapter's own dict (replaced, not changed, below)
            if scene.max_steps is not None and self.step_index >= scene.max_steps:
                truncated = dict.fromkeys(truncated or scene.agents, True)
            for agent, reward in result.rewards.items():
                self._totals[agent] = self._totals.get(agent, 0.0) + reward
            self._record_step(observed, actions, sources, outputs if repeat == 0 else {}, result, truncated)
            self._obs = result.observations
            terminated = result.terminated
            if self.env.parallel:
                finished = not self.env.live_agents() or all(terminated.get(a) or truncated.get(a) for a in terminated)
            else:
                finished = any(terminated.values()) or any(truncated.values())
            if finished:
                ended = "terminated" if any(terminated.values()) else "truncated"
                break
        self.decision += 1
        if ended is not None:
            self._end_episode(ended)
        else:
            self._send_frame()

    def _record_step(self, observed, actions, sources, outputs, result, truncated) -> None:
        if self.recorder is None:
            return
        scene = self.scene
        data: dict[str, Any] = {
            "decision": self.decision,
            "actions": actions,
            "sources": sources,
            "rewards": result.rewards,
            "terminated": result.terminated,
            "truncated": truncated,
        }
        if scene.hash_observations:  # browser-side scenes: verification re-simulates and compares
            data["obs_hash"] = observation_hash(result.observations)
        if scene.record_infos:
            data["infos"] = jsonable(result.infos)  # converted now: an env may change its info dicts later
        if scene.record_observations:
            data["observations"] = jsonable(observed)
        if scene.record_policy_outputs and outputs:
            data["policy_outputs"] = outputs  # read-only arrays (runtime outputs, message buffers): safe to keep
        if self._record_step_fn is not None:  # the recorder takes the step's fields apart from the event's (no copy)
            self._record_step_fn(self.episode, self.step_index - 1, self.clock(), data)
            return
        self.recorder.record(
            "step",
            {
                "session_id": self.session_id,
                "scene_id": scene.scene_id,
                "time": self.clock(),
                "episode": self.episode,
                "step": self.step_index - 1,
                **data,
            },
        )


def tensor_buffer(data: bytes, buffers: list[bytes]) -> int:
    """Append ``data`` to ``buffers`` and return its index."""
    buffers.append(data)
    return len(buffers) - 1
