"""What a :class:`~mug.netcode.RollbackPeer` hands its host: confirmed frame records, AI requests, statistics."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mug.netcode.simulation import FrameResult

__all__ = ["AIRequest", "FrameRecord", "PeerStats", "percentile"]


@dataclass(frozen=True)
class FrameRecord:
    """One confirmed frame: every seat's input of frame ``frame`` and what step ``frame`` gave.

    ``inputs`` holds every seat's input, humans' and AI seats' (an AI seat's is
    ``None`` in a frame whose state had ended its episode: the step is a reset).
    ``ai_digests`` is each AI seat's hidden-state digest after acting in this
    frame (as :meth:`RollbackPeer.provide_ai` gave it). ``state_hash`` is the
    hash of the state after the step on hashed frames (every
    ``hash_interval``-th), else ``None``. ``chain`` is the running hash of
    every record up to this one: the value peers exchange.
    """

    frame: int
    inputs: dict[str, Any]
    ai_digests: dict[str, str | None]
    result: FrameResult
    state_hash: str | None
    chain: str

    def to_dict(self) -> dict[str, Any]:
        """Plain data."""
        return {
            "frame": self.frame,
            "inputs": dict(self.inputs),
            "ai_digests": dict(self.ai_digests),
            "result": self.result.to_dict(),
            "state_hash": self.state_hash,
            "chain": self.chain,
        }


@dataclass(frozen=True)
class AIRequest:
    """An AI seat's turn on a confirmed state: act on ``observation`` (the state before frame ``frame``'s step).

    ``episode`` is the episode that state belongs to (a runtime resets hidden
    state when it changes, as its ``reset_state`` says). ``restore`` is set
    after a state transfer: ``{"state": blob}`` with the blob the designated
    peer's driver gave (``None``: the seat's initial state); load it before acting.
    ``epoch`` goes back with the answer (:meth:`RollbackPeer.provide_ai`).
    """

    seat: str
    frame: int
    episode: int
    observation: Any
    restore: dict[str, Any] | None = None
    epoch: int = 0


def percentile(histogram: dict[int, int], q: float) -> int | None:
    """The ``q``-quantile (0..1) of a ``value -> count`` histogram; ``None`` if empty."""
    total = sum(histogram.values())
    if not total:
        return None
    rank, seen = q * (total - 1), 0
    for value in sorted(histogram):
        seen += histogram[value]
        if seen > rank:
            return value
    return max(histogram)


@dataclass
class PeerStats:
    """Counters of one peer (times in seconds; ``*_seconds`` are real CPU time, the rest simulated or frames)."""

    frames: int = 0
    """Frames produced (stepped for the first time)."""
    stalls: int = 0
    """Frames not produced because the prediction window was full."""
    held: int = 0
    """Frames held back by time synchronisation (this peer was ahead)."""
    rollbacks: int = 0
    """Rollbacks done (each re-simulates from the earliest mispredicted frame to the present)."""
    depths: dict[int, int] = field(default_factory=dict)
    """Rollback depth -> count: the size of each correction, in frames re-simulated back to the present (what the
    screen can jump by). At most ``max_prediction``: a peer never predicts further; the re-stepping after a state
    transfer is a resync (``resyncs``), not a correction. Per episode also ``depth_max`` (:meth:`since`)."""
    mispredictions: int = 0
    """Inputs that arrived for an already stepped frame and differed from the prediction used."""
    resim_frames: int = 0
    """Frames stepped again (rollbacks, and re-stepping after a state transfer)."""
    resim_seconds: float = 0.0
    """Real time of re-simulation."""
    resim_tick_max_seconds: float = 0.0
    """The longest real re-simulation time within one host tick (from one ``advance`` to the next: the advance
    and the AI requests served after it); what must fit in a frame (33 ms at 30 fps)."""
    step_seconds: float = 0.0
    """Real time of first-time steps (and their snapshots)."""
    latency_ms: dict[int, int] = field(default_factory=dict)
    """Local input read -> first displayed, in whole milliseconds of the host's clock -> count."""
    desyncs: int = 0
    """Peers whose hash first differed from ours (one per desync, until it resolves)."""
    resyncs: int = 0
    """State transfers applied by this peer."""
    bad_messages: int = 0
    """Messages received that were malformed, out of bounds or unexpected (dropped, or clamped and used)."""
    ai_requests: int = 0
    """AI turns requested from the host."""

    def rolled_back(self, depth: int) -> None:
        """One rollback that re-simulated ``depth`` frames back to the present."""
        self.rollbacks += 1
        self.depths[depth] = self.depths.get(depth, 0) + 1

    def counts(self) -> dict[str, Any]:
        """The counters that add up over time (``depths`` as a copy)."""
        names = ("frames", "stalls", "held", "rollbacks", "mispredictions", "resim_frames", "desyncs", "resyncs")
        return {name: getattr(self, name) for name in names} | {"depths": dict(self.depths)}

    def since(self, earlier: dict[str, Any]) -> dict[str, Any]:
        """:meth:`counts` minus ``earlier`` (counts taken before)."""
        now = self.counts()
        out = {k: v - earlier[k] for k, v in now.items() if k != "depths"}
        depths = {d: n - earlier["depths"].get(d, 0) for d, n in now["depths"].items()}
        depths = {d: n for d, n in depths.items() if n}
        return out | {"depths": depths, "depth_max": max(depths, default=0)}

    def to_dict(self) -> dict[str, Any]:
        """Plain data, with depth and latency percentiles."""
        return {
            "frames": self.frames,
            "stalls": self.stalls,
            "held": self.held,
            "rollbacks": self.rollbacks,
            "depths": dict(self.depths),
            "depth_p50": percentile(self.depths, 0.5),
            "depth_p99": percentile(self.depths, 0.99),
            "mispredictions": self.mispredictions,
            "resim_frames": self.resim_frames,
            "resim_seconds": self.resim_seconds,
            "resim_tick_max_seconds": self.resim_tick_max_seconds,
            "step_seconds": self.step_seconds,
            "latency_ms": dict(self.latency_ms),
            "latency_ms_p50": percentile(self.latency_ms, 0.5),
            "latency_ms_p99": percentile(self.latency_ms, 0.99),
            "desyncs": self.desyncs,
            "resyncs": self.resyncs,
            "bad_messages": self.bad_messages,
            "ai_requests": self.ai_requests,
        }
