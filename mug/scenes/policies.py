"""Who acts for an agent: a human, a random policy, an ONNX policy (browser or server) or Python code."""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mug.errors import ConfigError
from mug.inference.config import ModelConfig

__all__ = ["Human", "Random", "PolicySpec", "policy_spec", "file_sha256"]


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
    """The agent samples uniformly from its action space, seeded (``mug.Random``)."""


@dataclass(frozen=True)
class PolicySpec:
    """A normalised policy: ``kind`` is ``human``, ``random``, ``model`` or ``callable``.

    ``where`` is ``client`` (the participant's browser runs the ONNX model) or
    ``server`` (Python runs it); humans and random policies have ``where="server"``
    for random and ``"client"`` for humans.
    """

    kind: str
    where: str
    config: ModelConfig | None = None
    fn: Callable[..., Any] | None = None

    def client_metadata(self, model_url: str | None) -> dict[str, Any]:
        """What a client needs to know about this policy; ``model_url`` is where a browser-side model is served."""
        out: dict[str, Any] = {"kind": self.kind, "where": self.where}
        if self.kind == "model" and self.where == "client" and self.config is not None:
            config = self.config.to_dict()
            config["onnx_path"] = Path(config["onnx_path"]).name  # the server's file system stays private
            out["config"] = config
            out["model_url"] = model_url
        return out


def policy_spec(agent: str, value: Any, where: str) -> PolicySpec:
    """Normalise one entry of a policy mapping; ``ConfigError`` names the agent on bad values."""
    if value is Human or isinstance(value, Human):
        return PolicySpec("human", "client")
    if value is Random or isinstance(value, Random):
        return PolicySpec("random", "server")
    if isinstance(value, ModelConfig):
        try:
            value.validate()
        except ConfigError as exc:
            raise ConfigError(f"policies[{agent!r}]: {exc}", field=exc.field) from exc
        if where == "server" and value.custom_inference_fn is not None:
            raise ConfigError(
                f"policies[{agent!r}]: a custom_inference_fn is JavaScript and runs only in the browser; use inference='client'",
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
