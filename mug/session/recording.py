"""Where the engine sends what happened: every step, episode and scene event."""

from __future__ import annotations

import json
from typing import Any, Protocol

from mug.session.messages import jsonable

__all__ = ["Recorder", "MemoryRecorder"]


class Recorder(Protocol):
    """Receives one event at a time; ``kind`` is ``scene_start``, ``episode_start``, ``step``,
    ``episode_end``, ``scene_end`` or ``error``.

    ``data`` holds plain values and read-only NumPy arrays/scalars (policy
    outputs, actions); :func:`mug.session.messages.jsonable` turns it into JSON.

    A recorder may also define ``record_step(episode, step, time, data)``: the engine then gives it
    each step that way, ``data`` holding the step's own fields (``decision``, ``actions``, ...)
    without the event's ``session_id``, ``scene_id``, ``time``, ``episode`` and ``step``, so that a
    recorder that keeps them apart (the browser's) need not copy the record.
    """

    def record(self, kind: str, data: dict[str, Any]) -> None: ...


class MemoryRecorder:
    """Keeps events in a list (tests, previews); :meth:`to_jsonl` gives canonical bytes."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def record(self, kind: str, data: dict[str, Any]) -> None:
        self.events.append((kind, data))

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        """The events of one kind, in order."""
        return [d for k, d in self.events if k == kind]

    def to_jsonl(self) -> bytes:
        """Every event as one sorted-key JSON line: equal runs give equal bytes."""
        return b"".join(
            json.dumps({"kind": k, **jsonable(d)}, sort_keys=True, separators=(",", ":")).encode() + b"\n" for k, d in self.events
        )
