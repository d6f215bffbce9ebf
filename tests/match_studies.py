"""Studies of the match tests; ``duo_kill`` is deployed with ``mug deploy tests/match_studies.py:duo_kill``."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces

import mug
from mug.examples import CoinGrid

KEYS = {"ArrowUp": 1, "ArrowDown": 2, "ArrowLeft": 3, "ArrowRight": 4}


def duo_scene(
    scene_id: str = "duo",
    *,
    mode: str = "lockstep",
    max_steps: int = 30,
    waitroom: dict[str, Any] | None = None,
    matchmaking: dict[str, Any] | None = None,
    multiplayer: dict[str, Any] | None = None,
    monitoring: dict[str, Any] | None = None,
    fps: int = 30,
) -> mug.GymScene:
    """CoinGrid with both agents played by participants."""
    scene = (
        mug.GymScene(scene_id)
        .environment(CoinGrid, {"max_steps": 1000, "coins": 1, "size": 12}, seed=3)
        .policies({"agent_0": mug.Human, "agent_1": mug.Human})
        .gameplay(action_mapping=KEYS, mode=mode, max_steps=max_steps)
        .rendering(fps=fps, width=96, height=96)
        .waitroom(**(waitroom or {}))
        .matchmaking(**(matchmaking or {}))
        .multiplayer(**(multiplayer or {}))
        .monitoring(**(monitoring or {}))
    )
    return scene


def duo(*scenes: Any, **kwargs: Any) -> mug.Stager:
    """``duo_scene(**kwargs)`` (or the given scenes), then a text page and an end page with a code per participant."""
    return mug.Stager(
        [
            *(scenes or [duo_scene(**kwargs)]),
            mug.TextScene("after", body="The game is over."),
            mug.EndScene(unique_code=True),
        ],
        seed=11,
    )


#: A long realtime match (for the SIGKILL test).
duo_kill = duo(duo_scene(mode="realtime", max_steps=100_000, multiplayer={"reconnect_timeout_s": 60}))


class Tally:
    """A tiny Parallel-API env for ``n`` agents: each step every agent adds its action to its own count."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"]}

    def __init__(self, n: int = 3, render_mode: str | None = None) -> None:
        self.possible_agents = [f"p{i}" for i in range(n)]
        self.agents: list[str] = []
        self.counts = np.zeros(n, np.float32)
        self.render_mode = render_mode

    def observation_space(self, agent: str) -> spaces.Box:
        return spaces.Box(0.0, np.inf, (len(self.possible_agents),), np.float32)

    def action_space(self, agent: str) -> spaces.Discrete:
        return spaces.Discrete(5)

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        self.agents = list(self.possible_agents)
        self.counts[:] = 0
        return {a: self.counts.copy() for a in self.agents}, {a: {} for a in self.agents}

    def step(self, actions: dict[str, int]) -> tuple[dict, dict, dict, dict, dict]:
        for i, agent in enumerate(self.possible_agents):
            self.counts[i] += int(actions.get(agent, 0))
        agents = list(self.agents)
        return (
            {a: self.counts.copy() for a in agents},
            {a: float(actions.get(a, 0)) for a in agents},
            dict.fromkeys(agents, False),
            dict.fromkeys(agents, False),
            {a: {} for a in agents},
        )

    def render(self) -> np.ndarray:
        return np.full((8, 8 * len(self.possible_agents), 3), 255, np.uint8)

    def close(self) -> None:
        pass


def trio_scene(**options: Any) -> mug.GymScene:
    """Three humans in one ``Tally`` game (lockstep)."""
    return (
        mug.GymScene("trio")
        .environment(Tally, {"n": 3}, seed=1)
        .policies({"p0": mug.Human, "p1": mug.Human, "p2": mug.Human})
        .gameplay(action_mapping=KEYS, mode="lockstep", max_steps=options.pop("max_steps", 10))
        .rendering(width=48, height=16)
        .multiplayer(**options)
    )
