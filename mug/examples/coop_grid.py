"""``CoopGrid``: N agents collect coins together on a grid; a PettingZoo ``ParallelEnv`` (needs ``pettingzoo``).

The environment for scenes with several people in one game (three humans, or
humans beside AI agents). ``agents`` agents (``"agent_0"``, ``"agent_1"``, ...)
move on a ``size`` x ``size`` grid; several may stand on one cell. Every coin
any of them picks up gives the whole team a reward of 1. The episode ends when
all coins are gone (terminated) or after ``max_steps`` (truncated). Start cells
and coins are drawn from the seed given to ``reset``: the same seed and actions
give the same episode.

Observation of each agent (float32, ``2 * agents + size * size`` values, in
[0, 1]): its own (row, col), then the others' in agent order, scaled by
``size - 1``, then the coin map. Actions: 0 stay, 1 up, 2 down, 3 left, 4 right.

``draw(surface)`` renders with MUG's Surface (grid lines persist, agents move,
coins vanish); ``render_mode="rgb_array"`` gives an image instead.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from mug.examples.gridworld import grid_image

__all__ = ["CoopGrid", "COLORS"]

MOVES = ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1))
#: Each agent's colour, by position in ``possible_agents`` (blue, red, green, purple, orange, brown, pink, grey).
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f")


class CoopGrid(ParallelEnv):
    """The environment (see the module docstring)."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "name": "coop_grid_v0"}

    def __init__(
        self,
        agents: int = 3,
        size: int = 6,
        coins: int = 6,
        max_steps: int = 100,
        render_mode: str | None = None,
        cell: int = 32,
    ) -> None:
        if not 1 <= agents <= len(COLORS):
            raise ValueError(f"CoopGrid: agents must be 1 to {len(COLORS)}, got {agents!r}")
        if size < 2 or not 1 <= coins <= size * size - agents:
            raise ValueError(
                f"CoopGrid: need size >= 2 and 1 <= coins <= size*size - agents, got size={size}, coins={coins}, agents={agents}"
            )
        if max_steps < 1:
            raise ValueError(f"CoopGrid: max_steps must be >= 1, got {max_steps!r}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"CoopGrid: render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.size, self.n_coins, self.max_steps, self.render_mode, self.cell = size, coins, max_steps, render_mode, cell
        self.possible_agents = [f"agent_{i}" for i in range(agents)]
        self.agents = []
        n = 2 * agents + size * size
        self.observation_spaces = {a: spaces.Box(0.0, 1.0, (n,), np.float32) for a in self.possible_agents}
        self.action_spaces = {a: spaces.Discrete(len(MOVES)) for a in self.possible_agents}
        self.positions: dict[str, tuple[int, int]] = {}
        self.coins = np.zeros((size, size), dtype=bool)
        self.steps = 0

    def observation_space(self, agent: str) -> spaces.Box:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Discrete:
        return self.action_spaces[agent]

    def _observe(self, agent: str) -> np.ndarray:
        order = [agent] + [a for a in self.possible_agents if a != agent]
        head = np.asarray([self.positions[a] for a in order], np.float32).ravel() / (self.size - 1)
        return np.concatenate([head, self.coins.ravel().astype(np.float32)])

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
        rng = np.random.default_rng(seed)
        self.agents = list(self.possible_agents)
        self.steps = 0
        cells = [divmod(int(i), self.size) for i in rng.permutation(self.size * self.size)[: len(self.agents) + self.n_coins]]
        self.positions = dict(zip(self.agents, cells))
        self.coins[:] = False
        for cell in cells[len(self.agents) :]:
            self.coins[cell] = True
        return {a: self._observe(a) for a in self.agents}, {a: {} for a in self.agents}

    def step(self, actions: dict[str, int]) -> tuple[dict, dict, dict, dict, dict]:
        """Move every agent still playing (an agent missing from ``actions`` stays), then collect coins."""
        reward = 0.0
        for agent in self.agents:
            dr, dc = MOVES[int(actions.get(agent, 0))]
            r, c = self.positions[agent]
            r, c = min(max(r + dr, 0), self.size - 1), min(max(c + dc, 0), self.size - 1)
            self.positions[agent] = (r, c)
            if self.coins[r, c]:
                self.coins[r, c] = False
                reward += 1.0
        self.steps += 1
        done = not self.coins.any()
        cut = self.steps >= self.max_steps and not done
        agents = list(self.agents)
        result = (
            {a: self._observe(a) for a in agents},
            dict.fromkeys(agents, reward),
            dict.fromkeys(agents, done),
            dict.fromkeys(agents, cut),
            {a: {"coins_left": int(self.coins.sum())} for a in agents},
        )
        if done or cut:
            self.agents = []
        return result

    def render(self) -> np.ndarray | None:
        """With ``render_mode="rgb_array"``: an RGB image (white cells, gold coins, agents in their colours)."""
        if self.render_mode != "rgb_array":
            return None
        agents = [(self.positions[a], COLORS[i]) for i, a in enumerate(self.possible_agents) if a in self.positions]
        return grid_image(self.coins, self.cell, agents)

    def draw(self, surface: Any) -> None:
        """Draw with MUG's Surface: grid lines persist, agents move, coins vanish (a later agent over an earlier)."""
        c = self.cell
        for i in range(self.size + 1):
            surface.line([(0, i * c), (self.size * c, i * c)], color="#c8c8c8", id=f"h{i}")
            surface.line([(i * c, 0), (i * c, self.size * c)], color="#c8c8c8", id=f"v{i}")
        for r in range(self.size):
            for col in range(self.size):
                if self.coins[r, col]:
                    surface.circle(col * c + c / 2, r * c + c / 2, c / 6, color="#e6b400", id=f"coin{r}_{col}")
                else:
                    surface.remove(f"coin{r}_{col}")
        inset = 4
        for i, agent in enumerate(self.possible_agents):
            r, col = self.positions[agent]
            surface.rect(col * c + inset, r * c + inset, c - 2 * inset, c - 2 * inset, color=COLORS[i], id=agent, depth=1 + i)

    def close(self) -> None:
        pass
