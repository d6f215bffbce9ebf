"""Small WebSocket clients for the match tests: a player that records every message and acts on frames when told."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from pathlib import Path
from typing import Any

from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.websocket import WebSocketClosedError, websocket_connect

import mug
from mug.session.messages import decode_envelope, encode_envelope, tensor_from_ref, tensor_ref

__all__ = ["Player", "open_page"]


async def open_page(base_url: str, participant_id: str, user_agent: str | None = None, query: str = "") -> str:
    """Open the participant page (with ``user_agent``); returns the browser-token cookie."""
    headers = {"User-Agent": user_agent} if user_agent else {}
    response = await AsyncHTTPClient().fetch(
        HTTPRequest(f"{base_url}?participant={participant_id}{query}", headers=headers, follow_redirects=False)
    )
    return response.headers.get("Set-Cookie", "").split(";", 1)[0]


class Player:
    """One participant tab. ``messages`` keeps everything received, in order; ``keys`` are pressed on every frame
    while ``playing``; ``acked`` counts frames that followed one of our acts (the step it caused was committed)."""

    def __init__(self, base_url: str, participant_id: str, keys: list[str] | None = None, cookie: str | None = None) -> None:
        self.base_url, self.participant_id, self.keys, self.cookie = base_url, participant_id, keys or ["ArrowUp"], cookie
        self.messages: list[dict[str, Any]] = []
        self.playing = True
        #: Whether text pages are continued at once.
        self.auto_advance = True
        self.acked = 0
        self.ws_url = base_url.replace("http://", "ws://") + f"ws?participant={participant_id}"
        self._queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._reader: asyncio.Task | None = None
        self._acted = False
        self.connection: Any = None
        #: Browser-side policies this tab runs (as the page would, with the Python runtime), by agent.
        self.runtimes: dict[str, mug.PolicyRuntime] = {}

    async def open(self, via: str | None = None, user_agent: str | None = None) -> Player:
        """Open the page (first time) and the socket (through ``via``, ``host:port`` of a proxy), and say ``ready``."""
        if self.cookie is None:
            self.cookie = await open_page(self.base_url, self.participant_id, user_agent)
        headers = {"Cookie": self.cookie, **({"User-Agent": user_agent} if user_agent else {})}
        url = f"ws://{via}/ws?participant={self.participant_id}" if via else self.ws_url
        self.connection = await websocket_connect(HTTPRequest(url, headers=headers))
        self._reader = asyncio.get_running_loop().create_task(self._read())
        await self.send({"type": "ready"})
        return self

    async def send(self, message: dict[str, Any]) -> None:
        await self.connection.write_message(encode_envelope(message), binary=True)

    async def _read(self) -> None:
        while True:
            try:
                raw = await self.connection.read_message()
            except WebSocketClosedError:
                raw = None
            if raw is None:
                await self._queue.put(None)
                return
            message, buffers = decode_envelope(raw)
            self.messages.append(message)
            if message["type"] == "scene" and message["scene"]["kind"] == "gym":
                await self._load_policies(message["scene"])
            if message["type"] == "frame":
                if self._acted:
                    self.acked += 1
                    self._acted = False
                if self.playing:
                    key = self.keys[(message["step"]) % len(self.keys)]
                    self._acted = True
                    out: list[bytes] = []
                    policies = {}
                    for agent, ref in message["observations"].items():
                        result = self.runtimes[agent].step(tensor_from_ref(ref, buffers, "obs"), agent)
                        policies[agent] = {"action": result.action, "logits": tensor_ref(result.logits, out), "states": {}}
                    act = {"type": "act", "step": message["step"], "episode": message["episode"], "keys": [key]}
                    with contextlib.suppress(WebSocketClosedError):
                        await self.connection.write_message(encode_envelope({**act, "policies": policies}, out), binary=True)
            elif message["type"] == "scene" and message["scene"]["kind"] in ("text", "start") and self.auto_advance:
                await self.send({"type": "advance", "scene_id": message["scene"]["scene_id"]})
            await self._queue.put(message)

    async def _load_policies(self, meta: dict[str, Any]) -> None:
        self.runtimes = {}
        for agent in meta["you"]["runs_policies"]:
            spec = meta["policies"][agent]
            body = (await AsyncHTTPClient().fetch(self.base_url + spec["model_url"])).body
            path = Path(tempfile.mkdtemp(prefix="player-model-")) / "model.onnx"
            path.write_bytes(body)
            config = mug.ModelConfig.from_dict({**spec["config"], "onnx_path": str(path)})
            self.runtimes[agent] = mug.PolicyRuntime(config, seed=meta["policy_seed"])

    async def next(self, kind: str, timeout: float = 20.0, where: Any = None) -> dict[str, Any]:
        """The next message of type ``kind`` (and satisfying ``where``); others are skipped (kept in ``messages``)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{self.participant_id}: no {kind!r} within {timeout} s; got {self.kinds()[-12:]}")
            try:
                message = await asyncio.wait_for(self._queue.get(), left)
            except TimeoutError:
                continue
            if message is None:
                raise AssertionError(f"{self.participant_id}: connection closed while waiting for {kind!r}")
            if message["type"] == kind and (where is None or where(message)):
                return message

    async def seat(self, timeout: float = 20.0) -> dict[str, Any]:
        """The ``match`` block (``{match_id, seat, seats}``) of the next game ``scene`` message played in a match."""
        return (await self.next("scene", timeout, lambda m: "match" in m))["match"]

    async def scene(self, kind: str, timeout: float = 20.0) -> dict[str, Any]:
        """The next ``scene`` message of scene kind ``kind``."""
        return await self.next("scene", timeout, lambda m: m["scene"]["kind"] == kind)

    def kinds(self) -> list[str]:
        return [m["type"] if m["type"] != "scene" else f"scene:{m['scene']['kind']}" for m in self.messages]

    def close(self) -> None:
        """Close the tab."""
        if self.connection is not None:
            self.connection.close()
        if self._reader is not None:
            self._reader.cancel()
