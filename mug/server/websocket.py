"""Participant WebSockets: Tornado answers the HTTP upgrade, the ``websockets`` library speaks the protocol.

Tornado routes ``/ws`` and hands the request to :func:`upgrade`, which lets
the Sans-I/O :class:`websockets.server.ServerProtocol` check the handshake
(version, key, same-origin), detaches the connection from Tornado's HTTP
machinery and gives its socket to an asyncio protocol, :class:`WebSocket`:
whatever the socket delivers goes to the ``websockets`` frame parser in one
call, and outgoing frames are written straight to the socket.

Round trips: :meth:`WebSocket.ping` sends a ping with a counter as payload and
times the matching pong on the server's clock (what the page says about its
connection is never used); the server pings each participant socket
``mug.server.matches.monitor.PING_EVERY_S`` seconds after its last ping
(``MugServer.ping_due``).

Why not ``tornado.websocket``: it reads every frame with four awaited reads
and re-registers the socket with the event loop after each message. With
300 participants at 30 frames a second that alone cost about 85 µs of the
server's single thread per participant frame; this path about 30 µs
(``benchmarks/server_load.py`` is the load this was measured under).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections.abc import Callable

import tornado.web
from websockets.datastructures import Headers
from websockets.frames import Opcode
from websockets.http11 import Request
from websockets.protocol import Protocol, Side, State
from websockets.server import ServerProtocol

__all__ = ["SendBudget", "WebSocket", "upgrade"]

log = logging.getLogger("mug.server")

#: Bytes a slow client may leave unread before its connection is dropped (it reconnects and resumes).
MAX_UNSENT_BYTES = 8 << 20
#: While all clients together leave more than their ``SendBudget`` unread, each may leave only this much.
MAX_UNSENT_BYTES_UNDER_PRESSURE = 1 << 20
#: Bytes read from a socket at a time.
READ_BUFFER_BYTES = 1 << 14
#: Seconds to wait for the client's reply to our close frame before dropping the TCP connection.
CLOSE_TIMEOUT_S = 2.0
_DATA = (Opcode.TEXT, Opcode.BINARY, Opcode.CONT)
#: Pings awaiting their pong, at most (older ones are forgotten: a pong that never comes costs nothing).
MAX_OPEN_PINGS = 8


class SendBudget:
    """Bytes all of a server's WebSockets may leave unsent together (their clients read too slowly).

    Each socket reports its backlog whenever it writes and when its buffer
    drains; one past ``MAX_UNSENT_BYTES`` is dropped, and while the total is
    over ``total`` so is any past ``MAX_UNSENT_BYTES_UNDER_PRESSURE``. A dropped
    client reconnects and resumes.
    """

    def __init__(self, total: int) -> None:
        self.total, self.unsent = total, 0

    def allows(self, before: int, now: int) -> bool:
        """Account one socket's backlog going from ``before`` to ``now`` bytes; whether it may keep it."""
        self.unsent += now - before
        return now <= MAX_UNSENT_BYTES and (self.unsent <= self.total or now <= MAX_UNSENT_BYTES_UNDER_PRESSURE)


