"""Argument checks shared by the scene builders: each returns the checked value or raises a ``ConfigError``."""

from __future__ import annotations

import inspect
import numbers
from collections.abc import Callable
from typing import Any

from mug.errors import ConfigError, did_you_mean

__all__ = ["accepts", "integer", "one_of"]


def integer(value: Any, field: str, low: int, high: int | None = None) -> int:
    """``value`` as an integer >= ``low`` (and <= ``high``); else a ``ConfigError`` naming ``field``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"in {low}..{high}"
        raise ConfigError(f"{field}: expected an integer {bound}, got {value!r}", field=field)
    return int(value)


def one_of(value: Any, field: str, options: tuple[str, ...]) -> str:
    """``value`` if it is one of ``options``; else a ``ConfigError`` naming ``field`` (with a suggestion)."""
    if value not in options:
        raise ConfigError(
            f"{field}: expected one of {list(options)}, got {value!r}.{did_you_mean(str(value), options)}", field=field
        )
    return value


def accepts(fn: Callable[..., Any], name: str) -> bool:
    """Whether ``fn`` takes a keyword argument ``name`` (or any keyword)."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
