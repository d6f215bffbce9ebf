"""Checking a ``ModelConfig`` against its graph before anything runs."""

from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mug.errors import ConfigError, PolicyError, did_you_mean
from mug.inference.signature import ModelSignature, TensorSpec
from mug.inference.tensors import resolve_shape

if TYPE_CHECKING:
    from mug.inference.config import ModelConfig

__all__ = ["validate_config", "probe_config", "check_custom_function", "state_output_names_for"]


def state_output_names_for(input_name: str) -> list[str]:
    """Output names that by convention carry the next value of state input ``input_name``.

    ``state_in_0`` -> ``state_out_0``, ``state_ins`` -> ``state_outs``,
    ``h_in`` -> ``h_out``, ``hidden_input`` -> ``hidden_output``.
    """
    candidates = []
    for pattern, repl in (
        (r"(^|[_.])in(s?)([_.]|$)", r"\1out\2\3"),
        (r"(^|[_.])input(s?)([_.]|$)", r"\1output\2\3"),
        (r"_in(\d+)$", r"_out\1"),
    ):
        renamed = re.sub(pattern, repl, input_name)
        if renamed != input_name:
            candidates.append(renamed)
    return candidates


def _listing(specs: Iterable[TensorSpec]) -> str:
    return ", ".join(s.describe() for s in specs) or "none"


def _fail(field: str, message: str) -> None:
    raise ConfigError(f"{field}: {message}", field=field)


def _names_in(config: ModelConfig) -> set[str]:
    obs = set(config.obs_input.values()) if isinstance(config.obs_input, dict) else {config.obs_input}
    return obs | {config.logit_output} | set(config.state_inputs) | set(config.state_outputs) | set(config.fixed_inputs)


def _suggest(name: str, candidates: list[str], config: ModelConfig) -> str:
    """Did-you-mean among the names the config does not already use elsewhere."""
    free = [c for c in candidates if c not in _names_in(config)]
    return did_you_mean(name, free or candidates)


def _check_name(sig: ModelSignature, field: str, name: str, config: ModelConfig, side: str) -> TensorSpec:
    """The spec of input (``side="input"``) or output ``name``; ``ConfigError`` with the model's names otherwise."""
    names, other = (sig.input_names, sig.output_names) if side == "input" else (sig.output_names, sig.input_names)
    specs = sig.inputs if side == "input" else sig.outputs
    if name in names:
        return sig.input(name) if side == "input" else sig.output(name)
    opposite = "output" if side == "input" else "input"
    if name in other:
        _fail(field, f"{name!r} is an {opposite} of the model, not an {side}. Model {side}s: {_listing(specs)}")
    _fail(field, f"the model has no {side} {name!r}.{_suggest(name, names, config)} Model {side}s: {_listing(specs)}")
    raise AssertionError  # unreachable


def _check_input(sig: ModelSignature, field: str, name: str, config: ModelConfig) -> TensorSpec:
    return _check_name(sig, field, name, config, "input")


def _check_output(sig: ModelSignature, field: str, name: str, config: ModelConfig) -> TensorSpec:
    return _check_name(sig, field, name, config, "output")


def _shapes_agree(a: TensorSpec, b: TensorSpec) -> bool:
    if a.shape is None or b.shape is None:
        return True
    if len(a.shape) != len(b.shape):
        return False
    return all(x == y for x, y in zip(a.shape, b.shape) if isinstance(x, int) and isinstance(y, int))


