"""``PolicyRuntime``: runs a ``ModelConfig`` step by step in Python.

The semantics (feeds, hidden state, seeded action choice) are those of the
browser runtime in ``js/src/runtime/``; ``mug check-policy`` and the parity
tests hold the two to the same numbers.
"""

from __future__ import annotations

import numbers
from pathlib import Path
from typing import Any

import numpy as np

from mug.errors import ConfigError, PolicyError
from mug.inference.backends import BACKENDS, open_backend
from mug.inference.config import ModelConfig
from mug.inference.sampling import Mulberry32, agent_seed, argmax_action, draw_action, softmax
from mug.inference.signature import ModelSignature
from mug.inference.tensors import ObservationEncoder, fixed_tensor, resolve_shape
from mug.inference.validation import validate_config
from mug.session.envs import DEFAULT_AGENT  # agent id used when ``step`` is called without one

__all__ = ["PolicyRuntime", "PolicyStep", "DEFAULT_AGENT"]

BATCH_HINT = (
    "\n  hint: an export whose graph hard-codes a batch size fails like this with batch_size=1; set batch_size to "
    "that size (the observation is repeated on every row and row 0 is read)"
)


class PolicyStep:
    """What one policy step computed: ``action``, ``logits``, ``probs`` and ``states``.

    ``states`` maps each state output name to the hidden state this step
    produced (the value fed back next step); its arrays are read-only.
    ``probs`` (float64, softmax of ``logits / temperature``) is computed on
    first access, off the stepping hot path.
    """

    __slots__ = ("_names", "_probs", "_states", "_temperature", "_values", "action", "logits")

    def __init__(
        self,
        action: int,
        logits: np.ndarray,
        probs: np.ndarray | None,
        state_names: list[str],
        state_values: list[np.ndarray],
        temperature: float = 1.0,
    ) -> None:
        self.action = action
        self.logits = logits
        self._probs = probs
        self._names = state_names
        self._values = state_values
        self._states: dict[str, np.ndarray] | None = None
        self._temperature = temperature

    @property
    def states(self) -> dict[str, np.ndarray]:
        """Hidden state this step produced, by state output name (read-only arrays)."""
        if self._states is None:
            self._states = dict(zip(self._names, self._values))
        return self._states

    @property
    def probs(self) -> np.ndarray:
        """Action probabilities."""
        if self._probs is None:
            self._probs = softmax(self.logits, self._temperature)
        return self._probs

    def __repr__(self) -> str:
        return f"PolicyStep(action={self.action}, logits={self.logits!r}, probs={self.probs!r}, states={list(self.states)})"


class _Agent:
    __slots__ = ("states", "rng", "steps")

    def __init__(self, states: list[np.ndarray], rng: Mulberry32) -> None:
        self.states = states
        self.rng = rng
        self.steps = 0