class WebSocket(asyncio.BufferedProtocol):
    """One open WebSocket: an asyncio protocol on the socket Tornado accepted.

    It reads into one buffer of its own (``asyncio.BufferedProtocol``): for a
    plain protocol asyncio allocates 256 KiB on every read, which took longer
    than handling the message that was read.

    ``on_messages`` gets every complete message (``bytes`` for binary, ``str``
    for text frames) that arrived in one read, in order; ``on_close`` is called
    once when the connection is gone.
    """

    def __init__(self, protocol: Protocol, handshake_response: bytes, budget: SendBudget) -> None:
        self.protocol, self.handshake_response, self.budget = protocol, handshake_response, budget
        self.unsent = 0  # what this socket last told its budget
        self.transport: asyncio.Transport | None = None
        self.on_messages: Callable[[list[bytes | str]], None] = lambda messages: None
        self.on_close: Callable[[], None] = lambda: None
        #: Called with each measured round trip (seconds) of :meth:`ping`.
        self.on_rtt: Callable[[float], None] = lambda rtt: None
        #: When the last ping went out (event loop time; ``-inf`` before the first).
        self.pinged_at = float("-inf")
        self._pings: dict[bytes, float] = {}
        self._ping_count = 0
        self._fragments: list[bytes] = []
        self._fragment_opcode: Opcode | None = None
        self._buffer = memoryview(bytearray(READ_BUFFER_BYTES))

    @property
    def open(self) -> bool:
        """Whether messages can still be sent."""
        return self.protocol.state is State.OPEN and self.transport is not None and not self.transport.is_closing()

    def send(self, payload: bytes) -> None:
        """Send one binary message (dropped once the connection is closing)."""
        if self.open:
            self.protocol.send_binary(payload)
            self._flush()

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake; the TCP connection is dropped after the reply or a timeout."""
        if self.open:
            self.protocol.send_close(code, reason)
            self._flush()
            self._loop.call_later(CLOSE_TIMEOUT_S, self.transport.abort)  # type: ignore[union-attr]

    def ping(self) -> None:
        """Send a WebSocket ping; its pong's round trip goes to ``on_rtt`` (pings left unanswered are forgotten
        after ``MAX_OPEN_PINGS``)."""
        if not self.open:
            return
        self._ping_count += 1
        payload = struct.pack("!I", self._ping_count & 0xFFFFFFFF)
        self.pinged_at = self._pings[payload] = self._loop.time()
        while len(self._pings) > MAX_OPEN_PINGS:
            del self._pings[next(iter(self._pings))]
        self.protocol.send_ping(payload)
        self._flush()

    def abort(self) -> None:
        """Drop the TCP connection at once (no closing handshake)."""
        if self.transport is not None:
            self.transport.abort()

    # -- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._loop = asyncio.get_running_loop()
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport.write(self.handshake_response)  # type: ignore[attr-defined]

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.protocol.receive_data(bytes(self._buffer[:nbytes]))
        messages = self._messages()
        self._flush()  # pongs, close replies
        if messages:
            self.on_messages(messages)

    def eof_received(self) -> bool:
        self.protocol.receive_eof()
        self._flush()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.budget.allows(self.unsent, 0)
        self.unsent = 0
        if self.protocol.state is not State.CLOSED:
            self.protocol.receive_eof()
        self.on_close()

    def resume_writing(self) -> None:  # the backlog drained below asyncio's low-water mark
        self._account()

    # -- internals ------------------------------------------------------------------------

    def _messages(self) -> list[bytes | str]:
        out: list[bytes | str] = []
        for frame in self.protocol.events_received():
            if frame.opcode is Opcode.PONG:
                sent = self._pings.pop(bytes(frame.data), None)
                if sent is not None:
                    self.on_rtt(self._loop.time() - sent)
                continue
            if frame.opcode not in _DATA:
                continue  # ping and close frames are answered by the protocol
            if frame.opcode is not Opcode.CONT:
                self._fragment_opcode = frame.opcode
            self._fragments.append(frame.data)
            if frame.fin:
                data = b"".join(self._fragments)
                self._fragments.clear()
                if self._fragment_opcode is Opcode.TEXT:
                    out.append(data.decode("utf-8", errors="replace"))
                else:
                    out.append(data)
        return out

    def _flush(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        for data in self.protocol.data_to_send():
            if not data:  # the protocol wants the TCP connection closed (after what is buffered)
                transport.close()
                return
            transport.write(data)
        self._account()

    def _account(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        before, self.unsent = self.unsent, transport.get_write_buffer_size()
        if before == self.unsent == 0:
            return
        if not self.budget.allows(before, self.unsent):
            log.warning(
                "a participant's connection fell %d bytes behind (all together: %d); dropped (it will resume)",
                self.unsent,
                self.budget.unsent,
            )
            transport.abort()


async def upgrade(handler: tornado.web.RequestHandler, max_size: int, budget: SendBudget) -> WebSocket | None:
    """Answer ``handler``'s request with the WebSocket handshake and take the connection over.

    Only same-origin pages (or clients sending no ``Origin``, such as
    simulated participants) may connect. On a bad handshake the HTTP error
    (400, 403, 426) is sent through Tornado and ``None`` returned. Messages
    over ``max_size`` bytes close the connection with code 1009; what the
    client leaves unread counts against ``budget``.
    """
    host = handler.request.headers.get("Host", "")
    handshake = ServerProtocol(origins=[None, f"http://{host}", f"https://{host}"])
    response = handshake.accept(Request(handler.request.uri or "/", Headers(handler.request.headers.get_all())))
    if response.status_code != 101:
        handler.set_status(response.status_code, response.reason_phrase)
        for name, value in response.headers.raw_items():  # e.g. "Upgrade: websocket" with a 426
            if name.lower() not in ("content-length", "content-type", "connection", "date", "server"):
                handler.set_header(name, value)
        handler.set_header("Content-Type", "text/plain; charset=utf-8")
        handler.finish(response.body)
        return None
    handshake.send_response(response)
    stream = handler.detach()
    fd = stream.fileno()
    stream.io_loop.remove_handler(fd)  # Tornado stops watching the socket...
    sock = socket.socket(fileno=stream.socket.detach())  # ...and lets go of it, unclosed, for asyncio to own
    websocket = WebSocket(Protocol(Side.SERVER, state=State.OPEN, max_size=max_size), b"".join(handshake.data_to_send()), budget)
    await asyncio.get_running_loop().connect_accepted_socket(lambda: websocket, sock)
    return websocket
