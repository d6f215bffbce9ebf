"""What the rollback core steps: the :class:`Simulation` protocol and :class:`EnvSimulation` over MUG's env adapter.

A simulation is deterministic: the same state and inputs give the same
result on every peer. Frame ``f``'s inputs are applied in step ``f``
(state ``S_f`` -> ``S_{f+1}``). Episode ends and resets are part of the
simulation: the step after a terminal step is a *reset step* that starts the
next episode with ``mug.session.engine.episode_seed(scene_seed, episode)``
and ignores that frame's inputs (the engine's loops in ``mug.browser.run``
reset the same way, between steps).
"""

from __future__ import annotations

import copy
import hashlib
import pickle
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from mug.errors import ConfigError
from mug.session.engine import episode_seed
from mug.session.envs import EnvAdapter
from mug.session.messages import jsonable
from mug.session.snapshots import has_state_protocol, observation_hash, restore_env, snapshot_env
from mug.session.snapshots import value_hash as digest

__all__ = ["EnvSimulation", "FrameResult", "Simulation", "digest"]


@dataclass(frozen=True)
class FrameResult:
    """What one step of a :class:`Simulation` gave.

    ``kind`` is ``"step"`` (the env stepped: ``step`` is the index of that step in
    ``episode``) or ``"reset"`` (the step after a terminal one: episode ``episode``
    began, ``step`` is 0, no rewards) or ``"over"`` (the last episode has ended;
    nothing changes). ``obs_hash`` is :func:`mug.session.snapshots.observation_hash`
    of the observations after the step.
    """

    kind: str
    episode: int
    step: int
    obs_hash: str
    rewards: dict[str, float] = field(default_factory=dict)
    terminated: dict[str, bool] = field(default_factory=dict)
    truncated: dict[str, bool] = field(default_factory=dict)

    @property
    def ended(self) -> bool:
        """Whether this step ended its episode (every agent terminated or truncated)."""
        return (
            self.kind == "step"
            and bool(self.terminated)
            and all(self.terminated[a] or self.truncated[a] for a in self.terminated)
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain data (records and benchmarks)."""
        return {
            "kind": self.kind,
            "episode": self.episode,
            "step": self.step,
            "obs_hash": self.obs_hash,
            "rewards": dict(self.rewards),
            "terminated": dict(self.terminated),
            "truncated": dict(self.truncated),
        }


class Simulation(Protocol):
    """A deterministic game the rollback core can step, snapshot and restore.

    Optionally it also has ``valid_action(seat, action) -> bool``: the peer then drops (as a bad message)
    a remote input outside the seat's action space, and refuses a local or AI one (``ValueError``).
    """

    def step(self, inputs: dict[str, Any]) -> FrameResult:
        """Apply one frame's inputs (one per seat) and return what happened."""
        ...

    def snapshot(self) -> Any:
        """The whole state now; :meth:`restore` returns to it (any number of times)."""
        ...

    def restore(self, state: Any) -> None:
        """Return to a :meth:`snapshot`."""
        ...

    def state_hash(self, state: Any = None) -> str:
        """A digest of ``state`` (a :meth:`snapshot`), or of the state now; equal on every peer for equal states."""
        ...

    def observation(self, seat: str) -> Any:
        """``seat``'s observation now (what an AI seat acts on); ``None`` once its episode ended (the next step
        is a reset step, or the simulation is over)."""
        ...


class EnvSimulation:
    """A :class:`Simulation` over :class:`mug.session.envs.EnvAdapter` and the env state protocol.

    Args:
        env_factory: makes the env (Gymnasium or PettingZoo Parallel); it is wrapped in an ``EnvAdapter``.
        scene_seed: episode ``e`` is reset with ``episode_seed(scene_seed, e)``.
        num_episodes: after this many episodes the simulation is over (``None``: no end).
        max_steps: an episode is cut (every agent truncated) after this many steps (``None``: the env decides).
        default_action: what a live agent without an input does.

        action_spaces: ``agent -> space`` with ``contains(action)`` (e.g. :class:`mug.browser.scene.PortableSpace`,
            in Pyodide where Gymnasium is not loaded); default: the adapter's action spaces.

    Snapshots are :func:`mug.session.snapshots.snapshot_env` of the env plus the
    episode counters and the last observations (as plain data). They are plain data (and can be
    sent to another peer as JSON) when the env has ``get_state``/``set_state``
    returning plain data. Without them the deep-copy fallback works within one process only, and
    :meth:`state_hash` pickles the env's attributes, which is not comparable across processes
    (attribute and set order may differ): the desync check between peers and state transfers need
    ``get_state``/``set_state``, and a ``UserWarning`` says so when such an env is wrapped.
    """

    def __init__(
        self,
        env_factory: Callable[[], Any],
        scene_seed: int,
        *,
        num_episodes: int | None = None,
        max_steps: int | None = None,
        default_action: Any = 0,
        action_spaces: Mapping[str, Any] | None = None,
    ) -> None:
        self.adapter = EnvAdapter(env_factory())
        if not has_state_protocol(self.adapter.env):
            warnings.warn(
                f"EnvSimulation: {type(self.adapter.env).__name__} has no get_state/set_state: its state hashes are "
                "comparable within one process only, so peers in other processes cannot check or repair desyncs",
                UserWarning,
                stacklevel=2,
            )
        self._spaces: dict[str, Any] = dict(action_spaces or {})
        self.scene_seed, self.num_episodes, self.max_steps = scene_seed, num_episodes, max_steps
        self.default_action = default_action
        self.episode, self.step_index, self._ended = 0, 0, False
        obs, _ = self.adapter.reset(episode_seed(scene_seed, 0))
        self._obs: dict[str, Any] = jsonable(obs)

    @property
    def ended(self) -> bool:
        """Whether the next step resets (or the last episode is over)."""
        return self._ended

    @property
    def over(self) -> bool:
        """Whether the last of ``num_episodes`` episodes has ended."""
        return self._ended and self.num_episodes is not None and self.episode + 1 >= self.num_episodes

    def step(self, inputs: dict[str, Any]) -> FrameResult:
        """One frame: an env step, or the reset after a terminal step (inputs ignored), or nothing once over."""
        if self.over:
            return FrameResult("over", self.episode, self.step_index, observation_hash(self._obs))
        if self._ended:
            self.episode += 1
            self.step_index, self._ended = 0, False
            obs, _ = self.adapter.reset(episode_seed(self.scene_seed, self.episode))
            self._obs = jsonable(obs)
            return FrameResult("reset", self.episode, 0, observation_hash(self._obs))
        live = self.adapter.live_agents()
        result = self.adapter.step({a: inputs.get(a, self.default_action) for a in live})
        index = self.step_index
        self.step_index += 1
        self._obs = jsonable(result.observations)  # a copy (an env may reuse its buffers), plain data for the wire
        terminated, truncated = dict(result.terminated), dict(result.truncated)
        if self.max_steps is not None and self.step_index >= self.max_steps:
            truncated = {a: not terminated.get(a, False) for a in terminated}
        out = FrameResult(
            "step", self.episode, index, observation_hash(result.observations), result.rewards, terminated, truncated
        )
        self._ended = out.ended or not self.adapter.live_agents()
        return out

    def snapshot(self) -> dict[str, Any]:
        """The env's snapshot, the counters and the last observations."""
        return {
            "env": snapshot_env(self.adapter.env),
            "episode": self.episode,
            "step": self.step_index,
            "ended": self._ended,
            "obs": self._obs,  # shared: ``_obs`` is replaced by every step, never changed in place
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Back to a :meth:`snapshot` (also one that came from another peer as JSON)."""
        restore_env(self.adapter.env, state["env"])
        self.episode, self.step_index, self._ended = int(state["episode"]), int(state["step"]), bool(state["ended"])
        self._obs = state["obs"]

    def state_hash(self, state: Any = None) -> str:
        """Digest of a snapshot (default: the state now): canonical JSON for plain-data env states, else pickle."""
        state = self.snapshot() if state is None else state
        if has_state_protocol(self.adapter.env):
            return digest(state)
        rest = {k: v for k, v in state.items() if k != "env"}
        return hashlib.sha256(pickle.dumps((state["env"].__dict__, digest(rest)), protocol=4)).hexdigest()[:16]

    def valid_action(self, seat: str, action: Any) -> bool:
        """Whether ``action`` is in ``seat``'s action space (``True`` when the env declares none or it cannot be
        loaded here)."""
        if seat not in self._spaces:
            try:
                self._spaces[seat] = self.adapter.action_space(seat) if seat in self.adapter.agents else None
            except (ConfigError, ImportError):
                self._spaces[seat] = None
        space = self._spaces[seat]
        if space is None or not hasattr(space, "contains"):
            return True
        try:
            return bool(space.contains(action))
        except (TypeError, ValueError):
            return False

    def observation(self, seat: str) -> Any:
        """A copy of ``seat``'s last observation as plain data (NumPy arrays as lists; ``None`` when the episode
        ended or the seat has none)."""
        if self._ended or seat not in self._obs:
            return None
        return copy.deepcopy(self._obs[seat])
