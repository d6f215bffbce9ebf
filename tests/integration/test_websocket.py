"""The participant WebSocket at the protocol level: handshake checks, control frames, fragments, closing."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct
from urllib.parse import urlparse

import pytest
from tornado.httpclient import AsyncHTTPClient
from websockets.protocol import Protocol, Side, State

import mug
from mug.examples.demo import demo_study
from mug.server.websocket import SendBudget, WebSocket
from mug.session.messages import decode_envelope, encode_envelope
from tests.bots import join, run_async
from tests.integration.test_server import _replies, _socket
from tests.servers import ServerProcess


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    server = ServerProcess(["demo"], tmp_path_factory.mktemp("ws") / "data").start()
    yield server
    server.stop()


class RawSocket:
    """A WebSocket client written frame by frame, to send what browsers rarely do."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, status: bytes) -> None:
        self.reader, self.writer, self.status = reader, writer, status

    @classmethod
    async def open(cls, url: str, pid: str, cookie: str, origin: str | None = None) -> RawSocket:
        u = urlparse(url)
        reader, writer = await asyncio.open_connection(u.hostname, u.port)
        headers = [
            f"GET /ws?participant={pid} HTTP/1.1",
            f"Host: {u.hostname}:{u.port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}",
            "Sec-WebSocket-Version: 13",
            f"Cookie: {cookie}",
        ]
        if origin is not None:
            headers.append(f"Origin: {origin}")
        writer.write(("\r\n".join(headers) + "\r\n\r\n").encode())
        head = await reader.readuntil(b"\r\n\r\n")
        return cls(reader, writer, head.split(b"\r\n", 1)[0])

    def frame(self, opcode: int, payload: bytes, fin: bool = True) -> None:
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        n = len(payload)
        size = bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack("!H", n)
        self.writer.write(bytes([(0x80 if fin else 0) | opcode]) + size + mask + masked)

    async def read(self, timeout: float = 5.0) -> tuple[int, bytes]:
        """The next frame, skipping the server's pings (it measures round trips; unanswered pings cost nothing)."""
        while True:
            head = await asyncio.wait_for(self.reader.readexactly(2), timeout)
            n = head[1] & 0x7F
            if n == 126:
                (n,) = struct.unpack("!H", await self.reader.readexactly(2))
            elif n == 127:
                (n,) = struct.unpack("!Q", await self.reader.readexactly(8))
            payload = await self.reader.readexactly(n)
            if head[0] & 0x0F != 0x9:
                return head[0] & 0x0F, payload

    async def message(self, kind: str) -> dict:
        """The next message of type ``kind`` (game frames in between are skipped)."""
        while True:
            opcode, payload = await self.read()
            if opcode == 2 and (message := decode_envelope(payload)[0])["type"] == kind:
                return message


def test_cross_origin_and_plain_http_requests_are_refused(demo):
    async def main():
        cookie = await join(demo.url, "origin1")
        evil = await RawSocket.open(demo.url, "origin1", cookie, origin="http://evil.example")
        same = await RawSocket.open(demo.url, "origin1", cookie, origin=demo.url.rstrip("/"))
        plain = await AsyncHTTPClient().fetch(demo.url + "ws?participant=origin1", raise_error=False)
        return evil.status, same.status, plain

    evil, same, plain = run_async(main())
    assert b" 403 " in evil
    assert b" 101 " in same
    assert plain.code == 426 and plain.headers["Upgrade"] == "websocket" and b"WebSocket client" in plain.body


def test_ping_fragments_text_and_close(demo):
    async def main():
        cookie = await join(demo.url, "frames1")
        ws = await RawSocket.open(demo.url, "frames1", cookie)
        ws.frame(0x2, encode_envelope({"type": "ready"}))
        first = await ws.message("scene")
        ws.frame(0x9, b"are you there")
        pong = await ws.read()
        envelope = encode_envelope({"type": "advance", "scene_id": "start"})
        ws.frame(0x2, envelope[:5], fin=False)  # one message in three frames
        ws.frame(0x0, envelope[5:9], fin=False)
        ws.frame(0x0, envelope[9:])
        after_fragments = await ws.message("scene")
        ws.frame(0x1, b"{not json")  # a text frame: the server answers, the connection stays
        text_reply = await ws.message("error")
        ws.frame(0x8, struct.pack("!H", 1000))
        close = await ws.read()
        while close[0] != 0x8:  # frames already on their way
            close = await ws.read()
        eof = await asyncio.wait_for(ws.reader.read(), 5)
        return first, pong, after_fragments, text_reply, close, eof

    first, pong, after_fragments, text_reply, close, eof = run_async(main())
    assert first["type"] == "scene" and first["scene"]["scene_id"] == "start"
    assert pong == (0xA, b"are you there")
    assert after_fragments["type"] == "scene" and after_fragments["scene"]["scene_id"] == "coins"
    assert text_reply["type"] == "error" and text_reply["code"] == "bad_json"
    assert close == (0x8, struct.pack("!H", 1000))  # the close frame is echoed...
    assert eof == b""  # ...and the server ends the TCP connection


