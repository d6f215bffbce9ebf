"""A seeded simulated network and a harness that runs 2-4 :class:`~mug.netcode.RollbackPeer` s on a simulated clock.

:class:`SimNet` models each direction of each pair with a :class:`Link`:
latency, uniform jitter, loss, duplication, reordering (a packet held back
by up to one more latency), and an optional outage. Channel ``"input"`` is an
unordered, unreliable DataChannel: lost packets are gone, duplicates and
reordering happen. Channel ``"control"`` is reliable and ordered, like SCTP: a
lost packet arrives one retransmission later, and nothing overtakes it.
Every message goes through ``json`` on the way (what the DataChannels carry).

:func:`run_peers` ticks every peer at its fps (each from its own start
time), feeds local inputs from a function, serves AI requests, delivers
packets, and collects every peer's confirmed history (a ``resync`` event
drops that peer's records from its frame on, as the event asks).
"""

from __future__ import annotations

import heapq
import json
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mug.netcode.peer import RollbackPeer
from mug.netcode.records import FrameRecord

__all__ = ["Link", "RunResult", "SimNet", "held_inputs", "run_peers"]


@dataclass(frozen=True)
class Link:
    """One direction between two peers (seconds and probabilities)."""

    latency_s: float = 0.0
    jitter_s: float = 0.0
    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    outage: tuple[float, float] | None = None
    """``(start, end)``: input packets sent in it are lost, control packets wait until ``end``."""
    torn: bool = False
    """In the outage control packets are lost too (a mesh torn down and made anew, as after a socket reconnect)."""


class SimNet:
    """Packets in flight between peers (see module docstring).

    Args:
        links: ``(from, to) -> Link``; pairs not listed use ``default``.
        default: the link of every other direction.
        seed: seeds every random draw.
    """

    def __init__(self, links: Mapping[tuple[str, str], Link] | None = None, *, default: Link = Link(), seed: int = 0) -> None:
        self.links, self.default = dict(links or {}), default
        self.rng = random.Random(seed)
        self._queue: list[tuple[float, int, str, str, str, str]] = []
        self._order = 0
        self._control_at: dict[tuple[str, str], float] = {}
        self.sent = self.lost = self.duplicated = 0

    def link(self, src: str, dst: str) -> Link:
        """The link from ``src`` to ``dst``."""
        return self.links.get((src, dst), self.default)

    def _delay(self, link: Link) -> float:
        delay = link.latency_s + self.rng.uniform(-link.jitter_s, link.jitter_s)
        if self.rng.random() < link.reorder:
            delay += self.rng.uniform(0.0, link.latency_s + link.jitter_s + 0.05)
        return max(delay, 0.0)

    def _push(self, at: float, src: str, dst: str, channel: str, text: str) -> None:
        heapq.heappush(self._queue, (at, self._order, src, dst, channel, text))
        self._order += 1

    def send(self, now: float, src: str, dst: str, channel: str, message: dict[str, Any]) -> None:
        """Put one message on the wire at ``now``."""
        link, text = self.link(src, dst), json.dumps(message)
        self.sent += 1
        down = link.outage is not None and link.outage[0] <= now < link.outage[1]
        if channel == "control":
            at = now + self._delay(link)
            if self.rng.random() < link.loss:
                at += max(0.2, 2 * link.latency_s)  # one retransmission
            if down and link.torn:
                self.lost += 1
                return
            if down:
                at = max(at, link.outage[1] + link.latency_s)
            at = max(at, self._control_at.get((src, dst), 0.0))
            self._control_at[(src, dst)] = at
            self._push(at, src, dst, channel, text)
            return
        if down or self.rng.random() < link.loss:
            self.lost += 1
            return
        self._push(now + self._delay(link), src, dst, channel, text)
        if self.rng.random() < link.duplicate:
            self.duplicated += 1
            self._push(now + self._delay(link), src, dst, channel, text)

    def next_time(self) -> float | None:
        """When the next packet arrives (``None``: nothing in flight)."""
        return self._queue[0][0] if self._queue else None

    def deliver(self, now: float) -> list[tuple[str, str, dict[str, Any]]]:
        """Packets due by ``now``, in arrival order: ``(to, from, message)``."""
        out = []
        while self._queue and self._queue[0][0] <= now:
            _, _, src, dst, _, text = heapq.heappop(self._queue)
            out.append((dst, src, json.loads(text)))
        return out


def held_inputs(seed: int, actions: int = 5, hold: int = 4) -> Callable[[str, str, int], int]:
    """A human-like input function: each seat holds a seeded random action for ``hold`` frames at a time."""

    def choose(peer: str, seat: str, frame: int) -> int:
        return random.Random(f"{seed}:{seat}:{frame // hold}").randrange(actions)

    return choose


