"""Fixed-rate frame loops: the participant server's tickers and the preview's play loop."""

from __future__ import annotations

__all__ = ["FrameClock"]


class FrameClock:
    """Deadlines of a loop running at a fixed rate.

    A frame that comes due while the previous one is still running starts as
    soon as it can: none is skipped, so a busy moment costs latency, not
    frames. After a stall longer than ``max_behind`` seconds the schedule
    restarts from the present instead of bursting through the missed frames.
    """

    def __init__(self, now: float, max_behind: float) -> None:
        self.deadline, self.max_behind = now, max_behind

    def wait(self, period: float, now: float) -> float:
        """Seconds to sleep until the next frame, ``period`` seconds after the last one was due."""
        self.deadline += period
        if self.deadline < now - self.max_behind:
            self.deadline = now
        return max(0.0, self.deadline - now)
