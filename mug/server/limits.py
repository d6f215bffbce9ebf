"""Limits a participant server keeps: message rates, new participants, and warnings that must not flood the log."""

from __future__ import annotations

import logging
import time

__all__ = ["AdmissionError", "Admissions", "RateLimit", "ThrottledWarning"]


class RateLimit:
    """Token bucket: ``rate`` messages a second, bursts up to ``burst``."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst, self.tokens, self.last = rate, burst, burst, time.monotonic()

    def allow(self, now: float | None = None, cost: float = 1.0) -> bool:
        """Take ``cost`` tokens (one message, or a message's bytes) if there are that many."""
        now = time.monotonic() if now is None else now
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens < cost:
            return False
        self.tokens -= cost
        return True

    def refund(self, cost: float = 1.0) -> None:
        """Give back what :meth:`allow` took (the message turned out to be counted elsewhere)."""
        self.tokens = min(self.burst, self.tokens + cost)

    def full(self, now: float) -> bool:
        """Whether the bucket has refilled completely (it can be forgotten)."""
        return self.tokens + (now - self.last) * self.rate >= self.burst


class AdmissionError(Exception):
    """A new participant is refused; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


class Admissions:
    """How many new participants a deployment starts: ``max_new`` in all, ``per_address`` an hour from one address.

    ``0`` turns a limit off. Participants who come back are not counted.
    """

    def __init__(self, max_new: int, per_address: int) -> None:
        self.max_new, self.per_address = max_new, per_address
        self.admitted = 0
        self._addresses: dict[str, RateLimit] = {}

    def admit(self, address: str, now: float | None = None) -> None:
        """Count one new participant from ``address``; ``AdmissionError`` when a limit is reached."""
        now = time.monotonic() if now is None else now
        if self.max_new and self.admitted >= self.max_new:
            raise AdmissionError(503, f"this study has taken all the {self.max_new} new participants it accepts")
        if self.per_address:
            bucket = self._addresses.get(address)
            if bucket is None:
                bucket = self._addresses[address] = RateLimit(self.per_address / 3600.0, self.per_address)
                bucket.last = now
            if not bucket.allow(now):
                raise AdmissionError(429, "too many new participants from your network; try again in an hour")
        self.admitted += 1

    def forget(self, now: float | None = None) -> None:
        """Drop the addresses whose allowance has refilled (keeps memory bounded)."""
        now = time.monotonic() if now is None else now
        for address in [a for a, bucket in self._addresses.items() if bucket.full(now)]:
            del self._addresses[address]


class ThrottledWarning:
    """A warning logged at most once per ``interval`` seconds, with how often it happened meanwhile."""

    def __init__(self, log: logging.Logger, message: str, interval: float = 60.0) -> None:
        self.log, self.message, self.interval = log, message, interval
        self.count, self._last = 0, -float("inf")

    def __call__(self, *args: object) -> None:
        """Count one occurrence; log if the interval has passed (``args`` fill the message)."""
        self.count += 1
        now = time.monotonic()
        if now - self._last >= self.interval:
            self.log.warning(self.message + " [%d since the last such warning]", *args, self.count)
            self.count, self._last = 0, now
