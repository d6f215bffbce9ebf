"""Peer-to-peer matches on a real server (loopback, real WebSockets) with Python test peers.

Each test peer is what a member's page and worker do: it reads the ``scene`` the server sent, builds a
:class:`mug.netcode.RollbackPeer` over an :class:`mug.netcode.EnvSimulation` of the scene's spec, ticks it
on the real clock at the scene's fps with held inputs, passes its peer messages to the other test peers
through :class:`mug.netcode.simnet.SimNet` (latency, jitter, loss), and uploads its confirmed frames
(``p2p_frames`` every 0.5 s and at each episode end, kept until ``p2p_ack``), its events (``p2p_events``)
and ``p2p_done`` to the server as the page would.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

import mug
from mug.browser.scene import BrowserScene
from mug.examples.browser_grid import PyCoinGrid, draw
from mug.netcode import EnvSimulation, RollbackPeer
from mug.netcode.simnet import Link, SimNet, held_inputs
from mug.server.store import Store
from mug.server.verify import verify_data_dir
from mug.session.messages import decode_envelope, encode_envelope
from tests.bots import join, run_async
from tests.netcode.helpers import PlainCoopGrid

KEYS = {"ArrowUp": 1, "ArrowDown": 2, "ArrowLeft": 3, "ArrowRight": 4}
UPLOAD_EVERY_S = 0.5


def p2p_study(*, episodes: int = 2, max_steps: int = 20, **multiplayer: Any) -> mug.Stager:
    game = (
        mug.GymScene("duo")
        .environment(PyCoinGrid, {"max_steps": 1000}, seed=5)
        .policies({"agent_0": mug.Human, "agent_1": mug.Human})
        .gameplay(action_mapping=KEYS, num_episodes=episodes, max_steps=max_steps)
        .rendering(mode="surface", draw=draw, width=100, height=100, fps=30)
        .runtime(environment="browser")
        .multiplayer(mode="p2p", **{"input_delay": 2, "max_prediction": 8, **multiplayer})
    )
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
        sim = EnvSimulation(
            lambda: scene.env_creator(**scene.env_config),
            scene.seed,
            num_episodes=scene.num_episodes,
            max_steps=scene.max_steps,
            default_action=scene.default_action,
        )
        self.peer = RollbackPeer(
            sim,
            p2p["seat"],
            p2p["owners"],
            p2p["ai_seats"],
            input_delay=p2p["input_delay"],
            max_prediction=p2p["max_prediction"],
            fps=scene.fps,
            default_action=scene.default_action,
            hash_interval=p2p["hash_interval"],
        )

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
                p.peer.provide_ai(request.seat, request.frame, action, None, epoch=request.epoch)
            ended = p.collect()
            await p.upload(now, force=ended or p.over)
        tick += 1
        await asyncio.sleep(max(0.0, t0 + tick / fps - loop.time()))


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


def test_match_start_sends_each_member_the_scene_with_its_p2p_spec_then_the_mesh(tmp_path):
    async def main():
        deployment = mug.deploy(p2p_study(input_delay=3, max_prediction=6), port=0, data_dir=tmp_path / "data")
        try:
            peers = await matched(deployment.url, ["alice", "bob"])
            running = list(deployment._server.matches.matches.values())
            return peers, running
        finally:
            deployment.stop()

    peers, running = run_async(main())
    (match,) = running
    for p in peers:
        types = [m["type"] for m in p.messages]
        assert types.index("scene") < types.index("p2p")
        scene = next(m for m in p.of("scene") if m["scene"]["kind"] == "gym")
        seat = scene["match"]["seat"]
        assert scene["session_id"] == match.match_id and scene["match"]["match_id"] == match.match_id
        assert scene["scene"]["environment"]["where"] == "browser"
        spec = scene["scene"]["environment"]["spec"]
        assert spec["session_id"] == match.match_id
        assert spec["p2p"] == {
            "match_id": match.match_id,
            "seat": seat,
            "owners": {"agent_0": "agent_0", "agent_1": "agent_1"},
            "ai_seats": [],
            "input_delay": 3,
            "max_prediction": 6,
            "hash_interval": spec["p2p"]["hash_interval"],
        }
        (mesh,) = p.of("p2p")
        assert mesh["match_id"] == match.match_id and mesh["seat"] == seat and mesh["seats"] == ["agent_0", "agent_1"]
    assert not hasattr(match.session, "env")  # nothing steps on the server


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


def test_two_peers_play_to_the_end_each_frame_is_stored_once_verified_and_the_match_ends_done(tmp_path):
    data = tmp_path / "data"
    link = Link(latency_s=0.05, jitter_s=0.01, loss=0.05)

    async def main():
        deployment = mug.deploy(p2p_study(), port=0, data_dir=data)
        try:
            peers = await matched(deployment.url, ["alice", "bob"])
            await play(peers, SimNet(default=link, seed=1))
            for p in peers:
                await p.until(lambda p=p: any(m["scene"].get("kind") == "end" for m in p.of("scene")))
            verifications = await wait_for(data, "verification", 2)
            return peers, verifications
        finally:
            deployment.stop()

    peers, verifications = run_async(main())
    steps, events, matches = read_store(data)
    (match,) = matches
    assert match["end_reason"] == "done"
    seats = {p.spec["p2p"]["seat"]: p.pid for p in peers}
    assert match["seats"] == seats
    stored = [{k: s[k] for k in step_rows(peers[0].history)[0]} for s in steps]
    for p in peers:  # the server's record is each peer's confirmed history
        assert step_rows(p.history) == stored
    assert [(s["episode"], s["step"]) for s in steps] == [(e, i) for e in (0, 1) for i in range(20)]
    for s in steps:
        assert s["participant_id"] == s["session_id"] == s["match_id"] == match["match_id"]
        assert s["sources"] == {seat: f"human:{pid}" for seat, pid in seats.items()}
        assert s["verified"] is True
    assert sorted((v["data"]["episode"], v["data"]["verified"]) for v in verifications) == [(0, True), (1, True)]
    again = verify_data_dir(data, record=False)  # ``mug verify`` finds the match's spec and steps too
    assert sorted((r["session_id"], r["episode"], r["verified"]) for r in again) == [(match["match_id"], e, True) for e in (0, 1)]
    assert not [e for e in events if e["kind"] in ("p2p_mismatch", "bad_p2p_frames")]
    stats = [e["data"] for e in events if e["kind"] == "p2p_episode"]
    assert sorted((s["episode"], s["peer"]) for s in stats) == [(e, seat) for e in (0, 1) for seat in seats]
    assert all(s["stats"]["frames"] > 0 and "rollbacks" in s["stats"] and s["relayed_with"] == [] for s in stats)
    (done,) = [e for e in events if e["kind"] == "p2p_done"]
    assert done["participant_id"] == match["match_id"] and done["data"]["peers"] == sorted(seats)
    acks = [p.acks for p in peers]
    assert acks[0] and all(b > a for a, b in zip(acks[0], acks[0][1:]))  # acks only go up
    assert acks[0] == acks[1]  # one value for every member
    assert not [m for p in peers for m in p.of("error")]


def test_what_arrives_is_checked_a_bad_record_is_refused_and_a_differing_chain_is_a_mismatch_event(tmp_path):
    data = tmp_path / "data"

    def bad_input(r):  # the reference's frame 30 (episode 1) holds an action outside the action space
        if r["frame"] == 30:
            r["inputs"]["agent_1"] = 9

    def other_chain(r):
        if 10 <= r["frame"] <= 12:
            r["chain"] = "f" * 16

    async def main():
        deployment = mug.deploy(p2p_study(), port=0, data_dir=data)
        try:
            peers = await matched(deployment.url, ["alice", "bob"])
            peers[0].tamper, peers[1].tamper = bad_input, other_chain
            match_id = peers[1].spec["p2p"]["match_id"]
            await peers[1].send({"type": "p2p_events", "match_id": match_id, "events": [{"type": "hacked"}]})
            await peers[1].send({"type": "p2p_events", "match_id": match_id, "events": [{"type": "resync", "x": "y" * 20_000}]})
            await peers[1].send({"type": "p2p_frames", "match_id": "duo-99999", "records": [{"frame": 0}]})
            await peers[1].until(lambda: len(peers[1].of("error")) == 3)
            await play(peers, SimNet(default=Link(latency_s=0.03), seed=2))
            for p in peers:
                await p.until(lambda p=p: any(m["scene"].get("kind") == "end" for m in p.of("scene")))
            await wait_for(data, "verification", 1)
            return peers
        finally:
            deployment.stop()

    peers = run_async(main())
    steps, events, matches = read_store(data)
    assert matches[0]["end_reason"] == "done"  # the match went on and ended when both peers were done
    assert [s["frame"] for s in steps] == [
        r["frame"] for r in peers[0].history if r["frame"] < 30 and r["result"]["kind"] == "step"
    ]
    (bad,) = [e["data"] for e in events if e["kind"] == "bad_p2p_frames"]  # once, however often it was resent
    assert (
        bad["peer"] == "agent_0"
        and bad["problem"] == "frame 30: input 9 of seat 'agent_1' is not in its action space Discrete(5)"
    )
    errors = peers[0].of("error")
    assert len(errors) >= 2 and {e["code"] for e in errors} == {"bad_p2p_frames"} and not any(e["fatal"] for e in errors)
    assert "frames up to 29 are taken" in errors[0]["message"] and max(peers[0].acks) <= 29
    assert [(e["code"], e["message"].split(";")[0]) for e in peers[1].of("error")] == [
        ("bad_field", "p2p_events: unknown event 'hacked'"),
        ("bad_field", "p2p_events: a resync event over 16384 bytes"),
        ("unknown_match", "p2p_frames for match 'duo-99999'"),
    ]
    chains = {r["frame"]: r["chain"] for r in peers[0].history}
    (mismatch,) = [e["data"] for e in events if e["kind"] == "p2p_mismatch"]
    assert mismatch == {
        "session_id": matches[0]["match_id"],
        "scene_id": "duo",
        "match_id": matches[0]["match_id"],
        "frame": 10,
        "peer": "agent_1",
        "chain": "f" * 16,
        "reference_chain": chains[10],
    }
    (verification,) = [e["data"] for e in events if e["kind"] == "verification"]
    assert verification["episode"] == 0 and verification["verified"]  # episode 1 was not stored whole


def test_a_member_back_within_the_grace_resends_what_was_not_acked_and_the_record_is_whole(tmp_path):
    data = tmp_path / "data"

    async def main():
        deployment = mug.deploy(p2p_study(), port=0, data_dir=data)
        try:
            peers = await matched(deployment.url, ["alice", "bob"])
            ref = peers[0]
            scenes = len(ref.of("scene"))

            async def away():
                await ref.disconnect(alive=True)

            async def back():
                await ref.connect()

            await play(peers, SimNet(default=Link(latency_s=0.02), seed=3), at={0.4: away, 1.0: back})
            for p in peers:
                await p.until(lambda p=p: any(m["scene"].get("kind") == "end" for m in p.of("scene")))
            return peers, scenes
        finally:
            deployment.stop()

    peers, scenes = run_async(main())
    steps, events, matches = read_store(data)
    assert matches[0]["end_reason"] == "done"
    ref = peers[0]
    again = ref.messages[[i for i, m in enumerate(ref.messages) if m["type"] == "scene"][scenes] :]
    assert again[0]["type"] == "scene" and again[0]["scene"]["environment"]["spec"]["p2p"] == peers[0].spec["p2p"]
    assert "p2p" in [m["type"] for m in again]  # the mesh again
    assert [e["kind"] for e in events].count("rejoined") == 1
    stored = [{k: s[k] for k in ("frame", "chain", "actions")} for s in steps]
    for p in peers:
        assert [{k: r[k] for k in ("frame", "chain", "actions")} for r in step_rows(p.history)] == stored
    assert len(steps) == 40 and not [e for e in events if e["kind"] in ("p2p_mismatch", "bad_p2p_frames")]


def test_a_lost_member_ends_the_match_at_the_timeout_and_the_other_moves_on(tmp_path):
    data = tmp_path / "data"

    async def main():
        deployment = mug.deploy(p2p_study(reconnect_timeout_s=1.0), port=0, data_dir=data)
        try:
            peers = await matched(deployment.url, ["alice", "bob"])
            left, stays = peers[1], peers[0]

            async def gone():
                await left.disconnect(alive=False)

            await play(peers, SimNet(default=Link(latency_s=0.02), seed=4), at={0.5: gone}, stop=lambda: stays.of("notice"))
            await stays.until(lambda: any(m["scene"].get("kind") == "end" for m in stays.of("scene")))
            return stays
        finally:
            deployment.stop()

    stays = run_async(main())
    steps, events, matches = read_store(data)
    assert matches[0]["end_reason"] == "partner_lost"
    (notice,) = stays.of("notice")
    assert notice["code"] == "partner_lost"
    assert [e["data"]["agent"] for e in events if e["kind"] == "partner_lost"] == ["agent_1"]
    (interrupted,) = [e["data"] for e in events if e["kind"] == "interrupted"]
    assert interrupted["reason"] == "partner_lost" and interrupted["frame"] >= 0
    mine = step_rows(stays.history)
    assert steps and [s["chain"] for s in steps] == [r["chain"] for r in mine[: len(steps)]]


def test_three_humans_and_an_ai_seat_over_uneven_links_are_stored_once_and_verified(tmp_path):
    data = tmp_path / "data"
    game = (
        mug.GymScene("duo")
        .environment(PlainCoopGrid, {"agents": 4, "size": 5, "coins": 5, "max_steps": 1000}, seed=2)
        .policies({"agent_0": mug.Human, "agent_1": mug.Human, "agent_2": mug.Human, "agent_3": mug.Random})
        .gameplay(action_mapping=KEYS, num_episodes=1, max_steps=25)
        .rendering(fps=30, width=100, height=100)
        .runtime(environment="browser")
        .multiplayer(mode="p2p", input_delay=1, max_prediction=10)
    )
    links = {
        ("agent_0", "agent_1"): Link(latency_s=0.08, jitter_s=0.02, loss=0.1),
        ("agent_1", "agent_0"): Link(latency_s=0.02),
        ("agent_2", "agent_0"): Link(latency_s=0.05, reorder=0.2, duplicate=0.1),
    }

    async def main():
        deployment = mug.deploy(mug.Stager([game, mug.EndScene("end")], seed=1), port=0, data_dir=data)
        try:
            peers = await matched(deployment.url, ["ann", "ben", "cat"])
            await play(peers, SimNet(links, default=Link(latency_s=0.03, loss=0.05), seed=5))
            for p in peers:
                await p.until(lambda p=p: any(m["scene"].get("kind") == "end" for m in p.of("scene")))
            return peers, await wait_for(data, "verification", 1)
        finally:
            deployment.stop()

    peers, (verification,) = run_async(main())
    steps, events, matches = read_store(data)
    assert matches[0]["end_reason"] == "done" and verification["data"]["verified"]
    assert all(p.spec["p2p"]["ai_seats"] == ["agent_3"] for p in peers)
    assert [s["step"] for s in steps] == list(range(len(steps))) and len(steps) <= 25  # the coins may all go early
    last = steps[-1]
    assert len(steps) == 25 or all(last["terminated"][a] or last["truncated"][a] for a in last["terminated"])
    for p in peers:
        assert step_rows(p.history) == [{k: s[k] for k in step_rows(p.history)[0]} for s in steps]
    seats = matches[0]["seats"]
    for s in steps:
        assert s["sources"] == {**{seat: f"human:{pid}" for seat, pid in seats.items()}, "agent_3": "policy"}
        assert s["actions"]["agent_3"] == random.Random(f"agent_3:{s['frame']}").randrange(5)
        assert s["ai_digests"] == {"agent_3": None}
    assert not [e for e in events if e["kind"] in ("p2p_mismatch", "bad_p2p_frames")]
    assert len([e for e in events if e["kind"] == "p2p_episode"]) == 3
