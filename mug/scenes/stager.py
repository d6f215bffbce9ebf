"""``Stager``: the sequence of scenes a participant goes through, with per-participant order and resumable progress."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from mug.errors import ConfigError
from mug.scenes.base import Scene

__all__ = ["Stager", "StagerRun", "RandomizeOrder", "RepeatScene"]


def _check_items(items: Any, where: str) -> list:
    if not isinstance(items, Sequence) or isinstance(items, str) or not items:
        raise ConfigError(f"{where}: expected a non-empty list of scenes, got {items!r}", field="scenes")
    for item in items:
        if not isinstance(item, (Scene, RandomizeOrder, RepeatScene)):
            raise ConfigError(f"{where}: {item!r} is not a scene, RandomizeOrder or RepeatScene", field="scenes")
    return list(items)


class RandomizeOrder:
    """Its items in a random order per participant (seeded by the study seed and the participant id)."""

    def __init__(self, items: Sequence[Any]) -> None:
        self.items = _check_items(items, "RandomizeOrder")

    def expand(self, rng: random.Random) -> list[tuple[Scene, int]]:
        order = list(self.items)
        rng.shuffle(order)
        return [entry for item in order for entry in _expand(item, rng)]


class RepeatScene:
    """One scene ``times`` times in a row (each a separate entry with its repeat index)."""

    def __init__(self, scene: Scene, times: int) -> None:
        if not isinstance(scene, Scene):
            raise ConfigError(f"RepeatScene: expected a scene, got {scene!r}", field="scene")
        if isinstance(times, bool) or not isinstance(times, int) or not 1 <= times <= 1000:
            raise ConfigError(f"RepeatScene: times must be an integer in 1..1000, got {times!r}", field="times")
        self.scene, self.times = scene, times

    def expand(self, rng: random.Random) -> list[tuple[Scene, int]]:
        return [(self.scene, k) for k in range(self.times)]


def _expand(item: Any, rng: random.Random) -> list[tuple[Scene, int]]:
    return [(item, 0)] if isinstance(item, Scene) else item.expand(rng)


def _scenes(item: Any) -> list[Scene]:
    if isinstance(item, Scene):
        return [item]
    if isinstance(item, RepeatScene):
        return [item.scene]
    return [s for sub in item.items for s in _scenes(sub)]


class Stager:
    """The study: scenes in order, with :class:`RandomizeOrder` and :class:`RepeatScene` blocks.

    ``Stager.start(participant_id)`` gives that participant's own run; its
    :meth:`StagerRun.progress` is JSON and :meth:`resume` continues from it.
    """

    def __init__(self, scenes: Sequence[Any], seed: int = 0) -> None:
        self.items = _check_items(scenes, "Stager")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ConfigError(f"seed: expected an integer, got {seed!r}", field="seed")
        self.seed = seed
        self.scenes: dict[str, Scene] = {}
        for scene in (s for item in self.items for s in _scenes(item)):
            known = self.scenes.get(scene.scene_id)
            if known is not None and known is not scene:
                raise ConfigError(
                    f"Stager: two different scenes use the id {scene.scene_id!r}; scene ids must be unique", field="scene_id"
                )
            self.scenes[scene.scene_id] = scene

    def start(self, participant_id: str) -> StagerRun:
        """A new run for ``participant_id`` (its scene order is fixed here)."""
        rng = random.Random(f"{self.seed}:{participant_id}")
        order = [(scene.scene_id, k) for item in self.items for scene, k in _expand(item, rng)]
        return StagerRun(self, participant_id, order, 0)

    def resume(self, progress: dict[str, Any]) -> StagerRun:
        """The run that :meth:`StagerRun.progress` described; ``ValueError`` if it does not fit this study."""
        try:
            order = [(str(sid), int(k)) for sid, k in progress["order"]]
            index = int(progress["index"])
            participant = str(progress["participant_id"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"resume: not a progress record of a Stager run ({exc!r})") from exc
        unknown = [sid for sid, _ in order if sid not in self.scenes]
        if unknown:
            raise ValueError(f"resume: scene {unknown[0]!r} is not in this study")
        if not 0 <= index <= len(order):
            raise ValueError(f"resume: index {index} is outside the run's {len(order)} scenes")
        return StagerRun(self, participant, order, index)


class StagerRun:
    """One participant's way through a :class:`Stager`."""

    def __init__(self, stager: Stager, participant_id: str, order: list[tuple[str, int]], index: int) -> None:
        self.stager, self.participant_id, self.order, self.index = stager, participant_id, order, index

    @property
    def done(self) -> bool:
        """Whether every scene has been passed."""
        return self.index >= len(self.order)

    @property
    def current(self) -> Scene | None:
        """The scene the participant is in (``None`` when done)."""
        return None if self.done else self.stager.scenes[self.order[self.index][0]]

    @property
    def repeat(self) -> int:
        """Which repetition of the current scene this is (0 for the first)."""
        return 0 if self.done else self.order[self.index][1]

    def advance(self) -> Scene | None:
        """Move to the next scene and return it (``None`` when the study is over)."""
        if not self.done:
            self.index += 1
        return self.current

    def progress(self) -> dict[str, Any]:
        """JSON-ready state; ``Stager.resume(progress)`` continues from it."""
        return {"participant_id": self.participant_id, "order": [list(e) for e in self.order], "index": self.index}