def _check_states(config: ModelConfig, sig: ModelSignature) -> None:
    ins, outs = config.state_inputs, config.state_outputs
    for field, names in (("state_inputs", ins), ("state_outputs", outs)):
        twice = [n for i, n in enumerate(names) if n in names[:i]]
        if twice:
            _fail(field, f"{twice[0]!r} is listed twice in {names}; each state pair has its own input and output")
    if len(ins) != len(outs):
        _fail(
            "state_outputs" if len(outs) < len(ins) else "state_inputs",
            f"state_inputs has {len(ins)} names {ins} but state_outputs has {len(outs)} {outs}; "
            "they are paired by position (output i feeds input i next step)",
        )
    in_specs = [_check_input(sig, f"state_inputs[{i}]", n, config) for i, n in enumerate(ins)]
    out_specs = [_check_output(sig, f"state_outputs[{i}]", n, config) for i, n in enumerate(outs)]
    for i, (inp, out) in enumerate(zip(in_specs, out_specs)):
        for expected in state_output_names_for(inp.name):
            if expected in outs and outs.index(expected) != i:
                _fail(
                    "state_outputs",
                    f"state_inputs[{i}]={inp.name!r} is paired with state_outputs[{i}]={out.name!r}, but by its name "
                    f"{expected!r} (state_outputs[{outs.index(expected)}]) feeds it. Are they swapped? "
                    "Output i feeds input i next step.",
                )
        if not _shapes_agree(inp, out):
            _fail(
                "state_outputs",
                f"pair {i} does not fit: state output {out.describe()} cannot feed state input {inp.describe()} "
                "(their shapes differ). Output i feeds input i next step.",
            )
        if inp.dtype != out.dtype:
            _fail(
                "state_outputs",
                f"pair {i} does not fit: state output {out.describe()} has dtype {out.dtype} but state input "
                f"{inp.describe()} takes {inp.dtype}",
            )
    if config.state_shapes is None:
        for spec in in_specs:
            if spec.shape is None:
                _fail("state_shapes", f"the model does not give the shape of {spec.name!r}; set state_shapes")
        return
    if len(config.state_shapes) != len(ins):
        _fail("state_shapes", f"{len(config.state_shapes)} shapes given for {len(ins)} state inputs {ins}")
    for i, (spec, shape) in enumerate(zip(in_specs, config.state_shapes)):
        expected = resolve_shape(spec.shape, config.batch_size)
        if expected is not None and list(shape) != expected:
            _fail(
                f"state_shapes[{i}]",
                f"{list(shape)} does not fit the model's {spec.describe()}: with batch_size={config.batch_size} "
                f"the state tensor must be {expected}",
            )


def _check_fixed(config: ModelConfig, sig: ModelSignature, taken: set[str]) -> None:
    for name, value in config.fixed_inputs.items():
        spec = _check_input(sig, f"fixed_inputs[{name!r}]", name, config)
        if name in taken:
            _fail(f"fixed_inputs[{name!r}]", f"{name!r} is already fed as the observation or a state input")
        array = np.asarray(value)
        dtype = np.dtype(spec.dtype)
        if dtype.kind in "iub":
            if not np.all(np.isfinite(array.astype(np.float64))) or not np.all(np.mod(array, 1) == 0):
                _fail(
                    f"fixed_inputs[{name!r}]", f"{value!r} is not a whole number, but the model's {spec.describe()} takes {dtype}"
                )
            if dtype.kind in "iu":
                info = np.iinfo(dtype)
                if array.size and (array.min() < info.min or array.max() > info.max):
                    _fail(
                        f"fixed_inputs[{name!r}]",
                        f"{value!r} does not fit the model's {spec.describe()} ({dtype} holds {info.min}..{info.max})",
                    )
        elif dtype.kind != "f":
            _fail(f"fixed_inputs[{name!r}]", f"the model's {spec.describe()} has dtype {dtype}, which fixed_inputs cannot feed")
        if isinstance(value, list):
            expected = resolve_shape(spec.shape, config.batch_size)
            if expected is not None and list(array.shape) != expected:
                _fail(
                    f"fixed_inputs[{name!r}]",
                    f"a tensor of shape {list(array.shape)} does not fit the model's {spec.describe()}: "
                    f"with batch_size={config.batch_size} it must be {expected} (or give one number to fill it)",
                )


def _check_batch(config: ModelConfig, obs_specs: list[TensorSpec]) -> None:
    for spec in obs_specs:
        if spec.shape and isinstance(spec.shape[0], int) and spec.shape[0] != config.batch_size:
            _fail(
                "batch_size",
                f"batch_size={config.batch_size} but the model's {spec.describe()} has a fixed batch dimension "
                f"of {spec.shape[0]}; set batch_size={spec.shape[0]}",
            )


def _check_logits(config: ModelConfig, spec: TensorSpec) -> None:
    if np.dtype(spec.dtype).kind != "f":
        _fail("logit_output", f"{spec.describe()} is not a float tensor, so it cannot hold logits")
    last = spec.shape[-1] if spec.shape else None
    if not isinstance(last, int):
        if config.num_actions is None:
            _fail(
                "num_actions",
                f"the model does not say how many logits {spec.describe()} holds; set num_actions to the number of actions",
            )
    elif config.num_actions is not None and config.num_actions != last:
        _fail("num_actions", f"num_actions={config.num_actions} but the model's {spec.describe()} holds {last} logits")


