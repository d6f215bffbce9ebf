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

Because the state only ever grows by the constant 0x6D2B79F5, output *k*
depends on ``s + k * 0x6D2B79F5`` alone; the Python class computes its draws
in blocks with NumPy (same numbers, a fraction of the per-step cost).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from mug.session.seeds import fnv1a32

__all__ = ["Mulberry32", "agent_seed", "argmax_action", "draw_action", "fnv1a32", "sample_action", "softmax"]

_MASK = 0xFFFFFFFF
_INCREMENT = 0x6D2B79F5
_BLOCK = 256
_exp = math.exp


def _outputs(base: int, count: int) -> np.ndarray:
    """Outputs 1..count of a Mulberry32 stream whose state is ``base`` (uint32 arithmetic wraps)."""
    s = ((base + np.arange(1, count + 1, dtype=np.uint64) * _INCREMENT) & _MASK).astype(np.uint32)
    t = (s ^ (s >> 15)) * (s | 1)
    t = t ^ (t + (t ^ (t >> 7)) * (t | 61))
    return t ^ (t >> 14)


class Mulberry32:
    """The Mulberry32 generator (see module docstring); :attr:`state` is its whole state."""

    __slots__ = ("_base", "_buffer", "_used")

    def __init__(self, state: int) -> None:
        self._base = int(state) & _MASK  # the state before the first buffered draw
        self._buffer: list[float] = []
        self._used = 0

    @property
    def state(self) -> int:
        """The current 32-bit state (what a snapshot stores)."""
        return (self._base + self._used * _INCREMENT) & _MASK

    def random(self) -> float:
        """Advance and return a float in [0, 1): the next output divided by 2**32."""
        used = self._used
        if used == len(self._buffer):
            self._base = self.state
            self._buffer = (_outputs(self._base, _BLOCK) / 4294967296.0).tolist()
            used = 0
        self._used = used + 1
        return self._buffer[used]

    def next_uint32(self) -> int:
        """Advance and return the next 32-bit output."""
        return int(self.random() * 4294967296.0)


def agent_seed(seed: int, agent_id: object) -> int:
    """Initial PRNG state of ``agent_id``'s stream in a runtime seeded with ``seed``."""
    return (seed ^ fnv1a32(str(agent_id))) & _MASK


def _scaled(logits: Sequence[float] | np.ndarray, temperature: float) -> list[float]:
    values = logits.tolist() if type(logits) is np.ndarray else [float(x) for x in logits]
    return values if temperature == 1.0 else [x / temperature for x in values]


def _not_finite(values: list[float], temperature: float) -> ValueError:
    return ValueError(f"the logits are not all finite numbers: {[x * temperature for x in values]}")


def softmax(logits: Sequence[float] | np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Action probabilities (float64) from logits, as the module docstring defines."""
    values = _scaled(logits, temperature)
    m = max(values)
    e = [_exp(x - m) for x in values]
    total = 0.0
    for v in e:
        total += v
    if not math.isfinite(total):
        raise _not_finite(values, temperature)
    return np.array([v / total for v in e])


def draw_action(logits: Sequence[float] | np.ndarray, temperature: float, rng: Mulberry32) -> int:
    """Sample an action index with one draw from ``rng`` (the hot path: no probabilities built)."""
    values = logits.tolist() if type(logits) is np.ndarray else [float(x) for x in logits]
    if temperature != 1.0:
        values = [x / temperature for x in values]
    m = max(values)
    running = []  # e_0, e_0 + e_1, ... summed in index order
    total = 0.0
    for x in values:
        total += _exp(x - m)
        running.append(total)
    if not math.isfinite(total):
        raise _not_finite(values, temperature)
    target = rng.random() * total
    for i, partial in enumerate(running):
        if target < partial:
            return i
    return len(running) - 1


def sample_action(logits: Sequence[float] | np.ndarray, temperature: float, rng: Mulberry32) -> tuple[int, np.ndarray]:
    """Draw an action; returns ``(action, probabilities)`` and advances ``rng`` once."""
    return draw_action(logits, temperature, rng), softmax(logits, temperature)


def argmax_action(logits: Sequence[float] | np.ndarray, temperature: float = 1.0) -> tuple[int, np.ndarray]:
    """The first index of the largest logit, with the probabilities."""
    values = logits.tolist() if isinstance(logits, np.ndarray) else list(logits)
    best = 0
    for i, v in enumerate(values):
        if v > values[best]:
            best = i
    return best, softmax(values, temperature)
