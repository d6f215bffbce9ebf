"""Seeds derived from a scene seed and hashes of names, in pure Python (the engine runs in Pyodide, where NumPy may be missing).

:func:`seed_word` is the first 32-bit word of NumPy's
``SeedSequence(entropy).generate_state(1)`` for a list of non-negative
integers, computed bit for bit the same way (tests compare it with NumPy), so
seeds recorded before this module existed stay what they were.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["fnv1a32", "seed_word"]

_MASK = 0xFFFFFFFF
_INIT_A, _MULT_A = 0x43B0D7E5, 0x931E8875
_INIT_B, _MULT_B = 0x8B51F9DD, 0x58F38DED
_MIX_L, _MIX_R = 0xCA01F9DD, 0x4973F715
_POOL = 4


def _words(value: int) -> list[int]:
    if value < 0:
        raise ValueError(f"seed entropy must be non-negative, got {value}")
    words = [value & _MASK]
    value >>= 32
    while value:
        words.append(value & _MASK)
        value >>= 32
    return words


def seed_word(entropy: Sequence[int]) -> int:
    """``int(numpy.random.SeedSequence(list(entropy)).generate_state(1)[0])`` without NumPy."""
    data = [w for value in entropy for w in _words(int(value))]
    const = _INIT_A

    def hashmix(value: int) -> int:
        nonlocal const
        value ^= const
        const = (const * _MULT_A) & _MASK
        value = (value * const) & _MASK
        return value ^ (value >> 16)

    def mix(x: int, y: int) -> int:
        result = (_MIX_L * x - _MIX_R * y) & _MASK
        return result ^ (result >> 16)

    pool = [hashmix(data[i] if i < len(data) else 0) for i in range(_POOL)]
    for src in range(_POOL):
        for dst in range(_POOL):
            if src != dst:
                pool[dst] = mix(pool[dst], hashmix(pool[src]))
    for src in range(_POOL, len(data)):
        for dst in range(_POOL):
            pool[dst] = mix(pool[dst], hashmix(data[src]))
    value = pool[0] ^ _INIT_B
    value = (value * ((_INIT_B * _MULT_B) & _MASK)) & _MASK
    return value ^ (value >> 16)


def fnv1a32(text: str) -> int:
    """32-bit FNV-1a hash of the UTF-8 bytes of ``text``."""
    h = 0x811C9DC5
    for byte in text.encode("utf-8"):
        h = ((h ^ byte) * 0x01000193) & _MASK
    return h
