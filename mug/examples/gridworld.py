"""``CoinGrid``: a small cooperative two-agent gridworld with the PettingZoo Parallel API (no PettingZoo needed).

Two agents move on a ``size`` x ``size`` grid and share the reward for every
coin either of them picks up. The episode ends when all coins are gone
(terminated) or after ``max_steps`` (truncated).

Observation of each agent (float32, ``4 + size*size`` values): its own
(row, col) and the partner's, scaled to [0, 1], then the coin map.
Actions: 0 stay, 1 up, 2 down, 3 left, 4 right.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces

__all__ = ["CoinGrid", "grid_image"]

MOVES = {0: (0, 0), 1: (-1, 0), 2: (1, 0), 3: (0, -1), 4: (0, 1)}
COLORS = {"agent_0": "#1f77b4", "agent_1": "#d62728"}


class CoinGrid:
    """The environment (see module docstring). ``render_mode`` may be ``"rgb_array"``."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "name": "coin_grid_v0"}

    def __init__(
        self, size: int = 5, coins: int = 4, max_steps: int = 100, render_mode: str | None = None, cell: int = 32
    ) -> None:
        if size < 2 or not 1 <= coins <= size * size - 2:
            raise ValueError(f"CoinGrid: need size >= 2 and 1 <= coins <= size*size - 2, got size={size}, coins={coins}")
        self.size, self.n_coins, self.max_steps, self.render_mode, self.cell = size, coins, max_steps, render_mode, cell
        self.possible_agents = ["agent_0", "agent_1"]
        self.agents: list[str] = []
        n = 4 + size * size
        self.observation_spaces = {a: spaces.Box(0.0, 1.0, (n,), np.float32) for a in self.possible_agents}
        self.action_spaces = {a: spaces.Discrete(5) for a in self.possible_agents}
        self.positions: dict[str, tuple[int, int]] = {}
        self.coins = np.zeros((size, size), dtype=bool)
        self.steps = 0
        self._rng = np.random.default_rng()
        self._drawn_on: Any = None  # the Surface last drawn on, and the coin map it shows (see draw)
        self._drawn_coins: np.ndarray | None = None

    def observation_space(self, agent: str) -> spaces.Box:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Discrete:
        return self.action_spaces[agent]

    def _observe(self, agent: str, coin_map: np.ndarray) -> np.ndarray:
        other = "agent_1" if agent == "agent_0" else "agent_0"
        obs = np.empty(4 + coin_map.size, np.float32)
        obs[:4] = (*self.positions[agent], *self.positions[other])
        obs[:4] /= self.size - 1
        obs[4:] = coin_map
        return obs

    def _observe_all(self, agents: list[str]) -> dict[str, np.ndarray]:
        coin_map = self.coins.ravel().astype(np.float32)  # shared by every agent's observation
        return {a: self._observe(a, coin_map) for a in agents}

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
        self._rng = np.random.default_rng(seed)
        self.agents = list(self.possible_agents)
        self.steps = 0
        cells = self._rng.permutation(self.size * self.size)[: 2 + self.n_coins]
        to_rc = lambda i: (int(i) // self.size, int(i) % self.size)  # noqa: E731
        self.positions = {"agent_0": to_rc(cells[0]), "agent_1": to_rc(cells[1])}
        self.coins[:] = False
        for i in cells[2:]:
            self.coins[to_rc(i)] = True
        return self._observe_all(self.agents), {a: {} for a in self.agents}

    def step(self, actions: dict[str, int]) -> tuple[dict, dict, dict, dict, dict]:
        reward = 0.0
        for agent in self.agents:
            dr, dc = MOVES[int(actions[agent])]
            r, c = self.positions[agent]
            r, c = min(max(r + dr, 0), self.size - 1), min(max(c + dc, 0), self.size - 1)
            self.positions[agent] = (r, c)
            if self.coins[r, c]:
                self.coins[r, c] = False
                reward += 1.0
        self.steps += 1
        left = int(np.count_nonzero(self.coins))
        done = left == 0
        cut = self.steps >= self.max_steps
        agents = list(self.agents)
        result = (
            self._observe_all(agents),
            dict.fromkeys(agents, reward),
            dict.fromkeys(agents, done),
            dict.fromkeys(agents, cut and not done),
            {a: {"coins_left": left} for a in agents},
        )
        if done or cut:
            self.agents = []
        return result

    def render(self) -> np.ndarray | None:
        """An RGB image of the grid (white cells, gold coins, coloured agents)."""
        if self.render_mode != "rgb_array":
            return None
        return grid_image(self.coins, self.cell, [(pos, COLORS[agent]) for agent, pos in self.positions.items()])

    def draw(self, surface: Any) -> None:
        """Draw with MUG's Surface: static grid lines persist, agents move, coins vanish.

        Persistent objects stay on a Surface until drawn again or removed, so only what changed since the
        last draw on the same surface is drawn (the grid lines once, a coin when it appears or is taken):
        the frames participants get are the same as when everything is redrawn, for less work a step.
        """
        c = self.cell
        if self._drawn_on is not surface:
            self._drawn_on, self._drawn_coins = surface, None
            for i in range(self.size + 1):
                surface.line([(0, i * c), (self.size * c, i * c)], color="#c8c8c8", id=f"h{i}")
                surface.line([(i * c, 0), (i * c, self.size * c)], color="#c8c8c8", id=f"v{i}")
        changed = np.ones_like(self.coins) if self._drawn_coins is None else self.coins != self._drawn_coins
        for r, col in zip(*(i.tolist() for i in np.nonzero(changed))):
            if self.coins[r, col]:
                surface.circle(col * c + c / 2, r * c + c / 2, c / 6, color="#e6b400", id=f"coin{r}_{col}")
            else:
                surface.remove(f"coin{r}_{col}")
        self._drawn_coins = self.coins.copy()
        for agent, (r, col) in self.positions.items():
            surface.rect(col * c + 4, r * c + 4, c - 8, c - 8, color=COLORS[agent], id=agent, depth=1)

    def close(self) -> None:
        pass


def grid_image(coins: np.ndarray, cell: int, agents: list[tuple[tuple[int, int], str]]) -> np.ndarray:
    """An RGB image of a coin grid: white cells of ``cell`` pixels with grey lines, a gold square where
    ``coins`` is set, and each agent ``((row, col), "#rrggbb")`` as a square of its colour (later over earlier)."""
    rows, cols = coins.shape
    image = np.full((rows * cell, cols * cell, 3), 255, dtype=np.uint8)
    image[::cell, :, :] = 200
    image[:, ::cell, :] = 200
    low, high = cell // 3, 2 * cell // 3
    for r, col in zip(*np.nonzero(coins)):
        image[r * cell + low : r * cell + high, col * cell + low : col * cell + high] = (230, 180, 0)
    for (r, col), color in agents:
        rgb = int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)
        image[r * cell + 4 : (r + 1) * cell - 4, col * cell + 4 : (col + 1) * cell - 4] = rgb
    return image
