"""Infer a ``ModelConfig`` from an ONNX graph (``ModelConfig.from_onnx``).

Rules, in order:

1. State pairs by name: ``state_in_i`` feeds from ``state_out_i``,
   ``state_ins`` from ``state_outs``, and generally ``X_in``/``X_out``,
   ``in_X``/``out_X``, ``X_input``/``X_output``.
2. A name-paired state whose shape is only the batch dimension (RLlib's
   ``state_ins`` dummy in feed-forward exports) becomes a fixed input of 1.
3. ``seq_lens`` of shape ``[batch]`` is a fixed input of 1 (one step per call).
4. The observation input and the logit output are found by their usual names
   (``obs``, ``observation``...; ``output``, ``logits``...) or as the only
   candidate left.
5. Inputs and outputs still unassigned are paired as state by equal shape, in
   graph order.

Whatever the rules cannot decide raises :class:`~mug.ConfigError` listing the
candidates and naming the field to pass to ``from_onnx``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mug.errors import ConfigError, did_you_mean
from mug.inference.signature import TensorSpec, read_signature
from mug.inference.tensors import resolve_shape
from mug.inference.validation import state_output_names_for

__all__ = ["infer_config_fields"]

OBS_NAMES = ("obs", "observation", "observations", "obs_flat", "input", "inputs", "x")
LOGIT_NAMES = ("output", "logits", "action_logits", "action_dist_inputs", "outputs", "actions")


def _same_shape(a: TensorSpec, b: TensorSpec) -> bool:
    if a.shape is None or b.shape is None or len(a.shape) != len(b.shape):
        return False
    return all(
        (x == y) if isinstance(x, int) and isinstance(y, int) else not (isinstance(x, int) or isinstance(y, int))
        for x, y in zip(a.shape, b.shape)
    )


def _batch_only(spec: TensorSpec) -> bool:
    return spec.shape is not None and len(spec.shape) == 1 and not isinstance(spec.shape[0], int)


def _pick(kind: str, field: str, candidates: list[TensorSpec], preferred: tuple[str, ...]) -> str:
    """The candidate with a preferred name, else the only one; ``kind`` ends "which <kind>" in the error."""
    side = kind.split()[0]
    for name in preferred:
        for spec in candidates:
            if spec.name.lower() == name:
                return spec.name
    if len(candidates) == 1:
        return candidates[0].name
    if not candidates:
        raise ConfigError(
            f"from_onnx: cannot tell which {kind}: the graph has no {side} left for it. Pass {field}=... to from_onnx.",
            field=field,
        )
    listing = ", ".join(s.describe() for s in candidates)
    raise ConfigError(f"from_onnx: cannot tell which {kind}; candidates: {listing}. Pass {field}=... to from_onnx.", field=field)


def _pair_by_name(inputs: list[TensorSpec], outputs: list[TensorSpec]) -> list[tuple[str, str]]:
    out_names = {o.name for o in outputs}
    pairs = []
    for spec in inputs:
        for cand in state_output_names_for(spec.name):
            if cand in out_names:
                pairs.append((spec.name, cand))
                out_names.discard(cand)
                break
    return pairs


def _pair_by_shape(inputs: list[TensorSpec], outputs: list[TensorSpec]) -> list[tuple[str, str]]:
    pairs = []
    remaining = list(outputs)
    for spec in inputs:
        same = [o for o in remaining if _same_shape(spec, o)]
        same_inputs = [i for i in inputs if _same_shape(spec, i)]
        if len(same) != len(same_inputs):
            listing_in = ", ".join(i.describe() for i in same_inputs)
            listing_out = ", ".join(o.describe() for o in same) or "none"
            raise ConfigError(
                "from_onnx: cannot pair state inputs with state outputs by shape: "
                f"inputs {listing_in}; outputs of that shape: {listing_out}. "
                "Pass state_inputs=[...] and state_outputs=[...] (output i feeds input i) or fixed_inputs={...}.",
                field="state_inputs",
            )
        pairs.append((spec.name, same[0].name))
        remaining.remove(same[0])
    return pairs


def _check_override_names(sig: Any, overrides: dict[str, Any]) -> None:
    """Names given to ``from_onnx`` must exist on the right side of the graph."""
    obs = overrides.get("obs_input")
    given = [("obs_input", n, "input") for n in (obs.values() if isinstance(obs, dict) else [obs] if obs else [])]
    given += [("logit_output", overrides["logit_output"], "output")] if "logit_output" in overrides else []
    given += [(f"state_inputs[{i}]", n, "input") for i, n in enumerate(overrides.get("state_inputs", ()))]
    given += [(f"state_outputs[{i}]", n, "output") for i, n in enumerate(overrides.get("state_outputs", ()))]
    given += [(f"fixed_inputs[{n!r}]", n, "input") for n in overrides.get("fixed_inputs") or {}]
    for field, name, side in given:
        names = sig.input_names if side == "input" else sig.output_names
        if name not in names:
            specs = sig.inputs if side == "input" else sig.outputs
            listing = ", ".join(s.describe() for s in specs)
            raise ConfigError(
                f"{field}: the model has no {side} {name!r}.{did_you_mean(str(name), names)} Model {side}s: {listing}",
                field=field.split("[")[0],
            )


def infer_config_fields(path: Path, overrides: dict[str, Any]) -> dict[str, Any]:
    """Return the config fields that the graph at ``path`` implies (overrides win)."""
    sig = read_signature(path)
    _check_override_names(sig, overrides)
    batch_size = overrides.get("batch_size", 1)
    fixed: dict[str, Any] = dict(overrides.get("fixed_inputs") or {})
    given_states = "state_inputs" in overrides, "state_outputs" in overrides
    if given_states[0] != given_states[1]:
        raise ConfigError(
            "from_onnx: pass state_inputs and state_outputs together (output i feeds input i)",
            field="state_inputs" if not given_states[0] else "state_outputs",
        )
    pairs: list[tuple[str, str]] = list(zip(overrides.get("state_inputs", ()), overrides.get("state_outputs", ())))

    obs_given = overrides.get("obs_input")
    obs_names = set(obs_given.values()) if isinstance(obs_given, dict) else {obs_given} if obs_given else set()
    claimed_in = set(fixed) | obs_names | {i for i, _ in pairs}
    claimed_out = {o for _, o in pairs} | ({overrides["logit_output"]} if "logit_output" in overrides else set())

    def free_inputs() -> list[TensorSpec]:
        return [s for s in sig.inputs if s.name not in claimed_in]

    def free_outputs() -> list[TensorSpec]:
        return [s for s in sig.outputs if s.name not in claimed_out]

    result: dict[str, Any] = {}
    # Names that say what they are come first, so that an observation called
    # "input" and logits called "output" are never taken for a state pair.
    if not obs_given:
        named_obs = [s for s in free_inputs() if s.name.lower() in OBS_NAMES]
        if named_obs:
            result["obs_input"] = _pick("input carries the observation", "obs_input", named_obs, OBS_NAMES)
            claimed_in.add(result["obs_input"])
    if "logit_output" not in overrides:
        named_logits = [s for s in free_outputs() if s.name.lower() in LOGIT_NAMES]
        if named_logits:
            result["logit_output"] = _pick("output holds the logits", "logit_output", named_logits, LOGIT_NAMES)
            claimed_out.add(result["logit_output"])

    if not any(given_states):
        for inp, out in _pair_by_name(free_inputs(), free_outputs()):
            if _batch_only(sig.input(inp)):
                fixed[inp] = 1  # feed-forward export's dummy state (RLlib ``state_ins``)
                claimed_in.add(inp)
            else:
                pairs.append((inp, out))
                claimed_in.add(inp)
                claimed_out.add(out)
        for spec in free_inputs():
            if spec.name == "seq_lens" and _batch_only(spec):
                fixed[spec.name] = 1
                claimed_in.add(spec.name)

    if not obs_given and "obs_input" not in result:
        result["obs_input"] = _pick("input carries the observation", "obs_input", free_inputs(), OBS_NAMES)
        claimed_in.add(result["obs_input"])

    if not any(given_states):
        leftover_in = free_inputs()
        if leftover_in:
            pairs += _pair_by_shape(leftover_in, free_outputs())
            claimed_in.update(i for i, _ in pairs)
            claimed_out.update(o for _, o in pairs)
        result["state_inputs"] = [i for i, _ in pairs]
        result["state_outputs"] = [o for _, o in pairs]

    if "logit_output" not in overrides and "logit_output" not in result:
        result["logit_output"] = _pick("output holds the logits", "logit_output", free_outputs(), LOGIT_NAMES)

    if "state_shapes" not in overrides and "state_shape" not in overrides:
        shapes = []
        for name, _ in pairs:
            spec = sig.input(name) if name in sig.input_names else None
            shape = resolve_shape(spec.shape, batch_size) if spec is not None else None
            if shape is None:
                raise ConfigError(
                    f"from_onnx: the graph does not give the shape of state input {name!r}; pass state_shapes=[...]",
                    field="state_shapes",
                )
            shapes.append(shape)
        result["state_shapes"] = shapes

    if fixed:
        result["fixed_inputs"] = fixed
    logit_name = overrides.get("logit_output", result.get("logit_output"))
    if "num_actions" not in overrides and logit_name in sig.output_names:
        shape = sig.output(logit_name).shape
        if shape and isinstance(shape[-1], int):
            result["num_actions"] = shape[-1]
    return result
