"""Exceptions raised by MUG.

Every error names what was wrong and what was expected, so a researcher can fix
a config from the message alone.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["MugError", "ConfigError", "PolicyError", "did_you_mean"]


class MugError(Exception):
    """Base class of every error MUG raises on purpose."""


class ConfigError(MugError, ValueError):
    """A configuration value is wrong.

    Attributes:
        field: the configuration field at fault (for example ``"state_inputs"``),
            or ``None`` when the problem is not tied to one field.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class PolicyError(MugError, RuntimeError):
    """Running a policy failed (ONNX Runtime error, bad custom function result).

    Attributes:
        policy: the policy's name.
    """

    def __init__(self, message: str, *, policy: str) -> None:
        super().__init__(message)
        self.policy = policy


def did_you_mean(value: str, candidates: Iterable[str]) -> str:
    """Return ``" Did you mean 'x'?"`` for the closest candidate (similar spelling, or one name
    being a prefix of the other, as ``observation``/``obs``), or ``""``."""
    options = [str(c) for c in candidates]
    matches = difflib.get_close_matches(str(value), options, n=1, cutoff=0.5)
    if not matches:
        low = str(value).lower()
        matches = [c for c in options if c and (low.startswith(c.lower()) or c.lower().startswith(low))]
    return f" Did you mean {matches[0]!r}?" if matches else ""
