"""Transports connect the engine to its clients; this one keeps messages in memory (tests, headless runs)."""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["Transport", "MemoryTransport"]


class Transport(Protocol):
    """Delivers one outbound message (and its binary buffers) to one client."""

    def send(self, client_id: str, message: dict[str, Any], buffers: list[bytes]) -> None: ...


class MemoryTransport:
    """Collects what the engine sends, per client."""

    def __init__(self) -> None:
        self.sent: dict[str, list[tuple[dict[str, Any], list[bytes]]]] = {}

    def send(self, client_id: str, message: dict[str, Any], buffers: list[bytes]) -> None:
        self.sent.setdefault(client_id, []).append((message, buffers))

    def take(self, client_id: str) -> list[tuple[dict[str, Any], list[bytes]]]:
        """Messages sent to ``client_id`` since the last ``take``."""
        return self.sent.pop(client_id, [])

    def last(self, client_id: str, kind: str) -> tuple[dict[str, Any], list[bytes]] | None:
        """The latest not-yet-taken message of ``kind`` to ``client_id``."""
        for message, buffers in reversed(self.sent.get(client_id, [])):
            if message["type"] == kind:
                return message, buffers
        return None
