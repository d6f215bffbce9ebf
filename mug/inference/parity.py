"""Run one policy over the same observations in Python and in the JS runtime (Node), and compare.

The JS side is ``mug/static/policy-trace.mjs``, the bundled form of
``js/bin/policy-trace.mjs``: the browser runtime's code run by Node.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mug.errors import MugError, PolicyError
from mug.inference.config import ModelConfig
from mug.inference.runtime import DEFAULT_AGENT, PolicyRuntime
from mug.session.messages import jsonable

__all__ = [
    "TraceStep",
    "ParityReport",
    "python_trace",
    "node_trace",
    "compare_traces",
    "node_available",
    "policy_trace_script",
    "random_observations",
]

STATIC = Path(__file__).resolve().parent.parent / "static"


@dataclass
class TraceStep:
    """One step of one agent: what a runtime computed."""

    agent: str
    action: int
    logits: np.ndarray | None
    probs: np.ndarray | None
    states: dict[str, np.ndarray]


@dataclass
class ParityReport:
    """How far the JS runtime's results are from Python's on the same inputs."""

    steps: int
    differing_actions: int
    max_logit_delta: float
    max_state_delta: dict[str, float] = field(default_factory=dict)
    first_differing_step: int | None = None

    def within(self, tolerance: float = 1e-4) -> bool:
        """Whether actions are identical and every value is within ``tolerance``."""
        deltas = [self.max_logit_delta, *self.max_state_delta.values()]
        return self.differing_actions == 0 and all(d <= tolerance for d in deltas)

    def lines(self) -> list[str]:
        """Human-readable summary lines."""
        out = [
            f"steps compared: {self.steps}",
            f"differing actions: {self.differing_actions}"
            + ("" if self.first_differing_step is None else f" (first at step {self.first_differing_step})"),
            f"max |Δ| logits: {self.max_logit_delta:.3g}",
        ]
        out += [f"max |Δ| {name}: {delta:.3g}" for name, delta in self.max_state_delta.items()]
        return out


def _record(entry: Any) -> tuple[Any, Any, bool]:
    if isinstance(entry, dict) and "obs" in entry:
        return entry["obs"], entry.get("agent", DEFAULT_AGENT), bool(entry.get("reset", False))
    return entry, DEFAULT_AGENT, False


def python_trace(config: ModelConfig, steps: list[Any], seed: int = 0, *, backend: str = "auto") -> list[TraceStep]:
    """Run ``steps`` (observations, or ``{"obs", "agent", "reset"}`` dicts) in the Python runtime."""
    runtime = PolicyRuntime(config, seed, backend=backend)
    trace = []
    for entry in steps:
        obs, agent, reset = _record(entry)
        if reset:
            runtime.reset(agent)
        out = runtime.step(obs, agent)
        trace.append(TraceStep(str(agent), out.action, out.logits, out.probs, dict(out.states)))
    return trace


def node_available() -> bool:
    """Whether Node.js and the built ``policy-trace.mjs`` are both present."""
    return shutil.which("node") is not None and (STATIC / "policy-trace.mjs").is_file()


def policy_trace_script() -> Path:
    """Path of the bundled JS trace command; ``MugError`` if the JS build is missing."""
    script = STATIC / "policy-trace.mjs"
    if not script.is_file():
        raise MugError(f"the JS runtime is not built ({script} is missing); run `npm ci && npm run build` in js/")
    return script


def node_trace(
    config: ModelConfig, steps: list[Any], seed: int = 0, *, name: str | None = None, timeout: float = 600
) -> list[TraceStep]:
    """Run ``steps`` in the JS runtime under Node; ``PolicyError`` carries the JS message on failure."""
    node = shutil.which("node")
    if node is None:
        raise MugError("Node.js is not installed, so the JS runtime cannot run here")
    script = policy_trace_script()
    with tempfile.TemporaryDirectory(prefix="mug-trace-") as tmp:
        cfg_path, obs_path = Path(tmp, "config.json"), Path(tmp, "obs.json")
        cfg_path.write_text(json.dumps(config.to_dict()))
        obs_path.write_text(json.dumps(jsonable(list(steps))))
        cmd = [
            node,
            str(script),
            "--model",
            config.onnx_path,
            "--config",
            str(cfg_path),
            "--obs",
            str(obs_path),
            "--seed",
            str(seed),
        ]
        if name:
            cmd += ["--name", name]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    trace = []
    for line in proc.stdout.splitlines():
        row = json.loads(line)
        if "error" in row:
            raise PolicyError(row["error"], policy=name or Path(config.onnx_path).stem)
        states = {k: np.asarray(v, dtype=np.float32) for k, v in row["states"].items()}
        logits = None if row["logits"] is None else np.asarray(row["logits"], dtype=np.float32)
        probs = None if row["probs"] is None else np.asarray(row["probs"])
        trace.append(TraceStep(row["agent"], row["action"], logits, probs, states))
    if proc.returncode != 0:
        raise MugError(f"policy-trace exited with {proc.returncode}: {proc.stderr.strip()[-2000:]}")
    return trace


def compare_traces(reference: list[TraceStep], other: list[TraceStep]) -> ParityReport:
    """Compare two traces step by step (state tensors compared flat, by name)."""
    if len(reference) != len(other):
        raise ValueError(f"traces differ in length: {len(reference)} vs {len(other)} steps")
    differing, first = 0, None
    logit_delta = 0.0
    state_delta: dict[str, float] = {}
    for i, (a, b) in enumerate(zip(reference, other)):
        if a.action != b.action:
            differing += 1
            first = i if first is None else first
        if a.logits is not None and b.logits is not None:
            logit_delta = max(logit_delta, float(np.max(np.abs(np.ravel(a.logits) - np.ravel(b.logits)))))
        for name, value in a.states.items():
            if name in b.states:
                d = float(np.max(np.abs(np.ravel(value).astype(np.float64) - np.ravel(b.states[name]))))
                state_delta[name] = max(state_delta.get(name, 0.0), d)
    return ParityReport(len(reference), differing, logit_delta, state_delta, first)


def random_observations(config: ModelConfig, count: int, seed: int = 0) -> list[Any]:
    """``count`` standard-normal observations sized for ``config``'s observation input(s)."""
    sig = config.signature()
    rng = np.random.default_rng(seed)

    def size(name: str) -> int:
        shape = sig.input(name).shape or (1, 1)
        return int(np.prod([d for d in shape[1:] if isinstance(d, int)] or [1]))

    if isinstance(config.obs_input, dict):
        sizes = {k: size(n) for k, n in config.obs_input.items()}
        return [{k: rng.standard_normal(n).astype(np.float32) for k, n in sizes.items()} for _ in range(count)]
    n = size(config.obs_input)
    return [rng.standard_normal(n).astype(np.float32) for _ in range(count)]
