"""``Trace``: what a preview stepped, as NumPy arrays (a recorder of engine events)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from mug.inference.sampling import softmax

__all__ = ["Trace"]


class Trace:
    """Everything stepped in a preview, per agent, in step order.

    Attributes (``agent`` keys are agent ids):
        steps: global step index of each recorded step.
        episodes: episode index of each step.
        actions[agent], sources[agent], rewards[agent]: one entry per step.
        observations[agent]: the observation each step acted on.
        logits[agent], probs[agent]: policy outputs (policy agents only).
        states[agent][name]: every hidden-state tensor per step, shape (steps, *tensor shape).

    Policy arrays have one row per step; a step that acted on another action
    (in realtime play, a browser result that arrived a frame late) has a NaN row.

    A ``Trace`` is a :class:`~mug.session.recording.Recorder`: the preview's
    engine records into it during live play and rollouts.
    """

    def __init__(self, temperatures: dict[str, float] | None = None) -> None:
        self.temperatures = temperatures or {}
        self._rows: list[dict[str, Any]] = []
        self.boundaries: list[tuple[str, int]] = []

    # -- recording ----------------------------------------------------------------------

    def record(self, kind: str, data: dict[str, Any]) -> None:
        """Take one engine event (only steps and episode starts matter here)."""
        if kind == "episode_start":
            self.boundaries.append(("episode_start", len(self._rows)))
        elif kind == "step":
            self._rows.append(data)

    def extend(self, other: Trace) -> None:
        """Append everything ``other`` recorded."""
        offset = len(self._rows)
        self._rows.extend(other._rows)
        self.boundaries.extend((kind, i + offset) for kind, i in other.boundaries)

    def clear(self) -> None:
        """Forget everything recorded."""
        self._rows.clear()
        self.boundaries.clear()

    def __len__(self) -> int:
        return len(self._rows)

    # -- reading ------------------------------------------------------------------------

    @property
    def steps(self) -> np.ndarray:
        return np.arange(len(self._rows))

    @property
    def episodes(self) -> np.ndarray:
        return np.asarray([r["episode"] for r in self._rows], dtype=np.int64)

    def _per_agent(self, field: str, dtype: Any = None) -> dict[str, np.ndarray]:
        out: dict[str, list] = defaultdict(list)
        for row in self._rows:
            for agent, value in (row.get(field) or {}).items():
                out[agent].append(value)
        return {a: np.asarray(v, dtype=dtype) for a, v in out.items()}

    @property
    def actions(self) -> dict[str, np.ndarray]:
        return self._per_agent("actions")

    @property
    def sources(self) -> dict[str, np.ndarray]:
        return self._per_agent("sources", dtype=object)

    @property
    def rewards(self) -> dict[str, np.ndarray]:
        return self._per_agent("rewards", dtype=np.float64)

    @property
    def observations(self) -> dict[str, np.ndarray]:
        return self._per_agent("observations", dtype=np.float32)

    def _outputs(self) -> dict[str, list[dict[str, Any] | None]]:
        """Per policy agent, one entry per step: its outputs, or ``None`` where the step used another action
        (a late browser result in realtime play)."""
        agents = sorted({a for row in self._rows for a in (row.get("policy_outputs") or {})})
        return {a: [(row.get("policy_outputs") or {}).get(a) for row in self._rows] for a in agents}

    @staticmethod
    def _stack(values: list[Any]) -> np.ndarray:
        """Stack per-step arrays; steps without a value become NaN rows, so rows stay aligned with ``steps``."""
        present = next(np.asarray(v, np.float32) for v in values if v is not None)
        blank = np.full(present.shape, np.nan, np.float32)
        return np.stack([blank if v is None else np.asarray(v, np.float32).reshape(present.shape) for v in values])

    @property
    def logits(self) -> dict[str, np.ndarray]:
        """Per policy agent: (steps, actions); NaN rows where the step had no result of its own."""
        out = {}
        for agent, outs in self._outputs().items():
            values = [None if o is None or o.get("logits") is None else np.ravel(o["logits"]) for o in outs]
            if any(v is not None for v in values):
                out[agent] = self._stack(values)
        return out

    @property
    def probs(self) -> dict[str, np.ndarray]:
        """Softmax of ``logits / temperature`` per step (NaN rows as in ``logits``)."""
        return {
            a: np.stack(
                [row if np.isnan(row).any() else softmax(row, self.temperatures.get(a, 1.0)).astype(np.float32) for row in rows]
            )
            for a, rows in self.logits.items()
        }

    @property
    def states(self) -> dict[str, dict[str, np.ndarray]]:
        """Per policy agent and state tensor: (steps, *shape) (NaN rows as in ``logits``)."""
        out: dict[str, dict[str, np.ndarray]] = {}
        for agent, outs in self._outputs().items():
            names = sorted({n for o in outs if o is not None for n in (o.get("states") or {})})
            out[agent] = {n: self._stack([None if o is None else (o.get("states") or {}).get(n) for o in outs]) for n in names}
        return out

    def to_pandas(self) -> Any:
        """One row per (step, agent): episode, action, source, reward, and the logits as ``logit_i`` columns."""
        import pandas as pd

        rows = []
        for i, row in enumerate(self._rows):
            for agent, action in row["actions"].items():
                entry = {
                    "step": i,
                    "episode": row["episode"],
                    "agent": agent,
                    "action": action,
                    "source": row["sources"][agent],
                    "reward": row["rewards"].get(agent),
                }
                out = (row.get("policy_outputs") or {}).get(agent)
                if out is not None and out.get("logits") is not None:
                    entry.update({f"logit_{j}": float(v) for j, v in enumerate(np.ravel(out["logits"]))})
                rows.append(entry)
        return pd.DataFrame(rows)

    def __repr__(self) -> str:
        return f"Trace({len(self._rows)} steps, agents={sorted(self.actions)})"
