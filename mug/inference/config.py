"""``ModelConfig``: how to feed an ONNX policy and read its action.

The config is declarative data (it round-trips through JSON) so that the same
object drives the Python runtime, the browser runtime and the recorded study
metadata.
"""

from __future__ import annotations

import json
import numbers
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import numpy as np

from mug.errors import ConfigError, did_you_mean

__all__ = ["ModelConfig", "ACTION_MODES", "RESET_MODES"]

ACTION_MODES = ("sample", "argmax")
RESET_MODES = ("episode", "scene", "never")

FixedValue = float | int | list


def _name_list(value: Any, field_name: str) -> list[str]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise ConfigError(f"{field_name}: expected a list of tensor names, got {value!r}", field=field_name)
    for item in value:
        if not isinstance(item, str) or not item:
            raise ConfigError(f"{field_name}: every entry must be a tensor name (str), got {item!r}", field=field_name)
    return list(value)


def _shape(value: Any, field_name: str) -> list[int]:
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise ConfigError(f"{field_name}: expected a shape such as [1, 128], got {value!r}", field=field_name)
    dims = []
    for d in value:
        if isinstance(d, bool) or not isinstance(d, numbers.Integral) or d < 1:
            raise ConfigError(f"{field_name}: every dimension must be a positive integer, got {value!r}", field=field_name)
        dims.append(int(d))
    return dims


def _fixed_value(name: str, value: Any) -> FixedValue:
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, numbers.Number):  # bool is a Number too
        if isinstance(value, complex):
            raise ConfigError(f"fixed_inputs[{name!r}]: complex values are not supported", field="fixed_inputs")
        return value.item() if isinstance(value, np.generic) else value
    if isinstance(value, (list, tuple)):
        try:
            array = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ConfigError(
                f"fixed_inputs[{name!r}]: expected a number or a rectangular nested list of numbers, got {value!r}",
                field="fixed_inputs",
            ) from exc
        if array.dtype == object:
            raise ConfigError(f"fixed_inputs[{name!r}]: the nested list is not rectangular", field="fixed_inputs")
        return np.asarray(value).tolist()
    raise ConfigError(
        f"fixed_inputs[{name!r}]: expected a number or a nested list of numbers, got {type(value).__name__} {value!r}",
        field="fixed_inputs",
    )


def _shapes_by_name(shapes: Mapping[str, Any], state_inputs: list[str]) -> list[list[int]]:
    """``state_shapes`` given as ``{state input: shape}``, as the list in ``state_inputs`` order."""
    for name in shapes:
        if name not in state_inputs:
            raise ConfigError(
                f"state_shapes: {name!r} is not a state input.{did_you_mean(str(name), state_inputs)} "
                f"state_inputs: {state_inputs}",
                field="state_shapes",
            )
    missing = [n for n in state_inputs if n not in shapes]
    if missing:
        raise ConfigError(
            f"state_shapes: no shape for state input(s) {missing}; give one for every state input", field="state_shapes"
        )
    return [_shape(shapes[n], f"state_shapes[{n!r}]") for n in state_inputs]


