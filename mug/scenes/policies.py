"""Who acts for an agent: a human, a random policy, an ONNX policy (browser or server) or Python code."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mug.errors import ConfigError
from mug.inference.config import ModelConfig

__all__ = ["HOSTS", "INFERENCE", "Human", "Random", "PolicySpec", "policy_spec"]

#: Where a ``ModelConfig`` policy may be asked to run (``GymScene.policies(inference=...)``).
INFERENCE = ("auto", "browser", "server")
#: Who runs a session: a participant server (``mug.deploy``) or the notebook preview.
HOSTS = ("deployment", "preview")


class Human:
    """The agent is played by a participant from the keyboard (``mug.Human``)."""


class Random:
    """The agent samples uniformly from its action space, seeded (``mug.Random``)."""


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

    def client_metadata(self, model_url: str, in_browser: bool) -> dict[str, Any]:
        """What a client needs to know about this policy; ``model_url`` is where a browser-side model is served."""
        out: dict[str, Any] = {"kind": self.kind, "where": "browser" if in_browser else "server"}
        if in_browser and self.config is not None:
            config = self.config.to_dict()
            config["onnx_path"] = Path(config["onnx_path"]).name  # the server's file system stays private
            out["config"] = config
            out["model_url"] = model_url
        return out


def policy_spec(agent: str, value: Any, where: str) -> PolicySpec:
    """Normalise one entry of a policy mapping; ``ConfigError`` names the agent on bad values."""
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