def test_a_protocol_violation_closes_only_that_connection(demo):
    async def main():
        cookie = await join(demo.url, "violator")
        ws = await RawSocket.open(demo.url, "violator", cookie)
        ws.writer.write(bytes([0x82, 0x05]) + b"hello")  # unmasked client frame: forbidden by RFC 6455
        close = await ws.read()
        other_cookie = await join(demo.url, "bystander2")
        other = await RawSocket.open(demo.url, "bystander2", other_cookie)
        other.frame(0x2, encode_envelope({"type": "ready"}))
        return close, await other.message("scene")

    close, other = run_async(main())
    assert close[0] == 0x8 and struct.unpack("!H", close[1][:2])[0] == 1002  # protocol error
    assert other["type"] == "scene"


def test_stopping_a_deployment_closes_open_tabs_with_going_away(tmp_path):
    async def main():
        deployment = mug.deploy(demo_study(), port=0, data_dir=tmp_path / "data")
        cookie = await join(deployment.url, "leaver")
        ws = await _socket(deployment.url, "leaver", cookie)
        first = (await _replies(ws))[0]
        deployment.stop()
        return first, (await _replies(ws))[0], deployment.stopped

    first, closed, stopped = run_async(main())
    assert first["type"] == "scene" and stopped
    assert closed == ("closed", 1001, "server stopping")


@pytest.mark.parametrize(
    ("option", "value"),
    [("max_message_bytes", 10), ("max_message_bytes", 1 << 30), ("max_message_bytes", "big"), ("messages_per_second", 0)],
)
def test_deploy_checks_its_limits(tmp_path, option, value):
    with pytest.raises(mug.ConfigError, match=option):
        mug.deploy(demo_study(), port=0, data_dir=tmp_path / "data", **{option: value})


def test_size_and_rate_limits_are_deploy_options(tmp_path):
    async def main():
        deployment = mug.deploy(demo_study(), port=0, data_dir=tmp_path / "data", max_message_bytes=2048, messages_per_second=5)
        try:
            cookie = await join(deployment.url, "limited")
            ws = await _socket(deployment.url, "limited", cookie)  # sends "ready": one message of the burst of 10
            await _replies(ws)
            await ws.write_message(encode_envelope({"type": "client_error", "message": "x" * 3000}), binary=True)
            too_large = (await _replies(ws))[0]
            for _ in range(12):
                await ws.write_message(encode_envelope({"type": "client_error", "message": "flood"}), binary=True)
            replies = await _replies(ws, 3)
            return too_large, replies
        finally:
            deployment.stop()

    too_large, replies = run_async(main())
    assert too_large["code"] == "too_large" and "2048" in too_large["message"]
    assert [r["code"] for r in replies] == ["rate_limited"] * 3


async def _unread_sockets(count: int, budget: SendBudget) -> tuple[list[WebSocket], list[socket.socket]]:
    """``count`` server-side WebSockets on real loopback TCP connections whose clients never read."""
    loop = asyncio.get_running_loop()
    listener = socket.create_server(("127.0.0.1", 0))
    sockets, peers = [], []
    for _ in range(count):
        client = socket.create_connection(listener.getsockname())
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        ours, _ = listener.accept()
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        ours.setblocking(False)
        ws = WebSocket(Protocol(Side.SERVER, state=State.OPEN), b"", budget)
        await loop.connect_accepted_socket(lambda ws=ws: ws, ours)
        sockets.append(ws)
        peers.append(client)
    listener.close()
    return sockets, peers


def test_a_slow_reader_is_dropped_past_its_own_backlog_limit():
    chunk = b"x" * (256 << 10)

    async def main():
        budget = SendBudget(total=1 << 30)
        (slow, slower), peers = await _unread_sockets(2, budget)
        for _ in range(20):  # 5 MiB behind: within one reader's 8 MiB
            slow.send(chunk)
        for _ in range(40):  # 10 MiB behind
            slower.send(chunk)
        states = slow.open, slower.open
        for p in peers:
            p.close()
        await asyncio.sleep(0.2)
        return states, budget.unsent

    (slow, slower), left = run_async(main())
    assert slow and not slower
    assert left == 0  # both gone: nothing is counted any more


def test_slow_readers_together_are_held_to_the_overall_budget():
    chunk = b"x" * (256 << 10)

    async def main():
        budget = SendBudget(total=3 << 20)
        sockets, peers = await _unread_sockets(4, budget)
        for ws in sockets:  # 1.25 MiB behind each: fine alone, but four of them exceed 3 MiB together
            for _ in range(5):
                ws.send(chunk)
        states = [ws.open for ws in sockets]
        for p in peers:
            p.close()
        await asyncio.sleep(0.2)
        return states, budget.unsent

    states, left = run_async(main())
    assert states[:2] == [True, True] and False in states[2:]
    assert left == 0
