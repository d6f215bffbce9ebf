"""Who acts for an agent: a human, a random policy, an ONNX policy (browser or server) or Python code."""

from __future__ import annotations

import functools
import hashlib
import math
import numbers
import os
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mug.errors import ConfigError
from mug.inference.config import ModelConfig

__all__ = ["HOSTS", "INFERENCE", "Human", "Random", "PolicySpec", "check_model_fits", "discrete_n", "file_sha256", "policy_spec"]

#: Where a ``ModelConfig`` policy may be asked to run (``GymScene.policies(inference=...)``).
INFERENCE = ("auto", "browser", "server")
#: Who runs a session: a participant server (``mug.deploy``) or the notebook preview.
HOSTS = ("deployment", "preview")


@functools.lru_cache(maxsize=64)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of a file's bytes (hex), computed again only when its size or modification time changes."""
    info = os.stat(path)
    return _sha256(os.fspath(path), info.st_size, info.st_mtime_ns)


class Human:
    """The agent is played by a participant from the keyboard (``mug.Human``)."""


class Random:
    """The agent samples uniformly from its action space (``mug.Random``).

    Each session draws from its own generator, seeded by the scene's
    ``policy_seed`` and the agent: every session of a scene draws the same
    sequence, however many run at once.
    """


@dataclass(frozen=True)
class PolicySpec:
    """A normalised policy: ``kind`` is ``human``, ``random``, ``model`` or ``callable``.

    ``where`` is what the researcher asked for a ``model``: ``auto``, ``browser``
    or ``server`` (see :meth:`runs_in_browser`); humans are ``browser``, random
    and callable policies ``server``.
    """

    kind: str
    where: str
    config: ModelConfig | None = None
    fn: Callable[..., Any] | None = None

    def runs_in_browser(self, host: str, step_mode: str) -> bool:
        """Whether this ``ModelConfig`` policy runs in the participant's browser in a session run by ``host``.

        The rule: an AI agent acts on the observation of the step it acts in.
        ``inference="auto"`` runs the model in the browser in the notebook
        preview (it exists to test the browser runtime, and waits for it), in
        lockstep scenes (the step waits for every client anyway) and for a
        ``custom_inference_fn`` (JavaScript); in a deployed realtime scene it runs
        in the server's Python runtime, so the AI never acts on a frame one
        network round trip old. ``"browser"`` and ``"server"`` are followed as
        asked; a realtime step then waits for the browser's result.
        """
        if self.kind != "model":
            return False
        if self.where != "auto":
            return self.where == "browser"
        if self.config is not None and self.config.custom_inference_fn is not None:
            return True
        return host == "preview" or step_mode == "lockstep"

    def client_metadata(self, model_url: str | None, in_browser: bool) -> dict[str, Any]:
        """What a client needs to know about this policy; ``model_url`` is where a browser-side model is served."""
        out: dict[str, Any] = {"kind": self.kind, "where": "browser" if in_browser else "server"}
        if in_browser and self.config is not None:
            config = self.config.to_dict()
            config["onnx_path"] = Path(config["onnx_path"]).name  # the server's file system stays private
            out["config"] = config
            out["model_url"] = model_url
        return out


def policy_spec(agent: Hashable, value: Any, where: str) -> PolicySpec:
    """Normalise one entry of a policy mapping; ``ConfigError`` names ``agent`` (the env's id) on bad values."""
    if value is Human or isinstance(value, Human):
        return PolicySpec("human", "browser")
    if value is Random or isinstance(value, Random):
        return PolicySpec("random", "server")
    if isinstance(value, ModelConfig):
        try:
            value.validate()
        except ConfigError as exc:
            raise ConfigError(f"policies[{agent!r}]: {exc}", field=exc.field) from exc
        if where == "server" and value.custom_inference_fn is not None:
            raise ConfigError(
                f"policies[{agent!r}]: a custom_inference_fn is JavaScript and runs only in the browser; use inference='browser' or 'auto'",
                field="inference",
            )
        return PolicySpec("model", where, config=value)
    if callable(value):
        return PolicySpec("callable", "server", fn=value)
    raise ConfigError(
        f"policies[{agent!r}]: expected mug.Human, mug.Random, a ModelConfig or a Python callable (observation, agent_id) -> action, "
        f"got {value!r}",
        field="policies",
    )


def discrete_n(space: Any) -> int | None:
    """The ``n`` of a ``Discrete`` space, ``None`` for any other space."""
    n = getattr(space, "n", None)
    return int(n) if isinstance(n, numbers.Integral) and not hasattr(space, "nvec") else None


def _values_per_step(space: Any) -> int | None:
    """How many values the runtimes feed for one observation of ``space`` (flattened as it is, no one-hot)."""
    from gymnasium import spaces

    if isinstance(space, (spaces.Box, spaces.MultiBinary)):
        return math.prod(space.shape)
    if isinstance(space, spaces.Discrete):
        return 1
    if isinstance(space, spaces.MultiDiscrete):
        return math.prod(space.nvec.shape)
    if isinstance(space, spaces.Dict):
        sizes = [_values_per_step(s) for s in space.spaces.values()]
        return None if None in sizes else sum(sizes)  # type: ignore[arg-type]
    return None


def check_model_fits(agent: Hashable, config: ModelConfig, action_space: Any, observation_space: Any) -> None:
    """``ConfigError`` when a validated ``config`` cannot act for ``agent`` (named as the env spells it).

    With a ``Discrete(n)`` action space the model must give ``n`` logits: the
    logit output's last dimension (unless a custom function chooses the action)
    and ``num_actions`` where set. The observation input must take as many
    values per step as an observation of the space has.
    """
    n = discrete_n(action_space)
    if n is not None and config.num_actions is not None and config.num_actions != n:
        raise ConfigError(
            f"policies[{agent!r}]: the model has {config.num_actions} actions but the agent's action space has {n}",
            field="policies",
        )
    signature = config.signature()
    if n is not None and config.custom_inference_fn is None:
        logits = signature.output(config.logit_output)
        size = logits.shape[-1] if logits.shape else None
        if isinstance(size, int) and size != n:
            raise ConfigError(
                f"policies[{agent!r}]: logit_output {logits.describe()} holds {size} value(s) per step but the agent's "
                f"action space is Discrete({n}), so the logit output must hold {n} logits. "
                f"Model outputs: {', '.join(o.describe() for o in signature.outputs)}",
                field="logit_output",
            )
    expected = _values_per_step(observation_space)
    if expected is not None and isinstance(config.obs_input, str):
        shape = signature.input(config.obs_input).shape or ()
        per_row = math.prod(d for d in shape[1:] if isinstance(d, int)) if len(shape) > 1 else None
        if per_row is not None and all(isinstance(d, int) for d in shape[1:]) and per_row != expected:
            raise ConfigError(
                f"policies[{agent!r}]: the model's input {config.obs_input!r} takes {per_row} values per step but the "
                f"agent's observations ({observation_space}) have {expected}",
                field="policies",
            )
