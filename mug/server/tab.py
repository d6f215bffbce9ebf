"""``ParticipantTab``: one open participant tab on the server (its socket, its participant, its message rate).

A tab attaches to its participant once the page's browser token (cookie)
matches; a socket that does not attach within ``ATTACH_TIMEOUT_S`` is
dropped. Messages that arrive together are handled in turn, then committed
and delivered at once, except reads of nothing but browser-side ``steps``,
which share one commit per event-loop pass (``ParticipantRegistry.flush_soon``).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
from typing import TYPE_CHECKING, Any

from mug.server.limits import RateLimit
from mug.server.matches.signal import SELF_LIMITED_TYPES
from mug.session.messages import encode_envelope

if TYPE_CHECKING:
    from mug.server.app import MugServer
    from mug.server.participants import Participant
    from mug.server.websocket import WebSocket

__all__ = ["ATTACH_TIMEOUT_S", "MAX_UNATTACHED", "PARTICIPANT_ID", "ParticipantTab", "same_secret"]

log = logging.getLogger("mug.server")
PARTICIPANT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
#: Seconds an opened WebSocket has to attach to its participant before it is dropped.
ATTACH_TIMEOUT_S = 5.0
#: WebSockets refused (not attached) that may wait for their closing handshake; more are dropped at once.
MAX_UNATTACHED = 256


def same_secret(given: str | None, expected: str) -> bool:
    """Constant-time comparison of a secret from a request with the real one (compared as UTF-8 bytes: any text works)."""
    return given is not None and hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode("utf-8"))


class ParticipantTab:
    """One open participant tab: its socket, its participant, its message rate limit. Binary envelopes both ways."""

    def __init__(self, server: MugServer, socket: WebSocket) -> None:
        self.server, self.socket = server, socket
        self.participant: Participant | None = None
        self.limit = RateLimit(server.messages_per_second, 2 * server.messages_per_second)
        socket.on_messages, socket.on_close = self.on_messages, self.on_close
        server.unattached.add(self)
        self._deadline = asyncio.get_running_loop().call_later(ATTACH_TIMEOUT_S, self._not_attached)

    def _not_attached(self) -> None:
        if self.participant is None:
            self.socket.abort()

    def open(self, participant_id: str, cookie: str | None, user_agent: str = "") -> None:
        """Attach the tab to its participant, or tell it why not and close; its round trips are measured from now."""
        registry = self.server.registry
        if not PARTICIPANT_ID.match(participant_id) or (
            participant_id not in registry.participants and self.server.store.participant(participant_id) is None
        ):
            self.close_with(
                {
                    "type": "error",
                    "code": "unknown_participant",
                    "message": "unknown participant id; open the study link again",
                    "fatal": True,
                }
            )
            return
        participant = registry.get_or_create(participant_id)
        if not same_secret(cookie, participant.token):
            log.warning("websocket for participant %s without its browser token refused", participant_id)
            self.close_with(
                {"type": "error", "code": "forbidden", "message": "this participant id belongs to another browser", "fatal": True}
            )
            return
        self.participant = participant
        self.server.unattached.discard(self)
        self._deadline.cancel()
        participant.user_agent = participant.user_agent or user_agent
        self.socket.on_rtt = participant.monitor.add_rtt
        participant.attach(self)
        self.socket.ping()
        registry.flush()

    def on_messages(self, messages: list[bytes | str]) -> None:
        """Messages that arrived together: each handled in turn, then one commit and delivery. When all of them
        were browser-side ``steps``, the commit waits until the loop has read every ready socket (one commit
        for all: ``ParticipantRegistry.flush_soon``); anything else (keys, ready, answers) is answered at once."""
        participant = self.participant
        if participant is None:
            return
        group_commit = True
        for message in messages:
            if participant.connection is not self:
                return
            if not self.limit.allow():
                participant.send(
                    {"type": "error", "code": "rate_limited", "message": "too many messages; slow down", "fatal": False}
                )
                continue
            try:
                kind = participant.receive(message)
                if kind in SELF_LIMITED_TYPES:  # counted by the mesh's own buckets (signal.py), not the tab's
                    self.limit.refund()
                group_commit = kind == "steps" and group_commit
            except Exception:  # a bug of ours must not take the server down; the participant is told
                log.exception("participant %s: error handling a message", participant.participant_id)
                participant.send(
                    {
                        "type": "error",
                        "code": "server_error",
                        "message": "the server failed to handle that message",
                        "fatal": False,
                    }
                )
        if group_commit:
            self.server.registry.flush_soon()
        else:
            self.server.registry.flush()

    def on_close(self) -> None:
        self.server.unattached.discard(self)
        self._deadline.cancel()
        if self.participant is not None:
            self.participant.detach(self)

    def deliver(self, frames: list[bytes]) -> None:
        """Send queued envelopes (dropped if the socket has closed)."""
        for frame in frames:
            self.socket.send(frame)

    def close(self) -> None:
        """Close without a message (the server is stopping: the page reconnects by itself when it is back)."""
        self.socket.close(code=1001, reason="server stopping")

    def close_with(self, message: dict[str, Any]) -> None:
        """Send one last message, then close (at once, without the closing handshake, when many refused sockets wait)."""
        self.deliver([encode_envelope(message)])
        if self.participant is None and len(self.server.unattached) > MAX_UNATTACHED:
            self.socket.abort()
            return
        self.socket.close(code=4000 + (403 if message.get("code") == "forbidden" else 409), reason=message.get("code", ""))
