"""Python test peers of peer-to-peer matches: what a member's page and worker do, against a real server.

Each :class:`TestPeer` reads the ``scene`` the server sent, builds a :class:`mug.netcode.RollbackPeer` over an
:class:`mug.netcode.EnvSimulation` of the scene's spec; :func:`play` ticks the peers on the real clock at the
scene's fps with held inputs, passes their peer messages through :class:`mug.netcode.simnet.SimNet` (latency,
jitter, loss), serves AI seats with a seeded choice (also a lost member's seat after ``p2p_seat_ai``), and uploads each peer's confirmed frames (``p2p_frames``
every 0.5 s and at each episode end, kept until ``p2p_ack``), its events (``p2p_events``) and ``p2p_done`` to
the server as the page would.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

import mug
from mug.browser.p2p_game import scene_peer, scene_simulation
from mug.browser.scene import BrowserScene
from mug.examples.browser_grid import PyCoinGrid, draw
from mug.netcode import RollbackPeer
from mug.netcode.simnet import SimNet, held_inputs
from mug.server.store import Store
from mug.session.messages import decode_envelope, encode_envelope
from tests.bots import join

__all__ = ["KEYS", "TestPeer", "matched", "p2p_study", "play", "read_store", "step_rows", "wait_for"]

KEYS = {"ArrowUp": 1, "ArrowDown": 2, "ArrowLeft": 3, "ArrowRight": 4}
UPLOAD_EVERY_S = 0.5


def p2p_study(
    *, episodes: int = 2, max_steps: int = 20, monitoring: dict[str, Any] | None = None, **multiplayer: Any
) -> mug.Stager:
    game = (
        mug.GymScene("duo")
        .environment(PyCoinGrid, {"max_steps": 1000}, seed=5)
        .policies({"agent_0": mug.Human, "agent_1": mug.Human})
        .gameplay(action_mapping=KEYS, num_episodes=episodes, max_steps=max_steps)
        .rendering(mode="surface", draw=draw, width=100, height=100, fps=30)
        .runtime(environment="browser")
        .multiplayer(mode="p2p", **{"input_delay": 2, "max_prediction": 8, **multiplayer})
    )
    if monitoring:
        game.monitoring(**monitoring)
    return mug.Stager([game, mug.EndScene("end", unique_code=True)], seed=3)


class TestPeer:
    """One member's page and worker (see module docstring)."""

    __test__ = False

    def __init__(self, url: str, pid: str) -> None:
        self.url, self.pid = url, pid
        self.messages: list[dict[str, Any]] = []
        self.peer: RollbackPeer | None = None
        self.match_id = ""
        self.unacked: list[dict[str, Any]] = []
        self.history: list[dict[str, Any]] = []  # every confirmed record (a resync drops the dropped ones)
        self.events: list[dict[str, Any]] = []
        self.acks: list[int] = []
        self.done_sent = False
        self.connected = False
        #: Whether the page ticks its game.
        self.alive = True
        #: Changes a record before it is uploaded (a test's tampering).
        self.tamper = None
        self._uploaded_at = 0.0
        self._pending_events: list[dict[str, Any]] = []

    async def connect(self) -> None:
        """Open the page's socket (again: the worker keeps running) and say ``ready``; resend what is not acked."""
        self.cookie = self.__dict__.get("cookie") or await join(self.url, self.pid)
        url = self.url.replace("http://", "ws://") + f"ws?participant={self.pid}"
        self.ws = await websocket_connect(HTTPRequest(url, headers={"Cookie": self.cookie}))
        self.connected = True
        await self.send({"type": "ready"})
        asyncio.get_running_loop().create_task(self._read(self.ws))
        self._uploaded_at = -UPLOAD_EVERY_S

    async def disconnect(self, *, alive: bool) -> None:
        """Close the socket; ``alive``: the page (and its worker) goes on, else it is gone."""
        self.alive = alive
        self.ws.close()
        await self.until(lambda: not self.connected)

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.write_message(encode_envelope(message), binary=True)

    async def _read(self, ws: Any) -> None:
        while True:
            raw = await ws.read_message()
            if raw is None:
                if ws is self.ws:
                    self.connected = False
                return
            message, _ = decode_envelope(raw)
            self.messages.append(message)
            if message["type"] == "p2p_seat_ai" and self.peer is not None and message["seat"] in self.peer.remotes:
                self.peer.lose_peer(message["seat"])  # as the page's P2PGame does
            if message["type"] == "p2p_ack":
                self.acks.append(message["frame"])
                self.unacked = [r for r in self.unacked if r["frame"] > message["frame"]]

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["type"] == kind]

    async def until(self, test, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not test():
            assert time.monotonic() < deadline, f"{self.pid}: timed out; got {[m['type'] for m in self.messages]}"
            await asyncio.sleep(0.01)

    @property
    def spec(self) -> dict[str, Any]:
        (scene,) = [m for m in self.of("scene") if m["scene"].get("kind") == "gym"][-1:]
        return scene["scene"]["environment"]["spec"]

    def start(self) -> None:
        """Build the peer from the spec the server sent."""
        spec, scene = self.spec, BrowserScene(self.spec)
        p2p = spec["p2p"]
        self.match_id = p2p["match_id"]
        self.peer = scene_peer(scene, scene_simulation(scene))

    def collect(self) -> bool:
        """Take the peer's records and events; whether an episode ended (upload now)."""
        ended = False
        for event in self.peer.take_events():
            self.events.append(event)
            self._pending_events.append(event)
            if event["type"] == "resync":
                self.history = [r for r in self.history if r["frame"] < event["frame"]]
                self.unacked = [r for r in self.unacked if r["frame"] < event["frame"]]
            ended = ended or event["type"] == "episode_end"
        for record in self.peer.take_records():
            r = record.to_dict()
            self.history.append(r)
            sent = dict(r)
            if self.tamper:
                self.tamper(sent)
            self.unacked.append(sent)
        return ended

    @property
    def over(self) -> bool:
        """The last episode is confirmed (and agreed on by every peer)."""
        last = self.peer.sim.num_episodes - 1
        return any(e["type"] == "episode_end" and e["episode"] == last for e in self.events)

    async def upload(self, now: float, force: bool = False) -> None:
        if not self.connected:
            return  # kept until the socket is back
        if self._pending_events:
            events, self._pending_events = self._pending_events, []
            await self.send({"type": "p2p_events", "match_id": self.match_id, "events": events})
        if self.unacked and (force or now - self._uploaded_at >= UPLOAD_EVERY_S):
            self._uploaded_at = now
            await self.send({"type": "p2p_frames", "match_id": self.match_id, "records": list(self.unacked)})
        if self.over and not self.done_sent:
            self.done_sent = True
            await self.send({"type": "p2p_done", "match_id": self.match_id, "reason": "scene_end"})


async def play(peers: list[TestPeer], net: SimNet, *, seconds: float = 20.0, stop=None, at=None) -> None:
    """Tick every live peer at the scene's fps on the real clock until each sent ``p2p_done`` (or ``stop()``);
    ``at``: ``{seconds: coroutine function}`` run once that much time has passed."""
    at = dict(at or {})
    for p in peers:
        p.start()
    inputs = held_inputs(seed=7)
    by_seat = {p.peer.peer_id: p for p in peers}
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    fps = peers[0].peer.fps
    tick = 0
    while not all(p.done_sent or not p.alive for p in peers) and not (stop and stop()):
        now = loop.time() - t0
        assert now < seconds, "the match did not finish in time"
        for when in [w for w in at if w <= now]:
            await at.pop(when)()
        for dst, src, message in net.deliver(now):
            if by_seat[dst].alive:
                by_seat[dst].peer.receive(src, message)
        for p in peers:
            if not p.alive:
                continue
            for seat in p.peer.local_seats:
                p.peer.add_local_input(seat, inputs(p.peer.peer_id, seat, p.peer.frame))
            for to, channel, message in p.peer.advance(now):
                for dst in [to] if to is not None else p.peer.remotes:
                    net.send(now, p.peer.peer_id, dst, channel, message)
            for request in p.peer.ai_requests():  # an AI seat's policy, the same on every peer
                action = random.Random(f"{request.seat}:{request.frame}").randrange(5)
                p.peer.provide_ai(request.seat, request.frame, action, None, {}, epoch=request.epoch)  # stateless
            ended = p.collect()
            await p.upload(now, force=ended or p.over)
        tick += 1
        await asyncio.sleep(max(0.0, t0 + tick / fps - loop.time()))


def socket_drop(peer: TestPeer, at: float, back_after: float) -> dict[float, Any]:
    """``play``'s ``at`` entries for a dropped connection: ``peer``'s socket closes ``at`` seconds in (its page keeps
    its game) and opens again ``back_after`` seconds later."""

    async def away() -> None:
        await peer.disconnect(alive=True)

    async def back() -> None:
        await peer.connect()

    return {at: away, at + back_after: back}


def read_store(data) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    store = Store(data, readonly=True)
    try:
        return store.steps("duo"), store.events(), store.matches()
    finally:
        store.close()


async def wait_for(data, kind: str, count: int, timeout: float = 90.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [e for e in read_store(data)[1] if e["kind"] == kind]
        if len(found) >= count:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"fewer than {count} {kind} events after {timeout} s")


async def matched(url: str, pids: list[str]) -> list[TestPeer]:
    peers = [TestPeer(url, pid) for pid in pids]
    for p in peers:
        await p.connect()
    for p in peers:
        await p.until(lambda p=p: p.of("p2p") and any(m["scene"].get("kind") == "gym" for m in p.of("scene")))
    return sorted(peers, key=lambda p: p.spec["p2p"]["seat"])


def step_rows(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A peer's confirmed step records as the server stores them (the fields both sides have)."""
    return [
        {
            "frame": r["frame"],
            "chain": r["chain"],
            "episode": r["result"]["episode"],
            "step": r["result"]["step"],
            "actions": r["inputs"],
            "rewards": r["result"]["rewards"],
            "terminated": r["result"]["terminated"],
            "truncated": r["result"]["truncated"],
            "obs_hash": r["result"]["obs_hash"],
            "ai_digests": r["ai_digests"],
        }
        for r in history
        if r["result"]["kind"] == "step"
    ]