def _frozen(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


def _table(rows: list[tuple[str, str, str]]) -> str:
    width = max((len(r[0]) for r in rows), default=4)
    return "\n".join(f"    {name:<{width}}  {dtype:<8} {shape}" for name, dtype, shape in rows)


class PolicyRuntime:
    """Runs one ONNX policy for any number of agents, each with its own hidden state.

    Args:
        config: the policy's :class:`~mug.ModelConfig`; validated against the graph here.
        seed: seeds every agent's sampling stream (unsigned 32-bit).
        name: the policy's name in error messages (default: the model file's stem).
        backend: ``"auto"`` (ONNX Runtime if installed, else ``onnx.reference``),
            ``"onnxruntime"`` or ``"reference"``.

    Raises:
        ConfigError: the config does not fit the model, or it has a
            ``custom_inference_fn`` (JavaScript, run only by the browser runtime).
    """

    def __init__(self, config: ModelConfig, seed: int = 0, *, name: str | None = None, backend: str = "auto") -> None:
        if not isinstance(config, ModelConfig):
            raise ConfigError(f"PolicyRuntime: expected a ModelConfig, got {type(config).__name__}")
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed < 2**32:
            raise ConfigError(f"seed: expected an integer in [0, 2**32), got {seed!r}", field="seed")
        if config.custom_inference_fn is not None:
            raise ConfigError(
                "custom_inference_fn: the custom inference function is JavaScript and runs only in the browser "
                "runtime (participants, scene.preview, `mug check-policy`); the Python runtime needs a declarative "
                "config, or use a Python callable as a server-side policy",
                field="custom_inference_fn",
            )
        self.config = config
        self.seed = int(seed)
        self.name = name or _stem(config.onnx_path)
        self.model_signature: ModelSignature = config.signature()
        validate_config(config, self.model_signature)
        if backend not in BACKENDS:
            raise ConfigError(f"backend: expected one of {list(BACKENDS)}, got {backend!r}", field="backend")
        try:
            self._backend = open_backend(config.onnx_path, backend)
        except Exception as exc:
            raise ConfigError(f"onnx_path: the runtime cannot load {config.onnx_path!r}: {exc}", field="onnx_path") from exc
        self.backend_name = self._backend.name
        self._run = self._backend.run

        specs = {s.name: s for s in self.model_signature.inputs}
        batch = config.batch_size
        self._batch = batch
        self._encoder = ObservationEncoder(config.obs_input, specs, batch)
        self._feeds = {n: fixed_tensor(v, specs[n], batch) for n, v in config.fixed_inputs.items()}
        shapes = config.state_shapes or [resolve_shape(specs[n].shape, batch) for n in config.state_inputs]
        self._zero_states = [_frozen(np.zeros(shape, dtype=specs[n].dtype)) for n, shape in zip(config.state_inputs, shapes)]
        self._state_inputs = list(config.state_inputs)
        self._state_outputs = list(config.state_outputs)
        self._output_names = [config.logit_output, *config.state_outputs]
        self._argmax = config.action == "argmax"
        self._temperature = config.temperature
        self._agents: dict[Any, _Agent] = {}

    # -- agents -------------------------------------------------------------------------

    @property
    def agents(self) -> list[Any]:
        """Ids of the agents that have state in this runtime."""
        return list(self._agents)

    def _agent(self, agent_id: Any) -> _Agent:
        agent = self._agents.get(agent_id)
        if agent is None:
            agent = self._agents[agent_id] = _Agent(list(self._zero_states), Mulberry32(agent_seed(self.seed, agent_id)))
        return agent

    def reset(self, agent_id: Any = None) -> None:
        """Set hidden state back to zeros, for one agent or (``None``) every agent.

        Sampling streams continue; they are not part of the hidden state.
        """
        targets = self._agents.values() if agent_id is None else [self._agent(agent_id)]
        for agent in targets:
            agent.states = list(self._zero_states)
            agent.steps = 0

    def boundary(self, kind: str, agent_id: Any = None) -> bool:
        """Tell the runtime an ``"episode"`` or ``"scene"`` starts; resets state as ``reset_state`` says.

        Returns whether state was reset.
        """
        if kind not in ("episode", "scene"):
            raise ValueError(f"boundary: expected 'episode' or 'scene', got {kind!r}")
        mode = self.config.reset_state
        if mode == "never" or (mode == "scene" and kind == "episode"):
            return False
        self.reset(agent_id)
        return True

    # -- stepping -----------------------------------------------------------------------

    def step(self, obs: Any, agent_id: Any = DEFAULT_AGENT) -> PolicyStep:
        """Run one step for ``agent_id`` on observation ``obs``.

        Raises:
            PolicyError: the observation does not fit the model, ONNX Runtime
                failed (the message lists the feeds sent and the model's
                signature), or the logits are not finite.
        """
        agent = self._agents.get(agent_id) or self._agent(agent_id)
        feeds = self._feeds  # reused: every step overwrites the observation and state entries
        try:
            self._encoder.encode(obs, feeds)
        except ValueError as exc:
            raise PolicyError(f"policy {self.name!r}, agent {agent_id!r}: {exc}", policy=self.name) from exc
        for name, value in zip(self._state_inputs, agent.states):
            feeds[name] = value
        try:
            outputs = self._run(self._output_names, feeds, None)
        except Exception as exc:
            raise self._run_error(exc, feeds, agent_id, agent.steps) from exc
        raw = outputs[0]
        logits = raw[0] if raw.ndim == 2 else raw.reshape(self._batch, -1)[0]
        states = outputs[1:]
        for state in states:
            state.setflags(write=False)  # fed back next step: nobody may change it in place
        try:
            if self._argmax:
                action, probs = argmax_action(logits, self._temperature)
                result = PolicyStep(action, logits, probs, self._state_outputs, states)
            else:
                action = draw_action(logits, self._temperature, agent.rng)
                result = PolicyStep(action, logits, None, self._state_outputs, states, self._temperature)
        except ValueError as exc:
            raise PolicyError(f"policy {self.name!r}, agent {agent_id!r}, step {agent.steps}: {exc}", policy=self.name) from exc
        agent.states = states
        agent.steps += 1
        return result

    def _run_error(self, exc: Exception, feeds: dict[str, np.ndarray], agent_id: Any, step: int) -> PolicyError:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return PolicyError(
            f"policy {self.name!r}, agent {agent_id!r}, step {step}: {self.backend_name} failed: {first_line}\n"
            f"  feeds sent (batch_size={self._batch}):\n"
            f"{_table([(n, str(a.dtype), str(list(a.shape))) for n, a in feeds.items()])}\n"
            f"  the model expects:\n{_table([(s.name, s.dtype, s.shape_text()) for s in self.model_signature.inputs])}\n"
            f"  and returns:\n{_table([(s.name, s.dtype, s.shape_text()) for s in self.model_signature.outputs])}"
            f"{BATCH_HINT if self._batch == 1 else ''}",
            policy=self.name,
        )

    # -- snapshots ----------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """A copy of every agent's hidden state, sampling stream and step count."""
        return {
            "agents": {
                agent_id: {"states": [s.copy() for s in a.states], "rng": a.rng.state, "steps": a.steps}
                for agent_id, a in self._agents.items()
            }
        }

    def restore(self, snapshot: dict[str, Any]) -> None:
        """Return to a :meth:`snapshot`: agents not in it are dropped."""
        try:
            agents = snapshot["agents"]
            restored = {}
            for agent_id, data in agents.items():
                states = [
                    _frozen(np.array(s, dtype=z.dtype, copy=True)) for s, z in zip(data["states"], self._zero_states, strict=True)
                ]
                for s, z in zip(states, self._zero_states):
                    if s.shape != z.shape:
                        raise ValueError(f"state of shape {list(s.shape)} where {list(z.shape)} is expected")
                agent = _Agent(states, Mulberry32(int(data["rng"])))
                agent.steps = int(data["steps"])
                restored[agent_id] = agent
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"restore: not a snapshot of this runtime ({exc})") from exc
        self._agents = restored

    def __repr__(self) -> str:
        return f"PolicyRuntime(name={self.name!r}, backend={self.backend_name!r}, agents={len(self._agents)})"


def _stem(path: str) -> str:
    return Path(path).stem
