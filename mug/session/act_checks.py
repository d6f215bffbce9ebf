"""Checking what a browser-side policy reports in an ``act`` against the model that policy runs.

A browser sends, per agent it runs, the chosen action and optionally the
``logits`` and recurrent ``states`` it computed (they are recorded with the
step). Before anything is stored, every tensor must be one the agent's model
can produce:

* ``logits``: one row of ``num_actions`` values (the config's ``num_actions``,
  else the size of the agent's discrete action space, else the model's logit
  output);
* ``states``: only the config's ``state_outputs``, each of its state shape
  (``state_shapes``, else the model's state input shape at ``batch_size``; size-1
  dimensions may be left out, as a custom inference function's flat arrays do, and
  are put back before storing);
* dtype float32 (what the browser runtime sends) or the model's own output dtype;
* every value finite or NaN (an infinity is refused).

So the bytes a step can store are bounded by the model, whatever a client sends.
A custom inference function's logits and states are held to the same rules.
A result whose tensors do not fit keeps its (checked) action, so the game goes
on: only its tensors are left out of the record, the client gets a
``bad_tensor`` error naming them, and a ``bad_tensor`` event records it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mug.inference.tensors import resolve_shape
from mug.session.messages import MessageError

if TYPE_CHECKING:
    from mug.inference.config import ModelConfig
    from mug.scenes.gym_scene import GymScene

__all__ = ["PolicyOutputs", "expected_outputs", "check_policy_result"]


@dataclass(frozen=True)
class PolicyOutputs:
    """The tensors one agent's model produces per step: shapes and accepted dtypes."""

    logits: tuple[int, ...] | None
    """Shape of the logits row, ``None`` if the size is unknown (then at most the model's output size)."""
    logit_dtypes: tuple[str, ...]
    states: dict[str, tuple[int, ...]]
    state_dtypes: dict[str, tuple[str, ...]]


def _dtypes(model_dtype: str | None) -> tuple[str, ...]:
    return ("float32",) if model_dtype in (None, "float32") else ("float32", model_dtype)


@functools.lru_cache(maxsize=256)
def _from_model(
    onnx_path: str,
    logit_output: str,
    state_inputs: tuple[str, ...],
    state_outputs: tuple[str, ...],
    state_shapes: tuple[tuple[int, ...], ...] | None,
    batch_size: int,
) -> tuple[int | None, str | None, dict[str, tuple[int, ...]], dict[str, str | None]]:
    """Logit size and dtype, state shapes and dtypes as the model gives them (read once per model and config)."""
    from mug.inference.signature import read_signature

    signature = read_signature(onnx_path)
    inputs = {s.name: s for s in signature.inputs}
    outputs = {s.name: s for s in signature.outputs}
    logit_spec = outputs.get(logit_output)
    logit_shape = resolve_shape(logit_spec.shape, batch_size) if logit_spec is not None else None
    logit_size = logit_shape[-1] if logit_shape else None
    states, dtypes = {}, {}
    for i, (name_in, name_out) in enumerate(zip(state_inputs, state_outputs)):
        shape = state_shapes[i] if state_shapes is not None else resolve_shape(inputs[name_in].shape, batch_size)
        states[name_out] = tuple(shape or ())
        dtypes[name_out] = outputs[name_out].dtype if name_out in outputs else None
    return logit_size, (logit_spec.dtype if logit_spec is not None else None), states, dtypes


def expected_outputs(config: ModelConfig, space: Any) -> PolicyOutputs:
    """What a policy running ``config`` for an agent with action space ``space`` can report per step."""
    logit_size, logit_dtype, states, state_dtypes = _from_model(
        config.onnx_path,
        config.logit_output,
        tuple(config.state_inputs),
        tuple(config.state_outputs),
        None if config.state_shapes is None else tuple(tuple(s) for s in config.state_shapes),
        config.batch_size,
    )
    n = config.num_actions
    if n is None and getattr(space, "n", None) is not None and not hasattr(space, "nvec"):
        n = int(space.n)
    if n is None:
        n = logit_size
    return PolicyOutputs(
        logits=None if n is None else (n,),
        logit_dtypes=_dtypes(logit_dtype),
        states=states,
        state_dtypes={k: _dtypes(v) for k, v in state_dtypes.items()},
    )


def _squeezed(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(d for d in shape if d != 1)


def _checked(where: str, array: np.ndarray, shape: tuple[int, ...], dtypes: tuple[str, ...], what: str) -> np.ndarray:
    """``array`` in ``shape`` (size-1 dimensions may differ: a custom function's ``[128]`` for ``[1, 128]``)."""
    got = f"got shape {list(array.shape)} {array.dtype}"
    if _squeezed(array.shape) != _squeezed(shape) or str(array.dtype) not in dtypes:
        raise MessageError("bad_tensor", f"{where}: {got}, expected shape {list(shape)} {' or '.join(dtypes)} ({what})")
    if array.dtype.kind == "f" and np.isinf(array).any():
        raise MessageError("bad_tensor", f"{where}: {got} holds an infinite value; expected finite values or NaN ({what})")
    return array.reshape(shape)


def check_policy_result(scene: GymScene, agent: str, result: dict[str, Any]) -> None:
    """Raise ``MessageError`` (code ``bad_tensor``) unless ``result``'s logits and states fit ``agent``'s model;
    tensors that fit are put in the model's exact shapes (in ``result``)."""
    config = scene.policy_specs[agent].config
    if config is None:
        return
    expected = expected_outputs(config, scene.action_space(agent))
    where = f"act.policies[{agent!r}]"
    logits = result.get("logits")
    if logits is not None:
        if expected.logits is None:
            raise MessageError("bad_tensor", f"{where}.logits: the model's number of actions is unknown; send no logits")
        what = f"one logit per action of the {agent!r} model"
        result["logits"] = _checked(f"{where}.logits", logits, expected.logits, expected.logit_dtypes, what)
    states = result.get("states") or {}
    for name, array in states.items():
        if name not in expected.states:
            raise MessageError(
                "bad_tensor",
                f"{where}.states: {name!r} is not a state output of the {agent!r} model; "
                f"expected only {sorted(expected.states) or 'none (the model has no recurrent state)'}",
            )
        what = f"state output {name!r}"
        states[name] = _checked(f"{where}.states[{name!r}]", array, expected.states[name], expected.state_dtypes[name], what)
