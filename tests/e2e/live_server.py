"""A real ``MugServer`` on a loopback port, served from a thread of its own, for browser tests that reach into it
(the admin's status provider, or messages the server sends a participant)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from tornado.netutil import bind_sockets

from mug.server.app import MugServer
from mug.server.http import GuardedHTTPServer


class Serving:
    """The running server: its ``url``, and ``call(fn)`` to run ``fn()`` on the server's event loop."""

    def __init__(self, server: MugServer) -> None:
        self.server = server
        self.loop = asyncio.new_event_loop()
        self.url = ""
        self._http: GuardedHTTPServer | None = None

    def call(self, fn: Callable[[], Any]) -> Any:
        """``fn()`` run on the server's loop (between its ticks); returns its result."""

        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(10)

    async def _start(self) -> None:
        sockets = bind_sockets(0, "127.0.0.1")
        self._http = GuardedHTTPServer(self.server.application())
        self._http.add_sockets(sockets)
        self.server.start_tickers()
        self.url = f"http://127.0.0.1:{sockets[0].getsockname()[1]}/"

    async def _stop(self) -> None:
        self.server.stop_tickers()
        assert self._http is not None
        self._http.stop()
        await self._http.close_all_connections()


@contextmanager
def serving(server: MugServer) -> Iterator[Serving]:
    """Serve ``server`` (ticking its games) until the block ends; then stop and close its store."""
    serve = Serving(server)
    up = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(serve.loop)
        serve.loop.run_until_complete(serve._start())
        up.set()
        serve.loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    if not up.wait(10):
        raise RuntimeError("the test server did not start")
    try:
        yield serve
    finally:
        asyncio.run_coroutine_threadsafe(serve._stop(), serve.loop).result(10)
        serve.loop.call_soon_threadsafe(serve.loop.stop)
        thread.join(10)
        server.store.close()
