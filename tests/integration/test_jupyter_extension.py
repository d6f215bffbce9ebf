"""mug's Jupyter server extension gives kernel WebSockets TCP_NODELAY (set once connect() is done, after Tornado has
finished the handshake response, which turns Nagle back on)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import socket

from jupyter_server.services.kernels.connection.base import BaseKernelWebsocketConnection
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets
from tornado.web import Application
from tornado.websocket import WebSocketHandler, websocket_connect

from mug.jupyter import with_nodelay


def run_async(coroutine):
    """``asyncio.run`` in a thread of its own: the browser tests' Playwright keeps a loop running in this one."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


class SlowConnection(BaseKernelWebsocketConnection):
    """Connects like Jupyter's: a while after the handler's open() (it waits for the kernel)."""

    async def connect(self):
        await asyncio.sleep(0.05)

    def handle_incoming_message(self, message):
        self.websocket_handler.write_message(message)


def nodelay_after_connect(connection_class) -> int:
    seen: list[int] = []

    class Handler(WebSocketHandler):
        async def open(self):  # as jupyter_server's KernelWebsocketHandler.open
            self.connection = connection_class(websocket_handler=self)
            await self.connection.connect()

        def on_message(self, message):
            seen.append(self.ws_connection.stream.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            self.connection.handle_incoming_message(message)

    async def main():
        sockets = bind_sockets(0, "127.0.0.1")
        server = HTTPServer(Application([("/ws", Handler)]))
        server.add_sockets(sockets)
        client = await websocket_connect(f"ws://127.0.0.1:{sockets[0].getsockname()[1]}/ws")
        await asyncio.sleep(0.2)  # connect() done, the handshake long finished
        await client.write_message("ping")
        assert await client.read_message() == "ping"
        client.close()
        server.stop()

    run_async(main())
    return seen[0]


def test_kernel_websockets_keep_nodelay_after_the_handshake():
    assert nodelay_after_connect(with_nodelay(SlowConnection)) != 0
    assert nodelay_after_connect(SlowConnection) == 0  # Jupyter Server's default: Nagle on


def test_the_subclass_is_named_for_what_it_wraps():
    wrapped = with_nodelay(SlowConnection)
    assert issubclass(wrapped, SlowConnection) and wrapped.__name__ == "NoDelaySlowConnection"
