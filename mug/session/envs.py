"""One multi-agent view of Gymnasium envs and PettingZoo-Parallel-style envs (duck-typed).

Agent ids: an env may name its agents with any hashable values (PettingZoo
allows ``0`` and ``1``). Inside MUG every agent is keyed by ``str(id)``, the
form it takes on the wire (messages to the browser) and in storage (records);
:attr:`EnvAdapter.ids` maps each such key back to the env's own id, which is
what the env is stepped with and what researcher code is given.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any

from mug.errors import ConfigError, did_you_mean

__all__ = ["DEFAULT_AGENT", "EnvAdapter", "EnvInfo", "StepResult", "agent_key", "infer_space", "inspect_env"]


#: The one agent of a single-agent Gymnasium env.
DEFAULT_AGENT = "agent_0"


class StepResult:
    """Per-agent dicts of what one environment step returned."""

    __slots__ = ("infos", "observations", "rewards", "terminated", "truncated")

    def __init__(self, observations: dict, rewards: dict, terminated: dict, truncated: dict, infos: dict) -> None:
        self.observations, self.rewards, self.terminated, self.truncated, self.infos = (
            observations,
            rewards,
            terminated,
            truncated,
            infos,
        )


def _wire_keys(ids: list[Hashable]) -> dict[str, Hashable]:
    """``str(id) -> id``; ``ConfigError`` when two ids are the same as text (``0`` and ``"0"``)."""
    keys: dict[str, Hashable] = {}
    for agent in ids:
        key = str(agent)
        if key in keys:
            raise ConfigError(
                f"env_creator: the environment's agents {keys[key]!r} and {agent!r} are both {key!r} as text; MUG sends and "
                "stores agent ids as strings, so every agent id must differ from the others as a string",
                field="env_creator",
            )
        keys[key] = agent
    return keys


def agent_key(ids: Mapping[str, Hashable], agent_id: Hashable, field: str) -> str:
    """The key (``str(id)``) of the env's agent ``agent_id``; ``ConfigError`` on ``field`` listing the env's ids."""
    for key, env_id in ids.items():
        if env_id == agent_id:
            return key
    if str(agent_id) in ids:
        hint = f" Did you mean {ids[str(agent_id)]!r}? Agents are named by the environment's own ids."
    else:
        hint = did_you_mean(str(agent_id), ids) if all(isinstance(i, str) for i in ids.values()) else ""
    raise ConfigError(f"{field}: the environment has no agent {agent_id!r}.{hint} Agents: {list(ids.values())}", field=field)


def _declared_space(env: Any, method: str, table: str, agent: Hashable) -> tuple[Any, str]:
    """``env.<method>(agent)`` or ``env.<table>[agent]``: ``(space, "")``, or ``(None, why)`` when the env declares none."""
    with warnings.catch_warnings():
        # PettingZoo's base class warns before it falls back on the dict; a published env cannot be changed here.
        warnings.filterwarnings("ignore", message="Your environment should override")
        try:
            lookup = getattr(env, method, None)
            space = lookup(agent) if callable(lookup) else getattr(env, table)[agent]
        except (AttributeError, KeyError, NotImplementedError) as exc:
            return None, f"{method}({agent!r}) raised {type(exc).__name__}: {exc}"
    return (space, "") if space is not None else (None, f"{method}({agent!r}) returned None")


class EnvAdapter:
    """Wraps a Gymnasium ``Env`` (one agent, called ``agent_0``) or a Parallel-API env.

    A Parallel-API env is recognised by ``possible_agents``; it takes and
    returns dicts keyed by agent (``reset`` returns ``(observations, infos)``,
    ``step`` returns ``(observations, rewards, terminations, truncations,
    infos)``), as PettingZoo's ``ParallelEnv`` does. PettingZoo itself is not needed.

    Every dict this adapter takes or returns is keyed by ``str(agent id)``
    (:attr:`agents`); :attr:`ids` maps those keys to the env's own ids.
    ``ConfigError`` if two ids are equal as strings.
    """

    def __init__(self, env: Any) -> None:
        self.env = env
        self.parallel = hasattr(env, "possible_agents")
        self.ids: dict[str, Hashable] = _wire_keys(list(env.possible_agents)) if self.parallel else {DEFAULT_AGENT: DEFAULT_AGENT}
        self.agents: list[str] = list(self.ids)

    def action_space(self, agent: str) -> Any:
        """The action space of ``agent``; ``ConfigError`` if the env declares none."""
        if not self.parallel:
            space, why = getattr(self.env, "action_space", None), "env.action_space is not set"
        else:
            space, why = _declared_space(self.env, "action_space", "action_spaces", self.ids[agent])
        if space is None:
            raise ConfigError(
                f"env_creator: the environment gives no action space for agent {self.ids[agent]!r} ({why}); "
                "MUG needs it to check and draw actions",
                field="env_creator",
            )
        return space

    def observation_space(self, agent: str) -> tuple[Any, str]:
        """``(space, "")``, or ``(None, why)`` when the env declares no observation space for ``agent``."""
        if not self.parallel:
            space = getattr(self.env, "observation_space", None)
            return (space, "") if space is not None else (None, "env.observation_space is not set")
        return _declared_space(self.env, "observation_space", "observation_spaces", self.ids[agent])

    def reset(self, seed: int) -> tuple[dict[str, Any], dict[str, Any]]:
        """Reset with ``seed``; per-agent observations and infos."""
        if self.parallel:
            obs, infos = self.env.reset(seed=seed)
            return {str(k): v for k, v in obs.items()}, {str(k): v for k, v in (infos or {}).items()}
        obs, info = self.env.reset(seed=seed)
        return {DEFAULT_AGENT: obs}, {DEFAULT_AGENT: info}

    def live_agents(self) -> list[str]:
        """Agents that act this step (a Parallel env drops finished agents from ``env.agents``)."""
        if self.parallel and hasattr(self.env, "agents"):
            return [str(a) for a in self.env.agents]
        return list(self.agents)

    def step(self, actions: dict[str, Any]) -> StepResult:
        """Step with one action per live agent."""
        if not self.parallel:
            obs, reward, terminated, truncated, info = self.env.step(actions[DEFAULT_AGENT])
            a = DEFAULT_AGENT
            return StepResult({a: obs}, {a: float(reward)}, {a: bool(terminated)}, {a: bool(truncated)}, {a: info})
        obs, rewards, terms, truncs, infos = self.env.step({self.ids[k]: v for k, v in actions.items()})
        s = str
        return StepResult(
            {s(k): v for k, v in obs.items()},
            {s(k): float(v) for k, v in rewards.items()},
            {s(k): bool(v) for k, v in terms.items()},
            {s(k): bool(v) for k, v in truncs.items()},
            {s(k): v for k, v in (infos or {}).items()},
        )

    def render(self) -> Any:
        """``env.render()``."""
        return self.env.render()

    def close(self) -> None:
        """Close the env if it can be closed."""
        close = getattr(self.env, "close", None)
        if callable(close):
            close()


def infer_space(value: Any) -> Any:
    """A Gymnasium space describing ``value``, an observation.

    A mapping becomes ``Dict``, a tuple ``Tuple``, anything array-like a ``Box``
    of its shape and dtype (unbounded floats; integers bounded by their dtype;
    booleans 0..1). ``ValueError`` for values that are none of these.
    """
    import numpy as np
    from gymnasium import spaces

    if isinstance(value, Mapping):
        return spaces.Dict({k: infer_space(v) for k, v in value.items()})
    if isinstance(value, tuple):
        return spaces.Tuple(tuple(infer_space(v) for v in value))
    array = np.asarray(value)
    if array.dtype.kind == "b":
        return spaces.Box(False, True, array.shape, dtype=np.bool_)
    if array.dtype.kind in "iu":
        info = np.iinfo(array.dtype)
        return spaces.Box(info.min, info.max, array.shape, dtype=array.dtype)
    if array.dtype.kind == "f":
        return spaces.Box(-np.inf, np.inf, array.shape, dtype=array.dtype)
    raise ValueError(f"cannot describe a {type(value).__name__} observation ({array.dtype}) as a Box, Dict or Tuple space")


def _difference(a: Any, b: Any) -> str | None:
    """Where two observations differ (``None`` if equal)."""
    if isinstance(a, Mapping) or isinstance(b, Mapping):
        if not (isinstance(a, Mapping) and isinstance(b, Mapping)) or set(a) != set(b):
            return "the observations have different keys"
        for k in a:
            d = _difference(a[k], b[k])
            if d is not None:
                return f"key {k!r}: {d}"
        return None
    if isinstance(a, tuple) and isinstance(b, tuple) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            d = _difference(x, y)
            if d is not None:
                return f"item {i}: {d}"
        return None
    import numpy as np

    x, y = np.asarray(a), np.asarray(b)
    if x.shape != y.shape:
        return f"shapes {list(x.shape)} and {list(y.shape)}"
    try:
        same = np.array_equal(x, y, equal_nan=x.dtype.kind in "fc")
    except TypeError:
        same = bool(np.all(x == y))
    if same:
        return None
    flat_x, flat_y = x.ravel(), y.ravel()
    differs = flat_x != flat_y
    if x.dtype.kind in "fc" and y.dtype.kind in "fc":
        differs &= ~(np.isnan(flat_x) & np.isnan(flat_y))
    index = int(np.argmax(differs))
    return f"value {index} (C order) is {flat_x[index]!r} after the first reset, {flat_y[index]!r} after the second"


@dataclass
class EnvInfo:
    """What a scene reads from one env before it runs (:func:`inspect_env`)."""

    ids: dict[str, Hashable]
    """``str(id) -> the env's id`` for every agent, in the env's order."""
    action_spaces: dict[str, Any]
    observation_spaces: dict[str, Any]
    time_limit: int | None
    """``max_episode_steps`` of a Gymnasium ``TimeLimit`` wrapper around the env, if any."""


def _time_limit(env: Any) -> int | None:
    import gymnasium
    from gymnasium.wrappers import TimeLimit

    while isinstance(env, gymnasium.Wrapper):
        if isinstance(env, TimeLimit):
            return int(env._max_episode_steps)
        env = env.env
    return None


def inspect_env(adapter: EnvAdapter, seed: int, *, check_determinism: bool = True) -> EnvInfo:
    """Read agents and spaces of ``adapter``'s env, resetting it with ``seed`` where needed.

    Observation spaces the env does not declare are inferred from a reset
    observation (:func:`infer_space`), with one warning saying so. With
    ``check_determinism`` the env is reset twice with ``seed``; different first
    observations raise ``ConfigError`` naming the agent and the value.
    """
    ids = adapter.ids
    actions = {a: adapter.action_space(a) for a in adapter.agents}
    declared = {a: adapter.observation_space(a) for a in adapter.agents}
    missing = [a for a, (space, _) in declared.items() if space is None]
    first: dict[str, Any] = {}
    if missing or check_determinism:
        try:
            first = copy.deepcopy(adapter.reset(seed)[0])  # a copy: an env may reuse its observation buffer
            second = adapter.reset(seed)[0] if check_determinism else first
        except Exception as exc:
            raise ConfigError(
                f"env_creator: env.reset(seed={seed}) failed: {type(exc).__name__}: {exc}", field="env_creator"
            ) from exc
        for agent in adapter.agents if check_determinism else ():
            where = "no observation" if (agent in first) != (agent in second) else None
            where = where or (_difference(first[agent], second[agent]) if agent in first else None)
            if where is not None:
                raise ConfigError(
                    f"env_creator: the environment is not deterministic: two resets with seed={seed} gave agent "
                    f"{ids[agent]!r} different first observations ({where}). MUG replays and records episodes by their "
                    "seed: make reset(seed=...) seed every random source the env uses, or pass check_determinism=False "
                    "to .environment() to accept it",
                    field="check_determinism",
                )
    spaces: dict[str, Any] = {a: space for a, (space, _) in declared.items()}
    if missing:
        for agent in missing:
            if agent not in first:
                raise ConfigError(
                    f"env_creator: the environment declares no observation space for agent {ids[agent]!r} "
                    f"({declared[agent][1]}) and reset() returned no observation for it",
                    field="env_creator",
                )
            try:
                spaces[agent] = infer_space(first[agent])
            except ValueError as exc:
                raise ConfigError(
                    f"env_creator: the environment declares no observation space for agent {ids[agent]!r} "
                    f"({declared[agent][1]}) and {exc}",
                    field="env_creator",
                ) from exc
        inferred = ", ".join(f"{ids[a]!r}: {spaces[a]}" for a in missing)
        warnings.warn(
            f"mug: the environment declares no observation space ({declared[missing[0]][1]}); "
            f"inferred from a reset observation: {inferred}",
            stacklevel=3,
        )
    return EnvInfo(dict(ids), actions, spaces, _time_limit(adapter.env))
