"""``PyCoinGrid``: a pure-Python two-agent coin gridworld for browser-side scenes (no NumPy, no Gymnasium).

The same game as :class:`mug.examples.CoinGrid` in plain Python, so that it
runs in Pyodide offline: observations are lists of floats (own and partner's
position scaled to [0, 1], then the coin map), actions 0 stay, 1 up, 2 down,
3 left, 4 right, a shared reward of 1 per coin. It follows the env state
protocol (``get_state``/``set_state``) and comes with :func:`draw` for
``rendering(mode="surface", draw=draw)``.

Its action and observation spaces are Gymnasium spaces, built on request:
CPython reads them when the scene is built (the browser gets a portable
description), the browser never asks.
"""

from __future__ import annotations

import random
from typing import Any

__all__ = ["PyCoinGrid", "draw"]

MOVES = ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1))
COLORS = {"agent_0": "#1f77b4", "agent_1": "#d62728"}


class PyCoinGrid:
    """The environment (see module docstring); PettingZoo Parallel API."""

    def __init__(self, size: int = 5, coins: int = 4, max_steps: int = 100) -> None:
        if size < 2 or not 1 <= coins <= size * size - 2:
            raise ValueError(f"PyCoinGrid: need size >= 2 and 1 <= coins <= size*size - 2, got size={size}, coins={coins}")
        self.size, self.n_coins, self.max_steps = size, coins, max_steps
        self.possible_agents = ["agent_0", "agent_1"]
        self.agents: list[str] = []
        self.positions: dict[str, list[int]] = {}
        self.coins: list[list[int]] = []
        self.steps = 0
        self._rng = random.Random(0)

    def action_space(self, agent: str) -> Any:
        from gymnasium import spaces

        return spaces.Discrete(5)

    def observation_space(self, agent: str) -> Any:
        from gymnasium import spaces

        return spaces.Box(0.0, 1.0, (4 + self.size * self.size,), "float64")

    def _observe(self, agent: str) -> list[float]:
        other = "agent_1" if agent == "agent_0" else "agent_0"
        scale = self.size - 1
        head = [v / scale for v in (*self.positions[agent], *self.positions[other])]
        taken = {tuple(c) for c in self.coins}
        return head + [1.0 if (r, c) in taken else 0.0 for r in range(self.size) for c in range(self.size)]

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict[str, list[float]], dict[str, dict]]:
        self._rng = random.Random(seed)
        self.agents = list(self.possible_agents)
        cells = [[r, c] for r in range(self.size) for c in range(self.size)]
        picked = self._rng.sample(cells, self.n_coins + 2)
        self.positions = {"agent_0": picked[0], "agent_1": picked[1]}
        self.coins = sorted(picked[2:])
        self.steps = 0
        return {a: self._observe(a) for a in self.agents}, {a: {} for a in self.agents}

    def step(self, actions: dict[str, int]) -> tuple[dict, dict, dict, dict, dict]:
        reward = 0.0
        for agent in self.agents:
            dr, dc = MOVES[int(actions.get(agent, 0))]
            r, c = self.positions[agent]
            self.positions[agent] = [min(max(r + dr, 0), self.size - 1), min(max(c + dc, 0), self.size - 1)]
            if self.positions[agent] in self.coins:
                self.coins.remove(self.positions[agent])
                reward += 1.0
        self.steps += 1
        done = not self.coins
        truncated = self.steps >= self.max_steps
        obs = {a: self._observe(a) for a in self.agents}
        rewards = dict.fromkeys(self.agents, reward)
        terms = dict.fromkeys(self.agents, done)
        truncs = dict.fromkeys(self.agents, truncated and not done)
        if done or truncated:
            self.agents = []
        return obs, rewards, terms, truncs, {a: {"coins_left": len(self.coins)} for a in obs}

    def get_state(self) -> dict[str, Any]:
        """Plain data: positions, coins, step count and live agents (only ``reset`` draws random numbers, and it
        reseeds, so the RNG is not part of the state a step depends on)."""
        return {
            "positions": {a: list(p) for a, p in self.positions.items()},
            "coins": [list(c) for c in self.coins],
            "steps": self.steps,
            "agents": list(self.agents),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        """Back to a :meth:`get_state` value."""
        self.positions = {a: list(p) for a, p in state["positions"].items()}
        self.coins = [list(c) for c in state["coins"]]
        self.steps, self.agents = state["steps"], list(state["agents"])


def draw(env: PyCoinGrid, surface: Any) -> None:
    """Draw the grid, the coins and both agents on a :class:`~mug.rendering.Surface`."""
    cell = min(surface.width, surface.height) / env.size
    surface.clear()  # persistent objects: only what changed (a coin taken, an agent moved) travels
    for r, c in env.coins:
        surface.circle(x=(c + 0.5) * cell, y=(r + 0.5) * cell, radius=cell * 0.2, color="#f2c14e", id=f"coin{r}_{c}")
    for agent, (r, c) in env.positions.items():
        surface.rect(x=c * cell + 2, y=r * cell + 2, w=cell - 4, h=cell - 4, color=COLORS[agent], id=agent)
