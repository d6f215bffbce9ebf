"""Declarative ONNX policies: config, graph checks and the Python runtime."""

from mug.inference.config import ModelConfig
from mug.inference.runtime import DEFAULT_AGENT, PolicyRuntime, PolicyStep
from mug.inference.signature import ModelSignature, TensorSpec, read_signature

__all__ = ["ModelConfig", "PolicyRuntime", "PolicyStep", "DEFAULT_AGENT", "ModelSignature", "TensorSpec", "read_signature"]