def validate_config(config: ModelConfig, sig: ModelSignature) -> None:
    """Raise :class:`ConfigError` for the first way ``config`` does not fit ``sig``."""
    if isinstance(config.obs_input, dict):
        obs_specs = [_check_input(sig, f"obs_input[{k!r}]", n, config) for k, n in config.obs_input.items()]
    else:
        obs_specs = [_check_input(sig, "obs_input", config.obs_input, config)]
    logit_spec = _check_output(sig, "logit_output", config.logit_output, config)
    _check_states(config, sig)

    obs_names = [s.name for s in obs_specs]
    if len(set(obs_names)) != len(obs_names):
        _fail("obs_input", f"two observation keys feed the same input: {config.obs_input}")
    for name in config.state_inputs:
        if name in obs_names:
            _fail("state_inputs", f"{name!r} is also the observation input")
    if config.logit_output in config.state_outputs:
        _fail("state_outputs", f"{config.logit_output!r} is also the logit output")
    _check_fixed(config, sig, set(obs_names) | set(config.state_inputs))

    fed = set(obs_names) | set(config.state_inputs) | set(config.fixed_inputs)
    for spec in sig.inputs:
        if spec.name not in fed:
            hint = "1" if spec.name == "seq_lens" else "<value>"
            _fail(
                "fixed_inputs",
                f"the model's input {spec.describe()} is not fed by the config; add it to fixed_inputs "
                f"(e.g. fixed_inputs={{{spec.name!r}: {hint}}}) or to state_inputs",
            )
    _check_batch(config, obs_specs)
    _check_logits(config, logit_spec)


def _zero_observation(config: ModelConfig, sig: ModelSignature) -> Any:
    def zeros(name: str) -> np.ndarray:
        shape = resolve_shape(sig.input(name).shape, 1) or [1, 1]
        return np.zeros(int(np.prod(shape[1:])) if len(shape) > 1 else 1, dtype=sig.input(name).dtype)

    if isinstance(config.obs_input, dict):
        return {key: zeros(name) for key, name in config.obs_input.items()}
    return zeros(config.obs_input)


def probe_config(config: ModelConfig) -> None:
    """Run one step on a zero observation in the Python runtime; raise ``ConfigError`` if it fails."""
    from mug.inference.runtime import PolicyRuntime

    if config.custom_inference_fn is not None:
        return  # the custom function is JavaScript: only the browser runtime (or `mug check-policy`) can run it
    runtime = PolicyRuntime(config)
    try:
        runtime.step(_zero_observation(config, runtime.model_signature))
    except PolicyError as exc:
        raise ConfigError(f"probe step failed: {exc}") from exc


@functools.lru_cache(maxsize=128)
def _compile_error(body: str, policy: str) -> str | None:
    """The browser runtime's compile error for ``body`` (run by Node), ``None`` if it compiles or cannot be checked."""
    from mug.inference.parity import STATIC

    node, script = shutil.which("node"), STATIC / "compile-custom.mjs"
    if node is None or not script.is_file():
        return None
    request = json.dumps({"body": body, "policy": policy})
    try:
        proc = subprocess.run([node, str(script)], input=request, capture_output=True, text=True, timeout=60)
        answer = json.loads(proc.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.TimeoutExpired, ValueError, IndexError) as exc:
        warnings.warn(
            f"mug: could not compile custom_inference_fn under Node ({type(exc).__name__}: {exc}); the browser compiles it",
            stacklevel=4,
        )
        return None
    return answer.get("error")


def check_custom_function(config: ModelConfig) -> None:
    """Compile ``custom_inference_fn`` with the browser runtime's own code (``js/bin/compile-custom.mjs``) under Node.

    A syntax error raises :class:`ConfigError` with the runtime's message.
    Where Node or the built JS runtime is missing the check is skipped
    without an error (the browser still compiles the function before its first step).
    """
    if config.custom_inference_fn is None:
        return
    error = _compile_error(config.custom_inference_fn, Path(config.onnx_path).stem)
    if error is not None:
        raise ConfigError(f"{error} (compiled by the browser runtime's code under Node)", field="custom_inference_fn")
