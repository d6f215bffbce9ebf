"""Time synchronisation by frame advantage: the peer ahead holds frames so that rollbacks are shared.

Every input message carries the sender's frame and its *advantage* over the
receiver (its frame minus the receiver's frame as last reported). Both
peers see each other's frame late by the one-way latency, so half the
difference of the two advantages is how many frames this peer is ahead,
with the latency cancelled when it is symmetric. With one-way latencies
``a`` (to the peer) and ``b`` (from it) the estimate is off by ``(b - a) / 2``
frames; nothing in frame numbers alone can tell the two apart. Only a
message with a newer frame than any before from that peer gives a sample
(a duplicated or reordered packet carries old numbers). When the mean of
recent samples towards any peer is at least ``threshold`` frames, the peer
holds one frame (it does not step on that tick) and starts sampling afresh.
"""

from __future__ import annotations

from collections import deque

__all__ = ["TimeSync"]


class TimeSync:
    """Frame-advantage bookkeeping of one peer towards its remotes.

    Args:
        remotes: the other peers' ids.
        samples: how many recent samples are averaged.
        min_samples: samples needed before a decision.
        threshold: frames ahead (mean) at which a frame is held.
    """

    def __init__(self, remotes: list[str], *, samples: int = 10, min_samples: int = 5, threshold: float = 1.0) -> None:
        self.remote_frame: dict[str, int] = dict.fromkeys(remotes, 0)
        self._newest: dict[str, int] = dict.fromkeys(remotes, -1)
        self._samples: dict[str, deque[float]] = {r: deque(maxlen=samples) for r in remotes}
        self.min_samples, self.threshold = min_samples, threshold

    def advantage(self, frame: int, remote: str) -> int:
        """What this peer reports to ``remote``: its frame minus ``remote``'s last reported frame."""
        return frame - self.remote_frame[remote]

    def observe(self, frame: int, remote: str, remote_frame: int, remote_advantage: int) -> None:
        """An input message from ``remote`` (its frame and its advantage over us) arrived at our ``frame``; a
        sample only if ``remote_frame`` is newer than every one before."""
        self.remote_frame[remote] = max(self.remote_frame[remote], remote_frame)
        if remote_frame <= self._newest[remote]:
            return
        self._newest[remote] = remote_frame
        self._samples[remote].append(((frame - remote_frame) - remote_advantage) / 2)

    def drop(self, remote: str) -> None:
        """``remote`` left the match: no more samples of it, and it no longer holds this peer back."""
        self.remote_frame.pop(remote, None)
        self._newest.pop(remote, None)
        self._samples.pop(remote, None)

    def ahead(self) -> float:
        """Frames this peer is ahead of its furthest-behind remote (mean of samples; 0 without enough)."""
        means = [sum(s) / len(s) for s in self._samples.values() if len(s) >= self.min_samples]
        return max(means, default=0.0)

    def should_hold(self) -> bool:
        """Whether to hold one frame now; when so, sampling starts afresh (the old samples predate the hold)."""
        if self.ahead() < self.threshold:
            return False
        for samples in self._samples.values():
            samples.clear()
        return True
