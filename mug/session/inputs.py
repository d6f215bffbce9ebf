"""Keyboard keys to actions (``action_mapping``), composite combinations included, and whether an action is
one of a space's."""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Mapping
from typing import Any

from mug.session.messages import np

__all__ = ["KeyMap", "contains_action", "keys_of"]


def keys_of(combo: str) -> frozenset[str]:
    """The keys of an ``action_mapping`` entry: ``"ArrowUp+ArrowLeft"`` -> {ArrowUp, ArrowLeft}; ``"+"`` is the plus key."""
    if combo == "+":
        return frozenset({"+"})
    return frozenset(combo.split("+"))


class KeyMap:
    """Resolves the keys a participant presses to an action.

    The mapping whose key combination is fully pressed and has the most keys
    wins (``ArrowUp+ArrowLeft`` beats ``ArrowUp``); ties go to the first in the
    mapping; no match gives ``default``.
    """

    def __init__(self, action_mapping: Mapping[str, Any], default: Any) -> None:
        self.default = default
        combos = [(keys_of(combo), i, action) for i, (combo, action) in enumerate(action_mapping.items())]
        self._combos = sorted(combos, key=lambda c: (-len(c[0]), c[1]))

    def action(self, keys: Iterable[str]) -> tuple[Any, bool]:
        """``(action, matched)`` for the keys held (or pressed) now."""
        held = set(keys)
        for combo, _, action in self._combos:
            if combo <= held:
                return action, True
        return self.default, False


def contains_action(space: Any, action: Any) -> bool:
    """Whether ``action`` is an action of ``space`` (a Gymnasium space or a portable one)."""
    n = getattr(space, "n", None)
    if n is not None and not hasattr(space, "nvec"):
        return (
            isinstance(action, numbers.Integral)
            and not isinstance(action, bool)
            and 0 <= int(action) - int(getattr(space, "start", 0)) < int(n)
        )
    try:
        if np is None:
            return bool(space.contains(action))
        return bool(space.contains(np.asarray(action, dtype=getattr(space, "dtype", None))))
    except Exception:
        return False