@dataclass
class RunResult:
    """What :func:`run_peers` saw: per peer its history, events, stats, and the most it ever held."""

    histories: dict[str, list[FrameRecord]] = field(default_factory=dict)
    events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    stats: dict[str, dict[str, Any]] = field(default_factory=dict)
    max_memory: dict[str, dict[str, int]] = field(default_factory=dict)
    ai_steps: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def run_peers(
    peers: list[RollbackPeer],
    net: SimNet,
    duration_s: float,
    inputs: Callable[[str, str, int], Any],
    *,
    drivers: Mapping[str, Any] | None = None,
    start_s: Mapping[str, float] | None = None,
    on_tick: Callable[[RollbackPeer, float], None] | None = None,
    rejoin: Mapping[str, tuple[float, RollbackPeer, Any]] | None = None,
    leave: Mapping[str, float] | None = None,
) -> RunResult:
    """Run ``peers`` for ``duration_s`` simulated seconds on ``net``.

    Args:
        inputs: ``(peer_id, seat, frame) -> action`` for every local seat, read before each tick.
        drivers: ``peer_id -> driver`` with ``serve(peer)`` (e.g. :class:`mug.netcode.ai.PolicyDriver`), called after each tick.
        start_s: when each peer starts ticking (default 0).
        on_tick: called after every tick (tests check memory bounds here).
        rejoin: ``peer_id -> (time, new peer, its driver or None)``: at its first tick from ``time`` on, the peer
            is replaced by a new one (a reloaded page), which asks for the state (:meth:`RollbackPeer.request_state`,
            with its seats' inputs of the last ``2 * horizon`` frames the designated peer confirmed: what a server
            that records from the designated peer holds) and gets the packets in flight to the old one.
        leave: ``peer_id -> time``: the peer stops at its first tick from then on (its tab closed); its packets
            in flight still arrive, packets to it are dropped (tell the others with ``on_tick``: ``lose_peer``).
    """
    by_id = {p.peer_id: p for p in peers}
    drivers, start_s, rejoin = dict(drivers or {}), dict(start_s or {}), dict(rejoin or {})
    leave, left = dict(leave or {}), set()
    result = RunResult()
    for p in peers:
        result.histories[p.peer_id], result.events[p.peer_id] = [], []
        result.max_memory[p.peer_id] = dict.fromkeys(p.memory(), 0)
    ticks = [(start_s.get(p.peer_id, 0.0), i, p.peer_id) for i, p in enumerate(peers)]
    counts = dict.fromkeys(by_id, 0)
    heapq.heapify(ticks)
    now = 0.0
    while ticks and ticks[0][0] < duration_s:
        arrival = net.next_time()
        if arrival is not None and arrival < ticks[0][0]:
            now = arrival
            for dst, src, message in net.deliver(now):
                if dst not in left:
                    by_id[dst].receive(src, message)
            continue
        now, order, pid = heapq.heappop(ticks)
        if pid in leave and now >= leave[pid]:
            left.add(pid)
            continue
        if pid in rejoin and now >= rejoin[pid][0]:
            _, by_id[pid], driver = rejoin.pop(pid)
            drivers.pop(pid, None)
            if driver is not None:
                drivers[pid] = driver
            by_id[pid].request_state(_recorded_inputs(result.histories[by_id[pid].designated], by_id[pid]))
        peer = by_id[pid]
        for seat in peer.local_seats:
            peer.add_local_input(seat, inputs(pid, seat, peer.frame))
        for dst, channel, message in peer.advance(now):
            for to in [dst] if dst is not None else peer.remotes:
                net.send(now, pid, to, channel, message)
        if pid in drivers:
            drivers[pid].serve(peer)
        _collect(peer, result)
        if on_tick is not None:
            on_tick(peer, now)
        counts[pid] += 1
        heapq.heappush(ticks, (start_s.get(pid, 0.0) + counts[pid] / peer.fps, order, pid))
    result.seconds = now
    for p in by_id.values():
        result.stats[p.peer_id] = p.stats.to_dict()
        result.ai_steps[p.peer_id] = getattr(drivers.get(p.peer_id), "steps", 0)
    return result


def _recorded_inputs(history: list[FrameRecord], peer: RollbackPeer) -> dict[str, Any] | None:
    """``peer``'s seats' inputs in the last ``2 * horizon`` records of ``history`` (``None``: no record yet)."""
    recent = history[-2 * peer.horizon :]
    if not recent:
        return None
    return {"start": recent[0].frame, "inputs": {s: [r.inputs[s] for r in recent] for s in peer.local_seats}}


def _collect(peer: RollbackPeer, result: RunResult) -> None:
    history = result.histories[peer.peer_id]
    for event in peer.take_events():
        result.events[peer.peer_id].append(event)
        if event["type"] == "resync":
            history[:] = [r for r in history if r.frame < event["frame"]]
    history.extend(peer.take_records())
    top = result.max_memory[peer.peer_id]
    for key, value in peer.memory().items():
        top[key] = max(top[key], value)