@dataclass(init=False)
class ModelConfig:
    """How to run one ONNX policy: which tensors carry what, and how to choose an action.

    Args:
        onnx_path: path of the ``.onnx`` file.
        obs_input: the graph input that receives the observation, or a dict
            mapping observation keys to graph inputs (dict observations).
            A dict observation given to a single input is concatenated in
            sorted key order.
        logit_output: the graph output holding the action logits.
        state_inputs: recurrent-state inputs, paired by position with
            ``state_outputs``: output *i* of one step feeds input *i* of the next.
        state_outputs: recurrent-state outputs (see ``state_inputs``).
        state_shapes: the full shape of each state tensor as fed to the model
            (batch dimension included, e.g. ``[1, 128]``): a list in
            ``state_inputs`` order, or a dict keyed by state input name (kept as
            the list). ``None`` takes the graph's shapes with every symbolic
            dimension set to ``batch_size``.
        state_shape: one shape used for every state input (alternative to
            ``state_shapes``).
        fixed_inputs: graph inputs fed the same value every step (e.g.
            ``{"seq_lens": 1}``). A number fills the input's whole shape; a
            nested list gives the exact tensor. The dtype is the model's.
        batch_size: rows fed per step. Above 1 the observation is tiled on
            every row and row 0 of the logits is read (for exports with a
            hard-coded batch).
        action: ``"sample"`` (seeded softmax sampling) or ``"argmax"``.
        temperature: softmax temperature for sampling (> 0).
        custom_inference_fn: body of an async JavaScript function of
            ``(session, observation, modelConfig, context)`` replacing the
            declarative step in the browser runtime.
        reset_state: when hidden state returns to zeros: at every
            ``"episode"`` start (default), at every ``"scene"`` start, or
            ``"never"``.
        num_actions: number of discrete actions; ``from_onnx`` fills it from
            the logit output. Used to check actions a custom function returns.
    """

    onnx_path: str
    obs_input: str | dict[str, str]
    logit_output: str
    state_inputs: list[str] = field(default_factory=list)
    state_outputs: list[str] = field(default_factory=list)
    state_shapes: list[list[int]] | None = None
    fixed_inputs: dict[str, FixedValue] = field(default_factory=dict)
    batch_size: int = 1
    action: Literal["sample", "argmax"] = "sample"
    temperature: float = 1.0
    custom_inference_fn: str | None = None
    reset_state: Literal["episode", "scene", "never"] = "episode"
    num_actions: int | None = None

    def __init__(
        self,
        onnx_path: str | os.PathLike,
        obs_input: str | dict[str, str],
        logit_output: str,
        state_inputs: list[str] | tuple[str, ...] = (),
        state_outputs: list[str] | tuple[str, ...] = (),
        state_shapes: list[list[int]] | Mapping[str, list[int]] | None = None,
        fixed_inputs: dict[str, Any] | None = None,
        batch_size: int = 1,
        action: str = "sample",
        temperature: float = 1.0,
        custom_inference_fn: str | None = None,
        reset_state: str = "episode",
        num_actions: int | None = None,
        *,
        state_shape: list[int] | None = None,
    ) -> None:
        if not isinstance(onnx_path, (str, os.PathLike)) or not str(onnx_path):
            raise ConfigError(f"onnx_path: expected the path of an .onnx file, got {onnx_path!r}", field="onnx_path")
        self.onnx_path = str(onnx_path)

        if isinstance(obs_input, dict):
            if not obs_input:
                raise ConfigError("obs_input: the dict mapping observation keys to inputs is empty", field="obs_input")
            for key, name in obs_input.items():
                if not isinstance(key, str) or not isinstance(name, str) or not name:
                    raise ConfigError(
                        f"obs_input: expected observation key -> input name (both str), got {key!r}: {name!r}",
                        field="obs_input",
                    )
            self.obs_input = dict(obs_input)
        elif isinstance(obs_input, str) and obs_input:
            self.obs_input = obs_input
        else:
            raise ConfigError(
                f"obs_input: expected an input name or a dict of observation key -> input name, got {obs_input!r}",
                field="obs_input",
            )

        if not isinstance(logit_output, str) or not logit_output:
            raise ConfigError(f"logit_output: expected an output name, got {logit_output!r}", field="logit_output")
        self.logit_output = logit_output

        self.state_inputs = _name_list(state_inputs, "state_inputs")
        self.state_outputs = _name_list(state_outputs, "state_outputs")

        if state_shape is not None and state_shapes is not None:
            raise ConfigError("state_shape: give either state_shape (one for all) or state_shapes, not both", field="state_shape")
        if state_shape is not None:
            one = _shape(state_shape, "state_shape")
            self.state_shapes = [list(one) for _ in self.state_inputs]
        elif isinstance(state_shapes, Mapping):
            self.state_shapes = _shapes_by_name(state_shapes, self.state_inputs)
        elif state_shapes is not None:
            if isinstance(state_shapes, (str, bytes)) or not isinstance(state_shapes, (list, tuple)):
                raise ConfigError(
                    "state_shapes: expected one shape per state input (a list, or a dict keyed by state input name), "
                    f"got {state_shapes!r}",
                    field="state_shapes",
                )
            self.state_shapes = [_shape(s, f"state_shapes[{i}]") for i, s in enumerate(state_shapes)]
        else:
            self.state_shapes = None

        if fixed_inputs is None:
            fixed_inputs = {}
        if not isinstance(fixed_inputs, dict):
            raise ConfigError(f"fixed_inputs: expected a dict of input name -> value, got {fixed_inputs!r}", field="fixed_inputs")
        self.fixed_inputs = {str(k): _fixed_value(str(k), v) for k, v in fixed_inputs.items()}

        if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
            raise ConfigError(f"batch_size: expected a positive integer, got {batch_size!r}", field="batch_size")
        self.batch_size = int(batch_size)

        if action not in ACTION_MODES:
            raise ConfigError(
                f"action: expected one of {list(ACTION_MODES)}, got {action!r}.{did_you_mean(str(action), ACTION_MODES)}",
                field="action",
            )
        self.action = action  # type: ignore[assignment]

        if (
            isinstance(temperature, bool)
            or not isinstance(temperature, numbers.Real)
            or not temperature > 0
            or not np.isfinite(temperature)
        ):
            raise ConfigError(f"temperature: expected a finite number > 0, got {temperature!r}", field="temperature")
        self.temperature = float(temperature)

        if custom_inference_fn is not None and (not isinstance(custom_inference_fn, str) or not custom_inference_fn.strip()):
            raise ConfigError(
                "custom_inference_fn: expected the body of a JavaScript function as a non-empty string, "
                f"got {custom_inference_fn!r}",
                field="custom_inference_fn",
            )
        self.custom_inference_fn = custom_inference_fn

        if reset_state not in RESET_MODES:
            raise ConfigError(
                f"reset_state: expected one of {list(RESET_MODES)}, got {reset_state!r}."
                f"{did_you_mean(str(reset_state), RESET_MODES)}",
                field="reset_state",
            )
        self.reset_state = reset_state  # type: ignore[assignment]

        if num_actions is not None and (
            isinstance(num_actions, bool) or not isinstance(num_actions, numbers.Integral) or num_actions < 1
        ):
            raise ConfigError(f"num_actions: expected a positive integer or None, got {num_actions!r}", field="num_actions")
        self.num_actions = None if num_actions is None else int(num_actions)

    # -- construction from a model or from data ---------------------------------------

    @classmethod
    def from_onnx(cls, path: str | os.PathLike, **overrides: Any) -> ModelConfig:
        """Infer a config from the graph of ``path``; ``overrides`` replace inferred fields.

        RLlib exports are recognised by name (``state_in_i``/``state_out_i``,
        ``state_ins``/``state_outs``, ``seq_lens``); otherwise state inputs and
        outputs are paired by matching shape and order. Where the graph does
        not decide a field, :class:`~mug.ConfigError` lists the candidates;
        pass that field in ``overrides``.
        """
        from mug.inference.discover import infer_config_fields

        unknown = [k for k in overrides if k not in _FIELD_NAMES and k != "state_shape"]
        if unknown:
            raise ConfigError(
                f"from_onnx: unknown field {unknown[0]!r}; fields are {sorted(_FIELD_NAMES)}."
                f"{did_you_mean(unknown[0], _FIELD_NAMES)}",
                field=unknown[0],
            )
        inferred = infer_config_fields(Path(path), overrides)
        return cls(onnx_path=path, **{**inferred, **overrides})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Build a config from :meth:`to_dict` output (or hand-written JSON)."""
        if not isinstance(data, dict):
            raise ConfigError(f"from_dict: expected a dict of config fields, got {type(data).__name__}")
        unknown = [k for k in data if k not in _FIELD_NAMES and k != "state_shape"]
        if unknown:
            raise ConfigError(
                f"from_dict: unknown field {unknown[0]!r}.{did_you_mean(unknown[0], _FIELD_NAMES)}", field=unknown[0]
            )
        missing = [k for k in ("onnx_path", "obs_input", "logit_output") if k not in data]
        if missing:
            raise ConfigError(f"from_dict: missing required field {missing[0]!r}", field=missing[0])
        return cls(**data)

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> ModelConfig:
        """Read a config from a JSON file; a relative ``onnx_path`` is taken relative to that file."""
        p = Path(path)
        try:
            data = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"cannot read config JSON {str(p)!r}: {exc}") from exc
        if isinstance(data, dict) and isinstance(data.get("onnx_path"), str) and not Path(data["onnx_path"]).is_absolute():
            data = {**data, "onnx_path": str(p.parent / data["onnx_path"])}
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field (the browser runtime reads this form)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["state_inputs"] = list(self.state_inputs)
        out["state_outputs"] = list(self.state_outputs)
        out["state_shapes"] = None if self.state_shapes is None else [list(s) for s in self.state_shapes]
        out["fixed_inputs"] = dict(self.fixed_inputs)
        out["obs_input"] = dict(self.obs_input) if isinstance(self.obs_input, dict) else self.obs_input
        return out

    # -- checks against the graph -------------------------------------------------------

    def signature(self):
        """The model's inputs and outputs (:class:`~mug.inference.signature.ModelSignature`).

        ``print(config.signature().table())`` shows them as a table.
        """
        from mug.inference.signature import read_signature

        return read_signature(self.onnx_path)

    def validate(self, *, probe: bool = False) -> ModelConfig:
        """Check this config against the model's graph; return ``self`` when it fits.

        Raises :class:`~mug.ConfigError` naming the field, the wrong value, the
        model's actual names and shapes, and the closest name where one is near.
        A ``custom_inference_fn`` is compiled with the browser runtime's own
        code under Node, so a syntax error fails here (skipped without an
        error where Node is not installed). With ``probe=True`` one step is
        also run on a zero observation in the Python runtime, which catches
        graphs that only fail at run time (for example an export with a
        hard-coded batch size).
        """
        from mug.inference.validation import check_custom_function, probe_config, validate_config

        validate_config(self, self.signature())
        check_custom_function(self)
        if probe:
            probe_config(self)
        return self

    def __repr__(self) -> str:
        parts = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items() if v not in (None, [], {}))
        return f"ModelConfig({parts})"


_FIELD_NAMES = frozenset(f.name for f in fields(ModelConfig))
