"""Envs for the browser-side tests, in a module file so that mug can ship them to Pyodide."""

from __future__ import annotations

import os
from typing import Any

from mug.examples.browser_grid import PyCoinGrid

_OUTSIDE = {"steps": 0}  # state the env keeps outside itself: no snapshot captures it


class NoisyGrid(PyCoinGrid):
    """Each env object adds its own random bias (from the OS, not the seed) to every reward: not deterministic
    across env objects, though its resets are and its snapshots restore it."""

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        self.bias = 0.5 + os.urandom(2)[0] / 1024

    def step(self, actions: dict[str, int]) -> tuple[dict, dict, dict, dict, dict]:
        obs, rewards, terms, truncs, infos = super().step(actions)
        return obs, {a: r + self.bias for a, r in rewards.items()}, terms, truncs, infos


class LeakyGrid(PyCoinGrid):
    """Counts steps in a module global, and its reward depends on it: snapshots cannot restore it."""

    def get_state(self) -> dict[str, Any]:
        return super().get_state()

    def step(self, actions: dict[str, int]) -> tuple[dict, dict, dict, dict, dict]:
        _OUTSIDE["steps"] += 1
        obs, rewards, terms, truncs, infos = super().step(actions)
        return obs, {a: float(_OUTSIDE["steps"]) for a in rewards}, terms, truncs, infos
