"""Turning observations and fixed values into the tensors a graph expects.

The JavaScript runtime (``js/src/runtime/tensors.js``) follows the same rules:

* every symbolic or unknown dimension of a graph input is the batch size;
* an observation is flattened in C order; a dict observation fed to one input
  is the concatenation of its values in sorted key order;
* the flat observation fills one row of the input (the dimensions after the
  first) and is repeated on all ``batch_size`` rows;
* a fixed value that is a number fills the input's whole shape; a nested
  list is the tensor itself. Values are cast to the graph's dtype.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from mug.errors import ConfigError
from mug.inference.signature import Dim, TensorSpec

__all__ = ["resolve_shape", "fixed_tensor", "row_shape", "ObservationEncoder", "flatten_observation"]


def resolve_shape(shape: tuple[Dim, ...] | None, batch_size: int) -> list[int] | None:
    """The concrete shape of ``shape`` with every symbolic dimension set to ``batch_size``."""
    if shape is None:
        return None
    return [d if isinstance(d, int) else batch_size for d in shape]


def row_shape(spec: TensorSpec) -> tuple[int, ...] | None:
    """Shape of one batch row of ``spec`` (after dimension 0), ``None`` if not fixed."""
    if spec.shape is None or len(spec.shape) == 0:
        return None
    rest = spec.shape[1:]
    return tuple(rest) if all(isinstance(d, int) for d in rest) else None  # type: ignore[arg-type]


def fixed_tensor(value: Any, spec: TensorSpec, batch_size: int) -> np.ndarray:
    """The tensor fed to ``spec`` for a ``fixed_inputs`` value."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return np.asarray(value, dtype=spec.dtype)
    shape = resolve_shape(spec.shape, batch_size)
    if shape is None:
        raise ConfigError(
            f"fixed_inputs[{spec.name!r}]: the graph does not give this input's shape, so a single number "
            "cannot fill it; give the whole tensor as a nested list",
            field="fixed_inputs",
        )
    return np.full(shape, value, dtype=spec.dtype)


def flatten_observation(obs: Any) -> np.ndarray:
    """An observation as one flat array in C order (dicts: values concatenated in sorted key order)."""
    if type(obs) is np.ndarray:
        return obs.ravel()
    if isinstance(obs, Mapping):
        parts = [np.ravel(np.asarray(obs[k])) for k in sorted(obs)]
        return np.concatenate(parts) if parts else np.zeros(0)
    return np.ravel(np.asarray(obs))


class ObservationEncoder:
    """Builds the observation feeds for one graph input (or one per dict key)."""

    def __init__(self, obs_input: str | dict[str, str], specs: Mapping[str, TensorSpec], batch_size: int) -> None:
        self.batch_size = batch_size
        self._fast: tuple[str, np.dtype, int, tuple[int, ...]] | None = None
        if isinstance(obs_input, dict):
            self._keyed = [(key, name, self._shaper(specs[name])) for key, name in obs_input.items()]
            self._single = None
        else:
            self._keyed = []
            self._single = (obs_input, self._shaper(specs[obs_input]))
            rest = row_shape(specs[obs_input])
            if batch_size == 1 and rest is not None:
                self._fast = (obs_input, np.empty(0, specs[obs_input].dtype).dtype, math.prod(rest), (1, *rest))

    def _shaper(self, spec: TensorSpec) -> Callable[[np.ndarray], np.ndarray]:
        rest = row_shape(spec)
        batch = self.batch_size
        dtype = np.dtype(spec.dtype)
        free = None if spec.shape is None else [i for i, d in enumerate(spec.shape[1:]) if not isinstance(d, int)]
        size = None if rest is None else math.prod(rest)

        def shape(flat: np.ndarray) -> np.ndarray:
            if size is not None and flat.size != size:
                raise ValueError(
                    f"the observation has {flat.size} values but input {spec.name!r} takes {size} per row "
                    f"(graph shape {spec.shape_text()})"
                )
            if rest is not None:
                target = (batch, *rest)
            elif free is not None and len(free) == 1:
                known = math.prod(d for d in spec.shape[1:] if isinstance(d, int))  # type: ignore[index]
                target = (batch, *[flat.size // max(known, 1) if not isinstance(d, int) else d for d in spec.shape[1:]])  # type: ignore[index]
            else:
                target = (batch, flat.size)
            row = flat.astype(dtype, copy=False)
            if batch == 1:
                return row.reshape(target)
            return np.ascontiguousarray(np.broadcast_to(row.reshape(target[1:]), target))

        return shape

    def encode(self, obs: Any, feeds: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """Put the feeds for ``obs`` into ``feeds`` (a new dict if ``None``) and return it.

        ``ValueError`` describes a size or key mismatch.
        """
        feeds = {} if feeds is None else feeds
        fast = self._fast
        if fast is not None and type(obs) is np.ndarray and obs.dtype is fast[1] and obs.size == fast[2]:
            feeds[fast[0]] = obs.reshape(fast[3])  # the common case: a right-sized array of the input's dtype
            return feeds
        if self._single is not None:
            name, shape = self._single
            feeds[name] = shape(flatten_observation(obs))
            return feeds
        if not isinstance(obs, Mapping):
            raise ValueError(
                f"obs_input maps observation keys {sorted(k for k, _, _ in self._keyed)} to inputs, "
                f"but the observation is a {type(obs).__name__}, not a dict"
            )
        for key, name, shape in self._keyed:
            if key not in obs:
                raise ValueError(f"the observation has no key {key!r} (keys: {sorted(obs)}); obs_input maps it to {name!r}")
            feeds[name] = shape(np.ravel(np.asarray(obs[key])))
        return feeds
