"""Checks of the fields of a peer's incoming wire messages (plain JSON from a peer that may be buggy or hostile).

Every helper raises ``ValueError`` on a field that is missing the right type or
bounds; :meth:`~mug.netcode.RollbackPeer.receive` counts such a message as bad
and drops it. Integers are bounded so that no arithmetic on them can overflow
(a JSON ``1e400`` is a float ``inf``; ``10**400`` is a valid JSON integer).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["MAX_INT", "action_lists", "integer", "text"]

MAX_INT = 2**53
"""The largest integer taken from the wire (exact in a JavaScript number)."""


def integer(message: dict[str, Any], key: str, low: int = -1, high: int = MAX_INT) -> int:
    """``message[key]`` as an int in ``[low, high]`` (an integral float is taken; a bool, inf or NaN is not)."""
    value = message[key]
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"field {key!r}: expected an integer in [{low}, {high}]")
    return value


def text(message: dict[str, Any], key: str, longest: int = 256) -> str:
    """``message[key]`` as a string of at most ``longest`` characters."""
    value = message[key]
    if not isinstance(value, str) or len(value) > longest:
        raise ValueError(f"field {key!r}: expected a string of at most {longest} characters")
    return value


def action_lists(value: Any, seats: set[str], valid: Callable[[str, Any], bool], longest: int, name: str) -> dict[str, list[Any]]:
    """``{seat: [action, ...]}`` with exactly ``seats``, lists of at most ``longest`` valid actions."""
    if not isinstance(value, dict) or set(value) != seats:
        raise ValueError(f"field {name!r}: expected the actions of seats {sorted(seats)}")
    for seat, actions in value.items():
        if not isinstance(actions, list) or len(actions) > longest:
            raise ValueError(f"field {name!r}: expected a list of at most {longest} actions for {seat!r}")
        if not all(valid(seat, a) for a in actions):
            raise ValueError(f"field {name!r}: an action of {seat!r} is not in its action space")
    return value
