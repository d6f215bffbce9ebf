"""One multi-agent view of Gymnasium envs and PettingZoo-Parallel-style envs (duck-typed)."""

from __future__ import annotations

from typing import Any

from mug.inference.runtime import DEFAULT_AGENT

__all__ = ["EnvAdapter", "StepResult"]


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


class EnvAdapter:
    """Wraps a Gymnasium ``Env`` (one agent, called ``agent_0``) or a Parallel-API env.

    A Parallel-API env is recognised by ``possible_agents``; it takes and
    returns dicts keyed by agent (``reset`` returns ``(observations, infos)``,
    ``step`` returns ``(observations, rewards, terminations, truncations,
    infos)``), as PettingZoo's ``ParallelEnv`` does. PettingZoo itself is not needed.
    """

    def __init__(self, env: Any) -> None:
        self.env = env
        self.parallel = hasattr(env, "possible_agents")
        self.agents: list[str] = [str(a) for a in env.possible_agents] if self.parallel else [DEFAULT_AGENT]
        self._keys = {str(a): a for a in env.possible_agents} if self.parallel else {}

    def action_space(self, agent: str) -> Any:
        """The action space of ``agent``."""
        if not self.parallel:
            return self.env.action_space
        space = self.env.action_space
        return space(self._keys[agent]) if callable(space) else self.env.action_spaces[self._keys[agent]]

    def observation_space(self, agent: str) -> Any:
        """The observation space of ``agent``."""
        if not self.parallel:
            return self.env.observation_space
        space = self.env.observation_space
        return space(self._keys[agent]) if callable(space) else self.env.observation_spaces[self._keys[agent]]

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
        obs, rewards, terms, truncs, infos = self.env.step({self._keys[k]: v for k, v in actions.items()})
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
