"""What an ONNX model takes and returns: names, shapes and dtypes of its tensors."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, shape_inference

from mug.errors import ConfigError

__all__ = ["Dim", "TensorSpec", "ModelSignature", "read_signature"]

#: One dimension of a tensor shape: a fixed size, a symbolic name, or unknown.
Dim = int | str | None


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output."""

    name: str
    shape: tuple[Dim, ...] | None
    """Dimensions as the graph declares them; ``None`` when the rank is unknown."""
    dtype: str
    """NumPy dtype name, e.g. ``"float32"``, ``"int64"``."""

    def shape_text(self) -> str:
        """The shape as ``[batch_size, 128]`` (``?`` for unknown dimensions)."""
        if self.shape is None:
            return "[?...]"
        return "[" + ", ".join("?" if d is None else str(d) for d in self.shape) + "]"

    def describe(self) -> str:
        """``name float32 [batch_size, 128]``."""
        return f"{self.name} {self.dtype} {self.shape_text()}"


@dataclass(frozen=True)
class ModelSignature:
    """The inputs and outputs of an ONNX graph (initializers excluded)."""

    path: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    @property
    def input_names(self) -> list[str]:
        return [t.name for t in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [t.name for t in self.outputs]

    def input(self, name: str) -> TensorSpec:
        """The input called ``name`` (``KeyError`` if there is none)."""
        for spec in self.inputs:
            if spec.name == name:
                return spec
        raise KeyError(name)

    def output(self, name: str) -> TensorSpec:
        """The output called ``name`` (``KeyError`` if there is none)."""
        for spec in self.outputs:
            if spec.name == name:
                return spec
        raise KeyError(name)

    def table(self) -> str:
        """A plain-text table of the inputs and outputs."""
        width = max((len(t.name) for t in self.inputs + self.outputs), default=4)
        lines = [f"model {self.path}"]
        for title, specs in (("inputs", self.inputs), ("outputs", self.outputs)):
            lines.append(f"  {title}:")
            lines += [f"    {t.name:<{width}}  {t.dtype:<8} {t.shape_text()}" for t in specs]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """JSON-ready form: ``{"inputs": [{"name", "shape", "dtype"}], "outputs": [...]}``."""

        def spec(t: TensorSpec) -> dict:
            shape = None if t.shape is None else list(t.shape)
            return {"name": t.name, "shape": shape, "dtype": t.dtype}

        return {"inputs": [spec(t) for t in self.inputs], "outputs": [spec(t) for t in self.outputs]}


def _spec(value: onnx.ValueInfoProto) -> TensorSpec:
    tensor_type = value.type.tensor_type
    dtype = str(np.dtype(helper.tensor_dtype_to_np_dtype(tensor_type.elem_type)))
    if not tensor_type.HasField("shape"):
        return TensorSpec(value.name, None, dtype)
    dims: list[Dim] = []
    for d in tensor_type.shape.dim:
        if d.HasField("dim_value"):
            dims.append(int(d.dim_value))
        elif d.HasField("dim_param"):
            dims.append(d.dim_param)
        else:
            dims.append(None)
    return TensorSpec(value.name, tuple(dims), dtype)


def _merge(declared: TensorSpec, inferred: TensorSpec | None) -> TensorSpec:
    """Prefer fixed sizes found by shape inference over symbolic declared ones."""
    if inferred is None or inferred.shape is None:
        return declared
    if declared.shape is None or len(declared.shape) != len(inferred.shape):
        return inferred if declared.shape is None else declared
    dims = tuple(i if isinstance(i, int) and not isinstance(d, int) else d for d, i in zip(declared.shape, inferred.shape))
    return TensorSpec(declared.name, dims, declared.dtype)


def load_model(path: str | os.PathLike) -> onnx.ModelProto:
    """Load an ONNX file, raising :class:`ConfigError` when it is missing, empty or not an ONNX model."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"onnx_path: no file at {str(p)!r}; expected the path of an .onnx model file", field="onnx_path")
    if p.stat().st_size == 0:
        raise ConfigError(f"onnx_path: {str(p)!r} is not an ONNX model: the file is empty (0 bytes)", field="onnx_path")
    try:
        model = onnx.load(str(p))
    except Exception as exc:  # onnx raises DecodeError and others for non-ONNX bytes
        raise ConfigError(
            f"onnx_path: {str(p)!r} is not an ONNX model: its bytes do not decode as one ({type(exc).__name__}: {exc})",
            field="onnx_path",
        ) from exc
    if model.ir_version == 0 or not model.HasField("graph"):
        # Protobuf decodes many byte strings (an empty message among them); an ONNX model has an IR version and a graph.
        raise ConfigError(
            f"onnx_path: {str(p)!r} is not an ONNX model: its bytes decode to no IR version and no graph", field="onnx_path"
        )
    return model


def read_signature(path: str | os.PathLike, model: onnx.ModelProto | None = None) -> ModelSignature:
    """Read the inputs and outputs of the model at ``path``.

    Symbolic output dimensions that ONNX shape inference can resolve (such as
    the number of logits behind a ``Reshape``) are reported as fixed sizes.
    """
    model = model if model is not None else load_model(path)
    initializers = {init.name for init in model.graph.initializer}
    try:
        inferred = shape_inference.infer_shapes(model, data_prop=True).graph
        inferred_outputs = {v.name: _spec(v) for v in inferred.output}
    except Exception:  # inference is a refinement only; the declared shapes stand
        inferred_outputs = {}
    inputs = tuple(_spec(v) for v in model.graph.input if v.name not in initializers)
    outputs = tuple(_merge(_spec(v), inferred_outputs.get(v.name)) for v in model.graph.output)
    return ModelSignature(str(path), inputs, outputs)
