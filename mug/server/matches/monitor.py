"""What the server measures of one participant: WebSocket round trips and tab visibility.

Round trips: the server pings every participant socket (``PING_EVERY_S``) and
times the pong (:meth:`mug.server.websocket.WebSocket.ping`); nothing the page
says about itself is used. Visibility: the page sends ``visibility``
``{hidden}`` on every change; the server takes the time of arrival.
"""

from __future__ import annotations

import statistics
import time
from collections import deque

__all__ = ["Monitor", "PING_EVERY_S", "RTT_MEDIAN_OF"]

#: Seconds between pings of a participant socket.
PING_EVERY_S = 2.0
#: Round trips kept per participant.
KEPT_SAMPLES = 200
#: The candidate's ``rtt_ms`` is the median of this many latest round trips.
RTT_MEDIAN_OF = 10


class Monitor:
    """One participant's measurements (server clock: ``time.monotonic()``)."""

    def __init__(self) -> None:
        #: (monotonic time, round trip in ms), oldest first.
        self.rtts: deque[tuple[float, float]] = deque(maxlen=KEPT_SAMPLES)
        #: Since when the tab is hidden (``None`` while visible).
        self.hidden_since: float | None = None
        #: Whether the current hidden stretch was warned about.
        self.warned = False

    def add_rtt(self, rtt_s: float, now: float | None = None) -> None:
        """One measured round trip, in seconds."""
        self.rtts.append((time.monotonic() if now is None else now, 1000.0 * rtt_s))

    def rtt_ms(self) -> float | None:
        """The median of the latest ``RTT_MEDIAN_OF`` round trips (ms), ``None`` before the first."""
        latest = [rtt for _, rtt in list(self.rtts)[-RTT_MEDIAN_OF:]]
        return statistics.median(latest) if latest else None

    def window(self, size: int, since: float = 0.0) -> list[float]:
        """The latest ``size`` round trips (ms) measured at or after ``since``."""
        return [rtt for t, rtt in list(self.rtts)[-size:] if t >= since]

    def set_hidden(self, hidden: bool, now: float | None = None) -> bool:
        """The page reported its visibility; whether it changed."""
        now = time.monotonic() if now is None else now
        if hidden and self.hidden_since is None:
            self.hidden_since = now
            return True
        if not hidden and self.hidden_since is not None:
            self.hidden_since, self.warned = None, False
            return True
        return False

    def hidden_for(self, now: float | None = None) -> float:
        """Seconds the tab has been hidden in its current stretch (0 while visible)."""
        if self.hidden_since is None:
            return 0.0
        return (time.monotonic() if now is None else now) - self.hidden_since
