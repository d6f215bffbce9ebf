"""Simulated participants: WebSocket clients that go through a deployed study as a browser would.

Use them to pilot a study before paying anyone (``await SimulatedParticipant(url, "pilot1").run()``),
and in tests and load benchmarks. They continue text pages, answer surveys
(``answers`` by question id, else 1 / the first option), press ``keys`` in
turn in environment scenes, and run the browser-side policies with the
Python runtime, exactly as the participant page would.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.websocket import WebSocketClosedError, websocket_connect

import mug
from mug.session.messages import decode_envelope, encode_envelope, tensor_from_ref, tensor_ref

__all__ = ["ParticipantStats", "SimulatedParticipant", "join"]


@dataclass
class ParticipantStats:
    """What one simulated participant saw."""

    participant_id: str
    acked_steps: int = 0
    frames: int = 0
    frame_times: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    scenes: list[str] = field(default_factory=list)
    completion_code: str | None = None


def _default_answer(question: dict[str, Any]) -> Any:
    if question["kind"] == "choice":
        return [question["options"][0]] if question["multiple"] else question["options"][0]
    return "" if question["kind"] == "text" else 1


async def join(base_url: str, participant_id: str) -> str:
    """Open the participant page once (as a browser would); returns the browser-token cookie."""
    response = await AsyncHTTPClient().fetch(f"{base_url}?participant={participant_id}", follow_redirects=False)
    cookie = response.headers.get("Set-Cookie", "")
    return cookie.split(";", 1)[0]


class SimulatedParticipant:
    """One simulated participant of the study at ``base_url`` (see module docstring)."""

    def __init__(
        self,
        base_url: str,
        participant_id: str,
        *,
        keys: list[str] | None = None,
        answers: dict[str, Any] | None = None,
        cookie: str | None = None,
    ) -> None:
        self.base_url, self.participant_id, self.keys = base_url, participant_id, keys or ["ArrowRight", "ArrowDown"]
        self.answers = answers or {}
        self.cookie = cookie
        self.stats = ParticipantStats(participant_id)
        self.runtimes: dict[str, mug.PolicyRuntime] = {}
        self.connection = None
        self._waiting_ack: float | None = None
        self._presses = 0

    async def connect(self):
        if self.cookie is None:
            self.cookie = await join(self.base_url, self.participant_id)
        ws_url = self.base_url.replace("http://", "ws://") + f"ws?participant={self.participant_id}"
        self.connection = await websocket_connect(HTTPRequest(ws_url, headers={"Cookie": self.cookie}))
        await self.send({"type": "ready"})

    async def send(self, message: dict[str, Any], buffers: list[bytes] | None = None) -> None:
        await self.connection.write_message(encode_envelope(message, buffers or []), binary=True)

    async def run(self, *, stop_after_acks: int | None = None, timeout: float = 120) -> ParticipantStats:
        """Go through the study (or stop after ``stop_after_acks`` acknowledged steps)."""
        await self.connect()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                raw = await asyncio.wait_for(self.connection.read_message(), max(0.1, deadline - time.monotonic()))
            except (TimeoutError, WebSocketClosedError):
                break
            if raw is None:
                break
            message, buffers = decode_envelope(raw)
            done = await self.handle(message, buffers)
            if done or (stop_after_acks is not None and self.stats.acked_steps >= stop_after_acks):
                break
        self.connection.close()
        return self.stats

    async def handle(self, message: dict[str, Any], buffers: list[bytes]) -> bool:
        kind = message["type"]
        if kind in ("frame", "episode_end") and self._waiting_ack is not None:
            self.stats.acked_steps += 1  # the step our last act caused has been committed
            self.stats.latencies.append(time.perf_counter() - self._waiting_ack)
            self._waiting_ack = None
        if kind == "scene":
            meta = message["scene"]
            self.stats.scenes.append(meta["scene_id"])
            if meta["kind"] in ("start", "text"):
                await self.send({"type": "advance", "scene_id": meta["scene_id"]})
            elif meta["kind"] == "survey":
                answers = {q["qid"]: self.answers.get(q["qid"], _default_answer(q)) for q in meta["questions"]}
                await self.send({"type": "response", "scene_id": meta["scene_id"], "answers": answers})
            elif meta["kind"] == "end":
                self.stats.completion_code = meta["completion_code"]
                return True
            elif meta["kind"] == "gym":
                await self.load_policies(meta)
        elif kind == "frame":
            self.stats.frames += 1
            self.stats.frame_times.append(time.perf_counter())
            await self.act(message, buffers)
        elif kind == "error":
            self.stats.errors.append(message)
        return False

    async def load_policies(self, meta: dict[str, Any]) -> None:
        self.runtimes = {}
        for agent in meta["you"]["runs_policies"]:
            spec = meta["policies"][agent]
            body = (await AsyncHTTPClient().fetch(self.base_url + spec["model_url"])).body
            path = Path(tempfile.mkdtemp(prefix="bot-model-")) / "model.onnx"
            path.write_bytes(body)
            config = mug.ModelConfig.from_dict({**spec["config"], "onnx_path": str(path)})
            self.runtimes[agent] = mug.PolicyRuntime(config, seed=meta["policy_seed"])

    async def act(self, frame: dict[str, Any], buffers: list[bytes]) -> None:
        if frame["step"] == 0:
            for runtime in self.runtimes.values():
                runtime.reset()
        out_buffers: list[bytes] = []
        policies = {}
        for agent, ref in frame["observations"].items():
            out = self.runtimes[agent].step(tensor_from_ref(ref, buffers, "obs"), agent)
            policies[agent] = {"action": out.action, "logits": tensor_ref(np.asarray(out.logits), out_buffers), "states": {}}
        key = self.keys[self._presses % len(self.keys)]
        self._presses += 1
        self._waiting_ack = time.perf_counter()
        await self.send(
            {"type": "act", "step": frame["step"], "episode": frame["episode"], "keys": [key], "policies": policies}, out_buffers
        )
