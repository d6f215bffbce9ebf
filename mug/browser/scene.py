"""``BrowserScene``: a scene rebuilt from its portable spec (:meth:`mug.GymScene.browser_spec`) inside Pyodide.

It offers the engine (:class:`~mug.session.GameSession`) what a
:class:`~mug.GymScene` offers it, from plain data computed in CPython at
deploy time: agents, action spaces (:class:`PortableSpace`), policies,
gameplay, rendering and data options. The env creator, the ``draw`` and
``hud`` functions are imported by module and name from the shipped bundles.
Neither NumPy nor Gymnasium is imported here.
"""

from __future__ import annotations

import importlib
import random
from dataclasses import dataclass
from typing import Any

from mug.errors import ConfigError
from mug.session.envs import EnvAdapter

__all__ = ["BrowserScene", "PortableSpace", "import_object"]


def import_object(ref: str) -> Any:
    """``"package.module:Name"`` imported; ``ConfigError`` naming what is missing."""
    module_name, _, name = ref.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
        for part in name.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot import {ref!r} from the shipped bundles: {type(exc).__name__}: {exc}") from exc
    return target


class PortableSpace:
    """A ``Discrete(n, start)`` or ``MultiDiscrete(nvec)`` action space as plain data (``describe()``'s dict).

    ``sample()`` draws with Python's ``random.Random``, seeded by ``seed()``: a
    ``mug.Random`` agent in the browser draws its own stream (its draws are
    recorded as actions like any other, and verification replays them).
    """

    def __init__(self, description: dict[str, Any]) -> None:
        self.description = dict(description)
        self.kind = description["kind"]
        if self.kind == "discrete":
            self.n, self.start = int(description["n"]), int(description.get("start", 0))
        elif self.kind == "multi_discrete":
            self.nvec = [int(v) for v in description["nvec"]]
        else:
            raise ConfigError(f"action space {description!r}: expected kind 'discrete' or 'multi_discrete'")
        self._rng = random.Random(0)

    def seed(self, seed: int) -> None:
        """Seed :meth:`sample`'s stream."""
        self._rng = random.Random(seed)

    def sample(self) -> Any:
        """A uniform draw from the space's own stream."""
        return self.sample_with(self._rng)

    def sample_with(self, rng: random.Random) -> Any:
        """A uniform draw from ``rng``."""
        if self.kind == "discrete":
            return self.start + rng.randrange(self.n)
        return [rng.randrange(n) for n in self.nvec]

    def contains(self, action: Any) -> bool:
        """Whether ``action`` is in the space."""
        if self.kind == "discrete":
            return isinstance(action, int) and not isinstance(action, bool) and 0 <= action - self.start < self.n
        return (
            isinstance(action, (list, tuple))
            and len(action) == len(self.nvec)
            and all(isinstance(a, int) and not isinstance(a, bool) and 0 <= a < n for a, n in zip(action, self.nvec))
        )

    def __repr__(self) -> str:
        if self.kind == "discrete":
            return f"Discrete({self.n})" if not self.start else f"Discrete({self.n}, start={self.start})"
        return f"MultiDiscrete({self.nvec})"


@dataclass(frozen=True)
class _Policy:
    """What the engine reads of a policy: its kind (``human``, ``random``, ``model``); models run in the page."""

    kind: str
    where: str
    config: Any = None
    fn: Any = None


class BrowserScene:
    """The engine's view of one scene, from ``spec`` (:meth:`mug.GymScene.browser_spec`)."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.scene_id: str = spec["scene_id"]
        env = spec["env"]
        self.env_creator = import_object(env["creator"])
        self.env_config: dict[str, Any] = dict(env["config"])
        self.seed: int = spec["seed"]
        self.agents: list[str] = list(spec["agents"])
        self._spaces = {a: PortableSpace(d) for a, d in spec["action_spaces"].items()}
        self.policy_specs = {a: _Policy(p["kind"], p["where"]) for a, p in spec["policies"].items()}
        self._browser_policies: list[str] = list(spec["browser_policies"])
        play = spec["gameplay"]
        self.action_mapping = {combo: action for combo, action in play["action_mapping"]}
        self.num_episodes: int = play["num_episodes"]
        self.max_steps: int | None = play["max_steps"]
        self.default_action: Any = play["default_action"]
        self.input_mode: str = play["input_mode"]
        self.step_mode: str = play["step_mode"]
        self.frame_skip: int = play["frame_skip"]
        self.act_timeout_s: float | None = play["act_timeout_s"]
        self.policy_seed: int = spec["policy_seed"]
        look = spec["rendering"]
        self.render_mode: str = look["mode"]
        self.fps: int = look["fps"]
        self.width, self.height = look["width"], look["height"]
        self.encoding: str = look["encoding"]
        self.images: dict[str, str] = dict(look["images"])
        self.draw = import_object(look["draw"]) if look["draw"] else None
        self.hud = import_object(look["hud"]) if look["hud"] else None
        data = spec["data"]
        self.record_observations: bool = data["record_observations"]
        self.record_infos: bool = data["record_infos"]
        self.record_policy_outputs: bool = data["record_policy_outputs"]
        self.hash_observations = True

    @property
    def humans(self) -> list[str]:
        """Agents played by the participant."""
        return [a for a, p in self.policy_specs.items() if p.kind == "human"]

    def check_ready(self) -> None:
        """Always ready: the spec was built from a ready scene."""

    def browser_policies(self, host: str = "deployment") -> list[str]:
        """Every model policy: the page's JS runtime runs them all."""
        return list(self._browser_policies)

    def action_space(self, agent: str) -> PortableSpace:
        """``agent``'s action space."""
        return self._spaces[agent]

    def make_env(self, *, render: bool = True) -> EnvAdapter:
        """A new env from the shipped creator (``render_mode='rgb_array'`` is in ``env_config`` when needed)."""
        return EnvAdapter(self.env_creator(**self.env_config))

    def client_metadata(self, host: str = "deployment") -> dict[str, Any]:
        """The scene's metadata for the page, as the server computed it."""
        return dict(self.spec["client"])
