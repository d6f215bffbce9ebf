"""``Trace``: what a preview stepped, as NumPy arrays (a recorder of engine events)."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from mug.inference.sampling import softmax
from mug.session.messages import jsonable

__all__ = ["Trace"]


class Trace:
    """Everything stepped in a preview, per agent, in step order.

    Attributes (``agent`` keys are agent ids):
        steps: global step index of each recorded step.
        frames: a P2P peer's frame of each step.
        episodes: episode index of each step.
        actions[agent], sources[agent], rewards[agent]: one entry per step.
        observations[agent]: the observation each step acted on.
        logits[agent], probs[agent]: policy outputs (policy agents only).
        states[agent][name]: every hidden-state tensor per step, shape (steps, *tensor shape).

    Policy arrays have one row per step; a step that acted on another action
    (in realtime play, a browser result that arrived a frame late) has a NaN row.

    A ``Trace`` is a :class:`~mug.session.recording.Recorder`: the preview's
    engine records into it during live play and rollouts. A peer of a
    :class:`~mug.widgets.P2PPreview` also records its rollback statistics:
    per tick in :attr:`netcode`, per episode in :attr:`netcode_episodes`.
    """

    def __init__(self, temperatures: dict[str, float] | None = None) -> None:
        self.temperatures = temperatures or {}
        self._rows: list[dict[str, Any]] = []
        self.boundaries: list[tuple[str, int]] = []
        self._netcode: list[dict[str, Any]] = []
        self._netcode_episodes: list[dict[str, Any]] = []

    # -- recording ----------------------------------------------------------------------

    def record(self, kind: str, data: dict[str, Any]) -> None:
        """Take one engine event (steps and episode starts; a P2P peer's ``netcode`` tick and
        ``netcode_episode`` statistics)."""
        if kind == "episode_start":
            self.boundaries.append(("episode_start", len(self._rows)))
        elif kind == "step":
            self._rows.append(data)
        elif kind == "netcode":
            self._netcode.append(data)
        elif kind == "netcode_episode":
            self._netcode_episodes.append(data)

    def extend(self, other: Trace) -> None:
        """Append everything ``other`` recorded."""
        offset = len(self._rows)
        self._rows.extend(other._rows)
        self.boundaries.extend((kind, i + offset) for kind, i in other.boundaries)
        self._netcode.extend(other._netcode)
        self._netcode_episodes.extend(other._netcode_episodes)

    def clear_steps(self) -> None:
        """Forget the steps and episode starts, keep the P2P statistics (a peer's state transfer: its host
        records the confirmed steps again)."""
        self._rows.clear()
        self.boundaries.clear()

    def clear(self) -> None:
        """Forget everything recorded."""
        self._rows.clear()
        self.boundaries.clear()
        self._netcode.clear()
        self._netcode_episodes.clear()

    def __len__(self) -> int:
        return len(self._rows)

    # -- reading ------------------------------------------------------------------------

    @property
    def steps(self) -> np.ndarray:
        return np.arange(len(self._rows))

    @property
    def episodes(self) -> np.ndarray:
        return np.asarray([r["episode"] for r in self._rows], dtype=np.int64)

    @property
    def frames(self) -> np.ndarray:
        """The frame of each step in a P2P peer's trace (its ``FrameRecord.frame``; -1 in other previews' traces)."""
        return np.asarray([r.get("frame", -1) for r in self._rows], dtype=np.int64)

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

    @property
    def netcode(self) -> dict[str, np.ndarray]:
        """A P2P peer's rollback statistics, one entry per host tick (empty for other previews).

        ``tick``; ``frame`` (the peer's present frame after the tick) and ``confirmed`` (its last confirmed
        frame); what happened in the tick: ``frames`` produced, ``stalls`` (prediction window full),
        ``held`` (time synchronisation), ``rollbacks``, ``depth`` (the deepest rollback, 0 for none),
        ``resim_frames`` (frames re-simulated), ``mispredictions``, ``desyncs``, ``resyncs``.
        """
        names = sorted({k for row in self._netcode for k in row})
        return {n: np.asarray([row.get(n, 0) for row in self._netcode], dtype=np.int64) for n in names}

    @property
    def netcode_episodes(self) -> list[dict[str, Any]]:
        """A P2P peer's statistics of each agreed episode end (``episode`` and
        :meth:`mug.netcode.PeerStats.to_dict`'s fields, for that episode), in episode order."""
        return [dict(row) for row in self._netcode_episodes]

    def to_pandas(self) -> Any:
        """One row per (step, agent), one column per element.

        Columns: ``step``, ``episode``, ``agent``, ``action``, ``source``, ``reward``;
        then the observation flattened in C order as ``obs_0`` ... (a dict observation:
        ``obs_<key>_0`` ...); for policy agents ``logit_0`` ..., ``prob_0`` ... and every
        hidden-state tensor flattened as ``<state name>_0`` .... An element an agent or
        step does not have is NaN (other agents' columns; a step without a result of its own).
        """
        import pandas as pd

        rows = []
        for i, row in enumerate(self._rows):
            for agent, action in row["actions"].items():
                entry: dict[str, Any] = {
                    "step": i,
                    "episode": row["episode"],
                    "agent": agent,
                    "action": action,
                    "source": row["sources"][agent],
                    "reward": row["rewards"].get(agent),
                }
                obs = (row.get("observations") or {}).get(agent)
                if isinstance(obs, dict):
                    for key in sorted(obs):
                        entry.update(_columns(f"obs_{key}", obs[key]))
                elif obs is not None:
                    entry.update(_columns("obs", obs))
                out = (row.get("policy_outputs") or {}).get(agent)
                if out is not None and out.get("logits") is not None:
                    logits = np.ravel(np.asarray(out["logits"], np.float32))
                    entry.update(_columns("logit", logits))
                    entry.update(_columns("prob", softmax(logits, self.temperatures.get(agent, 1.0))))
                for name, value in ((out or {}).get("states") or {}).items():
                    entry.update(_columns(name, value))
                rows.append(entry)
        return pd.DataFrame(rows)

    # -- files --------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Write the trace to an ``.npz`` file (NumPy's zip of arrays); :meth:`load` reads it back exactly.

        Members: ``meta`` (JSON text: temperatures, episode boundaries, and per step
        everything but the tensors), ``observations/<agent>`` with
        ``observation_steps/<agent>`` (the step of each row; dict observations stay in
        ``meta``), ``logits/<agent>`` and
        ``states/<agent>/<name>`` (one row per step, NaN where the step had no result
        of its own). ``np.load(path)`` reads them without MUG.
        """
        path = Path(path)
        arrays: dict[str, np.ndarray] = {}
        stacked = set()  # agents whose observations are arrays (a dict observation stays in meta)
        for agent in sorted({a for row in self._rows for a in (row.get("observations") or {})}):
            steps = [i for i, row in enumerate(self._rows) if agent in (row.get("observations") or {})]
            if any(isinstance(self._rows[i]["observations"][agent], dict) for i in steps):
                continue
            stacked.add(agent)
            arrays[f"observations/{agent}"] = np.stack([_array(self._rows[i]["observations"][agent]) for i in steps])
            arrays[f"observation_steps/{agent}"] = np.asarray(steps, np.int64)
        for agent, logits in self.logits.items():
            arrays[f"logits/{agent}"] = logits
        for agent, states in self.states.items():
            for name, values in states.items():
                arrays[f"states/{agent}/{name}"] = values
        plain = []
        for row in self._rows:
            entry = {k: v for k, v in row.items() if k not in ("observations", "policy_outputs")}
            kept = {a: o for a, o in (row.get("observations") or {}).items() if a not in stacked}
            if kept:
                entry["observations"] = kept
            plain.append(entry)
        meta = {
            "format": "mug-trace-1",
            "temperatures": self.temperatures,
            "boundaries": self.boundaries,
            "rows": plain,
            "netcode": self._netcode,
            "netcode_episodes": self._netcode_episodes,
        }
        arrays["meta"] = np.asarray(json.dumps(jsonable(meta)))
        with path.open("wb") as f:
            np.savez_compressed(f, **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Trace:
        """Read a trace written by :meth:`save`."""
        with np.load(Path(path), allow_pickle=False) as data:
            if "meta" not in data.files:
                raise ValueError(f"{path}: not a trace written by Trace.save (no 'meta' member)")
            meta = json.loads(str(data["meta"]))
            if meta.get("format") != "mug-trace-1":
                raise ValueError(f"{path}: unknown trace format {meta.get('format')!r}; expected 'mug-trace-1'")
            trace = cls(meta["temperatures"])
            trace.boundaries = [(kind, int(i)) for kind, i in meta["boundaries"]]
            trace._rows = meta["rows"]
            trace._netcode = meta.get("netcode", [])
            trace._netcode_episodes = [_int_histograms(row) for row in meta.get("netcode_episodes", [])]
            for name in data.files:
                kind, _, rest = name.partition("/")
                if kind == "observations":
                    for i, obs in zip(data[f"observation_steps/{rest}"], data[name]):
                        trace._rows[int(i)].setdefault("observations", {})[rest] = obs
                elif kind in ("logits", "states"):
                    agent, _, state = rest.partition("/")
                    for row, value in zip(trace._rows, data[name]):
                        if np.isnan(value).all():
                            continue
                        out = row.setdefault("policy_outputs", {}).setdefault(agent, {"logits": None, "states": {}})
                        if kind == "logits":
                            out["logits"] = value
                        else:
                            out["states"][state] = value
        return trace

    def __repr__(self) -> str:
        return f"Trace({len(self._rows)} steps, agents={sorted(self.actions)})"


def _int_histograms(stats: dict[str, Any]) -> dict[str, Any]:
    """Peer statistics read back from JSON: the histograms' keys (``depths``, ``latency_ms``) as ints again."""
    return {k: {int(b): n for b, n in v.items()} if k in ("depths", "latency_ms") else v for k, v in stats.items()}


def _array(value: Any) -> np.ndarray:
    return np.asarray(value, np.float32)


def _columns(prefix: str, value: Any) -> dict[str, float]:
    return {f"{prefix}_{j}": float(v) for j, v in enumerate(np.ravel(np.asarray(value, np.float64)))}
