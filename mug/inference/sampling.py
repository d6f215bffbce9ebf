"""Seeded action choice, written down once and implemented identically in JS.

The JavaScript twin is ``js/src/runtime/sampling.js``; both must stay
bit-for-bit equal, and ``tests/unit/test_sampling.py`` pins known values.

**PRNG.** Mulberry32, a 32-bit generator. The state ``s`` is an unsigned
32-bit integer. Each draw, with all arithmetic modulo 2**32::

    s = s + 0x6D2B79F5
    t = s
    t = (t ^ (t >> 15)) * (t | 1)
    t = t ^ (t + (t ^ (t >> 7)) * (t | 61))
    u = t ^ (t >> 14)             # the 32-bit output
    return u / 2**32              # a float in [0, 1)

**Per-agent streams.** Agent ``a`` of a runtime seeded with ``seed`` starts
from ``s = seed XOR fnv1a32(utf8(str(a)))``, where FNV-1a starts from
0x811C9DC5 and multiplies by 0x01000193 after XOR-ing each byte. Streams are
not reset with the hidden state; snapshots carry them.

**Softmax and sampling.** In float64: ``z_i = logit_i / temperature``,
``m = max z``, ``e_i = exp(z_i - m)``, ``S = e_0 + e_1 + ...`` summed in index
order, ``p_i = e_i / S``. One draw ``u``; the action is the first ``i`` with
``u * S < e_0 + ... + e_i`` (the last index if rounding leaves none).
**Argmax** is the first index of the largest logit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["Mulberry32", "fnv1a32", "agent_seed", "softmax", "sample_action", "argmax_action"]

_MASK = 0xFFFFFFFF


class Mulberry32:
    """The Mulberry32 generator (see module docstring); ``state`` is its whole state."""

    __slots__ = ("state",)

    def __init__(self, state: int) -> None:
        self.state = state & _MASK

    def next_uint32(self) -> int:
        """Advance and return the next 32-bit output."""
        s = (self.state + 0x6D2B79F5) & _MASK
        self.state = s
        t = ((s ^ (s >> 15)) * (s | 1)) & _MASK
        t = (t ^ (t + (((t ^ (t >> 7)) * (t | 61)) & _MASK))) & _MASK
        return (t ^ (t >> 14)) & _MASK

    def random(self) -> float:
        """Advance and return a float in [0, 1)."""
        return self.next_uint32() / 4294967296.0


def fnv1a32(text: str) -> int:
    """32-bit FNV-1a hash of the UTF-8 bytes of ``text``."""
    h = 0x811C9DC5
    for byte in text.encode("utf-8"):
        h = ((h ^ byte) * 0x01000193) & _MASK
    return h


def agent_seed(seed: int, agent_id: object) -> int:
    """Initial PRNG state of ``agent_id``'s stream in a runtime seeded with ``seed``."""
    return (seed ^ fnv1a32(str(agent_id))) & _MASK


def _exps(logits: Sequence[float] | np.ndarray, temperature: float) -> tuple[list[float], float]:
    """``e_i`` and their in-order sum ``S`` (not ``sum()``, which compensates on Python >= 3.12)."""
    z = [float(x) / temperature for x in (logits.tolist() if isinstance(logits, np.ndarray) else logits)]
    m = max(z)
    e = [math.exp(v - m) for v in z]
    total = 0.0
    for v in e:
        total += v
    if not math.isfinite(total):
        raise ValueError(f"the logits are not all finite numbers: {list(logits)}")
    return e, total


def softmax(logits: Sequence[float] | np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Action probabilities (float64) from logits, as the module docstring defines."""
    e, total = _exps(logits, temperature)
    return np.array([v / total for v in e])


def sample_action(logits: Sequence[float] | np.ndarray, temperature: float, rng: Mulberry32) -> tuple[int, np.ndarray]:
    """Draw an action; returns ``(action, probabilities)`` and advances ``rng`` once."""
    e, total = _exps(logits, temperature)
    target = rng.random() * total
    acc = 0.0
    action = len(e) - 1
    for i, v in enumerate(e):
        acc += v
        if target < acc:
            action = i
            break
    return action, np.array([v / total for v in e])


def argmax_action(logits: Sequence[float] | np.ndarray, temperature: float = 1.0) -> tuple[int, np.ndarray]:
    """The first index of the largest logit, with the probabilities."""
    values = logits.tolist() if isinstance(logits, np.ndarray) else list(logits)
    best = 0
    for i, v in enumerate(values):
        if v > values[best]:
            best = i
    return best, softmax(values, temperature)
