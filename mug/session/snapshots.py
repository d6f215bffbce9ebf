"""The env state protocol: snapshots of an env, restored later (reload resume now, rollback later).

An env that defines ``get_state() -> value`` and ``set_state(value)`` is
snapshotted through them (the value should be plain data: numbers, strings,
lists, dicts). Any other env is snapshotted as a deep copy of its object and
restored by copying that copy's ``__dict__`` back (the *deepcopy fallback*,
which also covers envs whose state pickles). :func:`mug.scenes.browser_env.check_snapshots`
proves at build time that a snapshot restores what the env does next.

:func:`state_hash` and :func:`observation_hash` are SHA-256 digests, equal in
CPython and Pyodide for the same values; the browser records the hash of every
step's observation, and verification compares it with a CPython re-simulation.
"""

from __future__ import annotations

import copy
import hashlib
import json
import struct
from typing import Any

from mug.session.messages import jsonable

__all__ = ["has_state_protocol", "observation_hash", "restore_env", "snapshot_env", "state_hash", "value_hash"]


def has_state_protocol(env: Any) -> bool:
    """Whether ``env`` defines ``get_state()`` and ``set_state()``."""
    return callable(getattr(env, "get_state", None)) and callable(getattr(env, "set_state", None))


def snapshot_env(env: Any) -> Any:
    """The state of ``env`` (the raw env, not the adapter): ``get_state()``'s value, else a deep copy of it."""
    if has_state_protocol(env):
        return copy.deepcopy(env.get_state())  # the caller owns it: the env may keep mutating its own objects
    return copy.deepcopy(env)


def restore_env(env: Any, state: Any) -> None:
    """Put ``env`` back into ``state`` (from :func:`snapshot_env`; the state can be restored again)."""
    if has_state_protocol(env):
        env.set_state(copy.deepcopy(state))
        return
    env.__dict__.clear()
    env.__dict__.update(copy.deepcopy(state).__dict__)


def _leaf(value: Any) -> Any:
    """What ``json`` cannot encode by itself (NumPy arrays and scalars, odd objects) as :func:`jsonable` gives it."""
    return jsonable(value.tolist() if hasattr(value, "tolist") else value)


def _canonical_json(value: Any) -> str:
    # plain values go straight to the encoder; only NumPy and odd objects are converted
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=_leaf)


def value_hash(value: Any) -> str:
    """16 hex digits of SHA-256 over the canonical JSON of ``value`` (sorted keys; NumPy values as their
    lists): equal in CPython and Pyodide for equal plain values."""
    return hashlib.sha256(_canonical_json(value).encode()).hexdigest()[:16]


_PACKERS: dict[int, tuple[bytes, struct.Struct]] = {}  # length -> (b"<length>:", its float64 packer): a few per env


def _packer(n: int) -> tuple[bytes, struct.Struct]:
    entry = (b"%d:" % n, struct.Struct(f"<{n}d"))
    if len(_PACKERS) < 256:
        _PACKERS[n] = entry
    return entry


def _numbers(value: Any) -> tuple[bytes, bytes] | None:
    """The shape and the float64 values of a flat list/tuple of numbers or of a numeric NumPy array; else None."""
    if isinstance(value, (list, tuple)):
        shape, packer = _PACKERS.get(len(value)) or _packer(len(value))
        try:
            return shape, packer.pack(*value)
        except (TypeError, OverflowError, struct.error):  # not all numbers (nested lists, strings, None, ...)
            return None
    if hasattr(value, "dtype") and hasattr(value, "shape") and value.dtype.kind in "biuf":
        return ",".join(str(n) for n in value.shape).encode() + b":", value.astype("<f8").tobytes(order="C")
    return None


def observation_hash(observations: dict[str, Any]) -> str:
    """16 hex digits of SHA-256 over per-agent observations, in sorted agent order.

    An observation that is a flat list or tuple of numbers, or a numeric NumPy array, is hashed as its
    shape and its values as little-endian float64 (so ``[1, 2.0]``, ``(1.0, 2)`` and ``np.array([1., 2.])``
    hash alike, and integers beyond 2**53 are compared as float64); any other value as its canonical
    JSON (a NumPy array inside it as the list of its values, a non-finite float as ``NaN``/``Infinity``).
    This is ~15x faster than JSON for number lists, which matters at every step in Pyodide."""
    parts: list[bytes] = []
    for agent in sorted(observations, key=str):
        value = observations[agent]
        name = _AGENT_NAMES.get(agent) if type(agent) is str else None
        if name is None:
            name = json.dumps(str(agent)).encode()
            if type(agent) is str and len(_AGENT_NAMES) < 4096:
                _AGENT_NAMES[agent] = name
        packed = _numbers(value)
        parts += (name, b"d", *packed) if packed is not None else (name, b"j", _canonical_json(value).encode())
    return hashlib.sha256(b"".join(parts)).hexdigest()[:16]  # one digest call: the same bytes as one update each


_AGENT_NAMES: dict[str, bytes] = {}  # agent id -> its JSON text, hashed before its observation (a scene has a few)


def state_hash(env: Any) -> str:
    """16 hex digits of SHA-256 over the canonical JSON of ``env.get_state()`` (``pickle`` of the deep-copy
    fallback otherwise, which is stable within one interpreter)."""
    if has_state_protocol(env):
        return value_hash(env.get_state())
    import pickle

    return hashlib.sha256(pickle.dumps(env.__dict__, protocol=4)).hexdigest()[:16]
