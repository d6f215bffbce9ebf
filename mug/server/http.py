"""The HTTP server in front of the participant app, bounded against slow and flooding clients.

* Request headers must arrive within ``HEADER_TIMEOUT_S`` (Tornado's default
  is an hour); the same limit closes keep-alive connections idle that long.
* No route accepts a body: one announced with ``Content-Length`` is refused
  (400, connection closed) before a byte of it is read; a chunked one after
  ``MAX_BODY_BYTES``.
* At most ``MAX_WAITING_CONNECTIONS`` connections may wait for a request
  (trickling headers, idle keep-alive); a new one pushes out the oldest.
* When the process runs out of file descriptors (``EMFILE`` on ``accept``),
  the oldest waiting connections are closed to make room; with none to close,
  accepting pauses for ``ACCEPT_PAUSE_S``. Either way one warning a minute,
  not one traceback per attempt.
"""

from __future__ import annotations

import errno
import logging
import socket
from collections.abc import Callable, Iterable
from typing import Any

import tornado.httpserver
from tornado import httputil
from tornado.http1connection import HTTP1ServerConnection
from tornado.ioloop import IOLoop

from mug.server.limits import ThrottledWarning

__all__ = ["GuardedHTTPServer", "HEADER_TIMEOUT_S", "MAX_WAITING_CONNECTIONS"]

log = logging.getLogger("mug.server")

#: Seconds a connection has to send its request headers (and may stay idle between requests).
HEADER_TIMEOUT_S = 10.0
#: Seconds a request body may take (no route accepts one: this bounds a chunked body's trickle).
BODY_TIMEOUT_S = 10.0
#: Bytes of request headers (cookies included).
MAX_HEADER_BYTES = 32 * 1024
#: Bytes of a request body: no route accepts one.
MAX_BODY_BYTES = 0
#: Connections waiting for (the rest of) a request's headers; more push out the oldest.
MAX_WAITING_CONNECTIONS = 1000
#: Waiting connections closed at once when the process is out of file descriptors.
EVICT_ON_EMFILE = 16
#: Seconds accepting pauses when out of file descriptors with no waiting connection to close.
ACCEPT_PAUSE_S = 0.1
_OUT_OF_FILES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
_ACCEPTS_PER_WAKEUP = 128


class _Watched(httputil.HTTPMessageDelegate):
    """Passes a request through, telling the server when its headers are complete."""

    def __init__(self, server: GuardedHTTPServer, conn: HTTP1ServerConnection, inner: httputil.HTTPMessageDelegate) -> None:
        self.server, self.conn, self.inner = server, conn, inner

    def headers_received(self, start_line: Any, headers: httputil.HTTPHeaders) -> Any:
        self.server.waiting.pop(self.conn, None)
        return self.inner.headers_received(start_line, headers)

    def data_received(self, chunk: bytes) -> Any:
        return self.inner.data_received(chunk)

    def finish(self) -> None:
        self.inner.finish()

    def on_connection_close(self) -> None:
        self.server.waiting.pop(self.conn, None)
        self.inner.on_connection_close()


class GuardedHTTPServer(tornado.httpserver.HTTPServer):
    """Tornado's HTTP server with the bounds of the module docstring (``xheaders`` as in Tornado)."""

    def initialize(self, request_callback: Any, *, xheaders: bool = False, **kwargs: Any) -> None:  # type: ignore[override]
        super().initialize(
            request_callback,
            xheaders=xheaders,
            idle_connection_timeout=HEADER_TIMEOUT_S,
            body_timeout=BODY_TIMEOUT_S,
            max_header_size=MAX_HEADER_BYTES,
            max_body_size=MAX_BODY_BYTES,
            **kwargs,
        )
        #: Connections waiting for a request, oldest first.
        self.waiting: dict[HTTP1ServerConnection, None] = {}
        self._crowded = ThrottledWarning(
            log, f"more than {MAX_WAITING_CONNECTIONS} connections were waiting to send a request; closed the oldest"
        )
        self._out_of_files = ThrottledWarning(
            log, "out of file descriptors (raise `ulimit -n`): closed connections waiting for a request to make room"
        )

    # -- tracking waiting connections -------------------------------------------------------

    def start_request(self, server_conn: object, request_conn: httputil.HTTPConnection) -> httputil.HTTPMessageDelegate:
        conn: HTTP1ServerConnection = server_conn  # type: ignore[assignment]
        self.waiting[conn] = None
        if len(self.waiting) > MAX_WAITING_CONNECTIONS:
            self._evict(1)
            self._crowded()
        return _Watched(self, conn, super().start_request(server_conn, request_conn))

    def on_close(self, server_conn: object) -> None:
        self.waiting.pop(server_conn, None)  # type: ignore[call-overload]
        super().on_close(server_conn)

    def _evict(self, count: int) -> int:
        """Close the ``count`` oldest waiting connections; returns how many were closed."""
        oldest = list(zip(range(count), self.waiting))
        for _, conn in oldest:
            del self.waiting[conn]
            conn.stream.close()
        return len(oldest)

    # -- accepting ------------------------------------------------------------------------

    def add_sockets(self, sockets: Iterable[socket.socket]) -> None:
        for sock in sockets:
            self._sockets[sock.fileno()] = sock
            self._handlers[sock.fileno()] = self._accept_on(sock)

    def _accept_on(self, sock: socket.socket) -> Callable[[], None]:
        """Accept connections on ``sock`` (as Tornado's ``add_accept_handler``, out of files handled); returns the remover."""
        loop = IOLoop.current()
        state = {"removed": False, "paused": False}

        def resume() -> None:
            if not state["removed"] and state["paused"]:
                state["paused"] = False
                loop.add_handler(sock, on_readable, IOLoop.READ)

        def on_readable(fd: Any, events: int) -> None:
            for _ in range(_ACCEPTS_PER_WAKEUP):
                if state["removed"]:
                    return
                try:
                    connection, address = sock.accept()
                except BlockingIOError:
                    return
                except ConnectionAbortedError:
                    continue
                except OSError as exc:
                    if exc.errno not in _OUT_OF_FILES:
                        raise
                    self._out_of_files()
                    if self._evict(EVICT_ON_EMFILE):
                        continue  # their descriptors are free again
                    state["paused"] = True
                    loop.remove_handler(sock)
                    loop.call_later(ACCEPT_PAUSE_S, resume)
                    return
                self._handle_connection(connection, address)

        def remove() -> None:
            if not state["paused"]:
                loop.remove_handler(sock)
            state["removed"] = True

        loop.add_handler(sock, on_readable, IOLoop.READ)
        return remove
