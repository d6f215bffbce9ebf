"""MUG (Multi-User Gymnasium): Gymnasium and PettingZoo environments as browser experiments.

Public API::

    mug.ModelConfig     declarative ONNX policy config (from_onnx, validate, signature)
    mug.PolicyRuntime   runs a ModelConfig in Python (ONNX Runtime or onnx.reference)
    mug.ConfigError     a configuration value is wrong (names the field)
    mug.PolicyError     running a policy failed
"""

from mug.errors import ConfigError, MugError, PolicyError
from mug.inference import ModelConfig, PolicyRuntime, PolicyStep

__version__ = "0.1.0"

__all__ = ["ConfigError", "MugError", "PolicyError", "ModelConfig", "PolicyRuntime", "PolicyStep", "__version__"]
