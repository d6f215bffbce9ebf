"""Peer-to-peer signalling and relay among the members of one match (the server side of ``js/src/p2p``).

The server never sees the game traffic of a direct connection: it forwards the
WebRTC negotiation (``signal``) between the members of one running match, and,
for a pair whose direct connection failed or is too slow, their game messages
(``relay``). Everything else (which seat offers, timeouts, RTT, the reliable
control stream) is the page's (``js/src/p2p/mesh.js``).

Opening: whoever runs the match as peer-to-peer calls :meth:`MatchSignals.start`
(e.g. the P2P scene at match start); from then on each member's page (and the
page of a member who comes back) gets ``p2p`` and starts its mesh.

Wire, server -> page:

* ``{type: "p2p", match_id, seat, seats, ice_servers, options}``: start the mesh.
  ``seats``: the member seats in the scene's order (the lower index offers);
  ``ice_servers``: ``RTCIceServer`` dicts (the deployment's ``ice_servers``, a
  list or ``callable(participant_id)`` called for each page, so short-lived TURN
  credentials are made per page); ``options``: the mesh's settings
  (:data:`MESH_OPTIONS`), as this page's: ``seat_shims`` is not sent, the page
  of a seat it names gets that entry as its ``shim``.
* ``{type: "p2p_peers", peers: {seat: epoch | null}, server_rtt_ms: {seat: ms | null}}``:
  which seats' pages run the mesh now (``epoch`` changes when a page is
  reopened: peers then connect anew), sent to every joined page on each change;
  ``server_rtt_ms`` is each member's round trip to the server (the relay's cost).
* ``{type: "signal", from: seat, data}``, ``{type: "relay", from: seat, channel, data, e}``
  (``e``: [the sender's epoch, the receiver's]), ``{type: "p2p_relay", from: seat, reason,
  e}`` (the peer moved the pair to the relay).

Wire, page -> server (checked here; bad ones are dropped with a throttled log line):

* ``{type: "p2p_join"}``: my page runs the mesh (answered with ``p2p_peers``); at most
  :data:`JOINS_PER_SECOND` per page (bursts of :data:`JOIN_BURST`: each join makes
  every peer connect anew);
* ``{type: "signal", to: seat, data}``: ``data`` at most :data:`MAX_SIGNAL_BYTES`
  as JSON, at most :data:`SIGNALS_PER_SECOND` per page (bursts of :data:`SIGNAL_BURST`);
* ``{type: "p2p_relay", to: seat, reason, rtt_ms?, e?: [my epoch, theirs]}``: this
  pair goes through the server from now on; recorded once per pair and pair of page
  epochs as the match's event ``p2p_relay`` ``{match_id, scene_id, pair, reason, by,
  rtt_ms}`` (at most :data:`MAX_RELAY_EVENTS` events per member and match; later
  declarations are honoured but not recorded) and forwarded to the peer;
* ``{type: "p2p_direct", to: seat, attempt, e?}``: this relayed pair has a direct
  connection again (its pages retry one a while after a relay for ``timeout``, ``failed``
  or ``lost``, see ``js/src/p2p/pair.js``); recorded when the first end says it, as the
  match's event ``p2p_direct`` ``{match_id, scene_id, pair, by, attempt}`` (counted with
  the ``p2p_relay`` events); once both ends said it the pair is no longer relayed (until
  then what the other end relays is still forwarded; a later ``p2p_relay`` declares it
  again);
* ``{type: "relay", batches: [{to: seat, e?: [my epoch, theirs], channel: "inputs" |
  "control", data}, ...]}``: what the page relays to every peer on every channel in
  one message (the server fans it out, one ``relay`` per batch); the older form
  ``{type: "relay", to, channel, data, e?}`` is one batch. A batch is forwarded only
  for a pair declared relayed; a message is at most :data:`MAX_RELAY_BYTES` (its
  batches' ``data`` as UTF-8 JSON), at most :data:`RELAYS_PER_SECOND` messages
  (bursts of :data:`RELAY_BURST`) and :data:`RELAY_BYTES_PER_SECOND` bytes (bursts
  of :data:`RELAY_BYTES_BURST`) per page; a batch is dropped while the target's
  backlog (its queued and unsent bytes) is over :data:`MAX_TARGET_BACKLOG_BYTES`
  (the page re-sends ``control`` until it is acknowledged, see
  ``js/src/p2p/reliable.js``; ``inputs`` are unreliable anyway). The WebSocket is
  ordered and reliable; the page still sequences ``control`` itself.

``e`` (optional, the page always sends it): the pair of page epochs the message
was meant for, as the page's ``signal`` data carries them; a message whose ``e``
is not the current pair (a page reloaded meanwhile) is dropped. ``signal`` and
``relay`` count against these buckets only, not the tab's ``messages_per_second``
(:data:`SELF_LIMITED_TYPES`).

Only members present in the match (not lost) whose page joined may send or
receive; ``to`` must be another such member's seat.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mug.errors import ConfigError
from mug.server.limits import RateLimit, ThrottledWarning
from mug.session.messages import P2P_INBOUND_TYPES, encode_envelope

if TYPE_CHECKING:
    from mug.server.matches.match import Match

__all__ = [
    "IceServers",
    "MatchSignals",
    "P2P_TYPES",
    "check_ice_servers",
    "check_mesh_options",
    "MAX_SIGNAL_BYTES",
    "MESH_OPTIONS",
    "RELAY_REASONS",
    "SELF_LIMITED_TYPES",
]

log = logging.getLogger("mug.server")

#: Inbound message types this module handles (routed here by ``Match.handle``).
P2P_TYPES = P2P_INBOUND_TYPES
#: Largest ``signal.data`` (as JSON): an SDP offer of two data channels is 1-3 KB.
MAX_SIGNAL_BYTES = 16 * 1024
SIGNALS_PER_SECOND, SIGNAL_BURST = 20.0, 200.0
JOINS_PER_SECOND, JOIN_BURST = 0.2, 5.0
RELAYS_PER_SECOND, RELAY_BURST = 240.0, 480.0
#: Largest ``relay`` message: its batches' ``data`` as UTF-8 JSON (the page sends at most 64 KiB, or one
#: envelope alone, under 50 KiB: ``js/src/p2p/mesh.js`` ``MAX_RELAY_BATCH``).
MAX_RELAY_BYTES = 128 * 1024
RELAY_BYTES_PER_SECOND, RELAY_BYTES_BURST = 512.0 * 1024, 2.0 * 1024 * 1024
#: A target's queued and unsent bytes over which relays to it are dropped (under the socket's budget, so a
#: partner who sends much cannot get an honest page's connection dropped).
MAX_TARGET_BACKLOG_BYTES = 512 * 1024
#: ``p2p_relay`` and ``p2p_direct`` events recorded per member and match, at most.
MAX_RELAY_EVENTS = 20
#: Inbound types counted by this module's buckets instead of the tab's ``messages_per_second``.
SELF_LIMITED_TYPES = ("signal", "relay")
CHANNELS = ("inputs", "control")
#: Why a pair goes through the server: no ``RTCPeerConnection`` in the page, no connection within the
#: timeout, the connection failed, a connection that was open was lost, or its round trip was too long.
RELAY_REASONS = ("unavailable", "timeout", "failed", "lost", "rtt")
#: The test shim's settings (``js/src/p2p/shim.js``): each direction's delay, its jitter, the share of inputs lost.
_SHIM: dict[str, Callable[[Any], bool]] = {
    "latency_ms": lambda v: _number(v) and 0 <= v <= 10_000,
    "jitter_ms": lambda v: _number(v) and 0 <= v <= 10_000,
    "loss": lambda v: _number(v) and 0 <= v < 1,
    "seed": lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**32,
}
#: The mesh's settings a ``p2p`` message may carry (see ``js/src/p2p/mesh.js``), and their checks. ``shim``:
#: the test shim of every page (on what it sends); ``seat_shims``: ``{seat: shim settings}``, the shim of the
#: pages of those seats instead (one page's sends slower than the other's: asymmetric latency).
MESH_OPTIONS: dict[str, Callable[[Any], bool]] = {
    "connect_timeout_s": lambda v: _number(v) and 0 < v <= 120,
    "ping_every_s": lambda v: _number(v) and 0.05 <= v <= 60,
    "max_rtt_ms": lambda v: v is None or (_number(v) and v > 0),
    "rtt_violations": lambda v: isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 1000,
    "lost_grace_s": lambda v: _number(v) and 0 <= v <= 60,
    "retry_direct_s": lambda v: v is None or (_number(v) and 0.05 <= v <= 3600),
    "shim": lambda v: _shim_problem(v) is None,
    "seat_shims": lambda v: isinstance(v, dict) and all(isinstance(k, str) and _shim_problem(x) is None for k, x in v.items()),
}

#: ``ice_servers`` of ``mug.deploy``: ``RTCIceServer`` dicts, or a callable of the participant id returning them.
IceServers = list[dict[str, Any]] | Callable[[str], list[dict[str, Any]]]

_dropped = ThrottledWarning(log, "match %s: dropped a p2p message from participant %s: %s")


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _shim_problem(value: Any) -> str | None:
    """What is wrong with shim settings ``value`` (see ``_SHIM``), or None."""
    if not isinstance(value, dict):
        return f"expected a dict of {sorted(_SHIM)}, got {type(value).__name__}"
    for key, x in value.items():
        if key not in _SHIM:
            return f"unknown setting {key!r}; settings: {sorted(_SHIM)}"
        if not _SHIM[key](x):
            return f"{key}={x!r} is out of range"
    return None


def check_ice_servers(value: Any, where: str = "ice_servers") -> list[dict[str, Any]]:
    """``value`` as a list of ``RTCIceServer`` dicts (``urls``: a URL or list of them; ``username`` and
    ``credential`` text), or ``ConfigError`` naming the entry at fault."""
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{where}: expected a list of {{'urls': ...}} dicts, got {type(value).__name__}", field="ice_servers")
    out = []
    for i, server in enumerate(value):
        if not isinstance(server, dict):
            raise ConfigError(f"{where}[{i}]: expected a dict with 'urls', got {type(server).__name__}", field="ice_servers")
        urls = server.get("urls")
        listed = [urls] if isinstance(urls, str) else urls
        if not isinstance(listed, (list, tuple)) or not listed or not all(isinstance(u, str) and u for u in listed):
            raise ConfigError(f"{where}[{i}].urls: expected a URL or a list of URLs, got {urls!r}", field="ice_servers")
        bad = [u for u in listed if not u.startswith(("stun:", "stuns:", "turn:", "turns:"))]
        if bad:
            raise ConfigError(f"{where}[{i}].urls: {bad[0]!r} is not a stun:, stuns:, turn: or turns: URL", field="ice_servers")
        unknown = set(server) - {"urls", "username", "credential"}
        if unknown:
            raise ConfigError(
                f"{where}[{i}]: unknown keys {sorted(unknown)}; expected urls, username, credential", field="ice_servers"
            )
        for key in ("username", "credential"):
            if key in server and not isinstance(server[key], str):
                raise ConfigError(f"{where}[{i}].{key}: expected text", field="ice_servers")
        out.append({"urls": list(listed), **{k: server[k] for k in ("username", "credential") if k in server}})
    return out


def check_mesh_options(options: dict[str, Any], seats: list[str] | None = None) -> dict[str, Any]:
    """``options`` of :meth:`MatchSignals.start` (see :data:`MESH_OPTIONS`), or ``ConfigError`` naming the one at
    fault; ``seats``: the match's seats, which ``seat_shims`` must name (unchecked when None)."""
    for key, value in options.items():
        check = MESH_OPTIONS.get(key)
        if check is None:
            raise ConfigError(f"p2p option {key}={value!r} is unknown; options: {sorted(MESH_OPTIONS)}")
        if key == "shim" and (problem := _shim_problem(value)) is not None:
            raise ConfigError(f"p2p option shim: {problem}")
        if key == "seat_shims" and isinstance(value, dict):
            for seat, shim in value.items():
                if seats is not None and seat not in seats:
                    raise ConfigError(f"p2p option seat_shims: {seat!r} is not a seat of the match; seats: {seats}")
                if (problem := _shim_problem(shim)) is not None:
                    raise ConfigError(f"p2p option seat_shims[{seat!r}]: {problem}")
        if not check(value):
            raise ConfigError(f"p2p option {key}={value!r} is out of range")
    return dict(options)


class MatchSignals:
    """Signalling and relay of one match's peer-to-peer mesh (see module docstring).

    Args:
        match: the match.
        ice_servers: the deployment's ICE servers (a checked list, or a callable of the participant id).
    """

    def __init__(self, match: Match, ice_servers: IceServers) -> None:
        self.match, self.ice_servers = match, ice_servers
        self.started = False
        self.options: dict[str, Any] = {}
        #: Participant id -> epoch of their page that runs the mesh.
        self.epochs: dict[str, int] = {}
        #: Pairs going through the server: frozensets of two (seat, epoch), of pages in the mesh now.
        self.relayed: set[frozenset[tuple[str, int]]] = set()
        #: Relayed pairs whose pages said ``p2p_direct``: which of the two (un-relayed once both did).
        self._direct_ends: dict[frozenset[tuple[str, int]], set[str]] = {}
        self._epoch = 0
        self._limits: dict[str, dict[str, RateLimit]] = {}
        self._events: dict[str, int] = {}
        #: The buckets' clock (seconds; tests may freeze it).
        self.clock: Callable[[], float] = time.monotonic

    # -- lifecycle (called by Match) ----------------------------------------------------

    def start(self, options: dict[str, Any] | None = None) -> None:
        """Open the mesh: every present member's page gets ``p2p`` (``options``: see :data:`MESH_OPTIONS`)."""
        self.started, self.options = True, check_mesh_options(options or {}, self._seats())
        for pid in self._present():
            self._send_start(pid)

    def rejoined(self, pid: str) -> None:
        """Member ``pid`` opened a tab: its old page has left the mesh; the new one gets ``p2p``."""
        if not self.started:
            return
        if self.epochs.pop(pid, None) is not None:
            self._roster()
        self._send_start(pid)

    def left(self, pid: str) -> None:
        """Member ``pid`` is lost or gone: out of the mesh (the others are told)."""
        if self.epochs.pop(pid, None) is not None:
            self._roster()

    # -- messages -----------------------------------------------------------------------

    def handle(self, pid: str, message: dict[str, Any]) -> None:
        """A ``P2P_TYPES`` message of member ``pid`` (bad ones are dropped, with a throttled log line)."""
        problem = self._handle(pid, message)
        if problem is not None:
            _dropped(self.match.match_id, pid, problem)

    def _handle(self, pid: str, message: dict[str, Any]) -> str | None:
        kind = message["type"]
        if not self.started:
            return f"{kind}: this match is not peer-to-peer"
        limits = self._limits.get(pid)
        if limits is None:
            limits = self._limits[pid] = {
                "join": RateLimit(JOINS_PER_SECOND, JOIN_BURST),
                "signal": RateLimit(SIGNALS_PER_SECOND, SIGNAL_BURST),
                "relay": RateLimit(RELAYS_PER_SECOND, RELAY_BURST),
                "bytes": RateLimit(RELAY_BYTES_PER_SECOND, RELAY_BYTES_BURST),
            }
            for bucket in limits.values():
                bucket.last = self.clock()
        now = self.clock()
        if kind == "p2p_join":
            if not limits["join"].allow(now):  # each join makes every peer connect anew
                return "p2p_join: too many"
            self._epoch += 1
            self.epochs[pid] = self._epoch
            self._roster()
            return None
        if pid not in self.epochs:
            return f"{kind} before p2p_join"
        if kind == "relay":
            return self._relay(pid, message, limits, now)
        to = message.get("to")
        target, problem = self._target(pid, kind, to, message.get("e"))
        if target is None:
            return problem
        seat = self.match.agent_of[pid]
        if kind == "p2p_direct":
            return self._direct(pid, target, seat, to, message.get("attempt"))
        if kind == "signal":
            if not limits["signal"].allow(now):
                return "signal: too many"
            if len(json.dumps(message.get("data"), separators=(",", ":"))) > MAX_SIGNAL_BYTES:
                return f"signal: data over {MAX_SIGNAL_BYTES} bytes"
            self._send(target, {"type": "signal", "from": seat, "data": message.get("data")}, now=True)
            return None
        reason, rtt = message.get("reason"), message.get("rtt_ms")
        if reason not in RELAY_REASONS:
            return f"p2p_relay: reason must be one of {RELAY_REASONS}"
        pair = self._pair(pid, target)
        if pair in self.relayed:
            return None  # both ends declared it at once
        self.relayed.add(pair)
        self._direct_ends.pop(pair, None)
        self._events[pid] = self._events.get(pid, 0) + 1
        if self._events[pid] <= MAX_RELAY_EVENTS:
            record = {"pair": sorted([seat, to]), "reason": reason, "by": seat}
            record["rtt_ms"] = round(float(rtt), 3) if _number(rtt) else None
            self._event("p2p_relay", record)
        else:
            _dropped(self.match.match_id, pid, f"p2p_relay: not recorded (over {MAX_RELAY_EVENTS} events)")
        self._send(target, {"type": "p2p_relay", "from": seat, "reason": reason, "e": self._epochs_of(pid, target)})
        return None

    def _direct(self, pid: str, target: str, seat: Any, to: str, attempt: Any) -> str | None:
        """``p2p_direct``: the relayed pair of ``pid`` and ``target`` is direct again."""
        if not (isinstance(attempt, int) and not isinstance(attempt, bool) and attempt >= 1):
            return "p2p_direct: attempt must be an integer of at least 1"
        pair = self._pair(pid, target)
        if pair not in self.relayed:
            return None
        ends = self._direct_ends.setdefault(pair, set())
        ends.add(pid)
        if len(ends) == 2:  # both pages use the new connection: nothing of theirs needs the relay any more
            self.relayed.discard(pair)
            del self._direct_ends[pair]
        if len(ends) > 1:
            return None  # recorded when the first end said it
        self._events[pid] = self._events.get(pid, 0) + 1
        if self._events[pid] <= MAX_RELAY_EVENTS:
            self._event("p2p_direct", {"pair": sorted([str(seat), to]), "by": str(seat), "attempt": attempt})
        else:
            _dropped(self.match.match_id, pid, f"p2p_direct: not recorded (over {MAX_RELAY_EVENTS} events)")
        return None

    def _target(self, pid: str, kind: str, to: Any, e: Any) -> tuple[str | None, str | None]:
        """The member ``pid``'s message names with ``to`` (and ``e``, if given), or None and why not."""
        target = self.match.seats.get(to) if isinstance(to, str) else None
        if target is None or target == pid or target not in self.epochs or target in self.match.lost:
            return None, f"{kind}: {str(to)[:40]!r} is not another member's seat in the mesh"
        if e is not None and e != self._epochs_of(pid, target):
            return None, f"{kind}: for pages that are gone (epochs {str(e)[:40]})"
        return target, None

    def _epochs_of(self, pid: str, other: str) -> list[int]:
        return [self.epochs[pid], self.epochs[other]]

    def _pair(self, pid: str, target: str) -> frozenset[tuple[str, int]]:
        seat, other = str(self.match.agent_of[pid]), str(self.match.agent_of[target])
        return frozenset({(seat, self.epochs[pid]), (other, self.epochs[target])})

    def _relay(self, pid: str, message: dict[str, Any], limits: dict[str, RateLimit], now: float) -> str | None:
        batches = message.get("batches")
        if batches is None:
            batches = [{k: message.get(k) for k in ("to", "channel", "data", "e")}]
        if not isinstance(batches, list) or not all(isinstance(b, dict) for b in batches):
            return "relay: batches must be a list of objects"
        if not limits["relay"].allow(now):
            return "relay: too many"
        seat = self.match.agent_of[pid]
        out: list[tuple[str, bytes]] = []
        problems: list[str] = []
        size = 0
        for batch in batches:  # a bad batch is dropped, the others go (a stale one is normal around a reload)
            target, problem = self._target(pid, "relay", batch.get("to"), batch.get("e"))
            if target is not None and batch.get("channel") not in CHANNELS:
                problem = f"relay: channel must be one of {CHANNELS}"
            elif target is not None and self._pair(pid, target) not in self.relayed:
                problem = "relay for a pair not declared relayed (p2p_relay)"
            if problem is not None:
                problems.append(problem)
                continue
            size += len(json.dumps(batch.get("data"), separators=(",", ":"), ensure_ascii=False).encode())
            if size > MAX_RELAY_BYTES:
                return f"relay: over {MAX_RELAY_BYTES} bytes"
            forward = {"type": "relay", "from": seat, "channel": batch["channel"], "data": batch.get("data")}
            forward["e"] = self._epochs_of(pid, target)
            out.append((target, encode_envelope(forward)))
        if not limits["bytes"].allow(now, size):
            return "relay: too many bytes a second"
        for target, frame in out:
            if self._backlog(target) > MAX_TARGET_BACKLOG_BYTES:
                problems.append(f"relay: {self.match.agent_of[target]} is too far behind to take more")
            else:
                self._deliver_now(target, frame)
        return "; ".join(sorted(set(problems))) or None

    # -- internals ----------------------------------------------------------------------

    def _present(self) -> list[str]:
        return [pid for pid in self.match.members if pid not in self.match.lost]

    def _seats(self) -> list[str]:
        return [str(a) for a in self.match.scene.humans if a in self.match.seats]

    def _send(self, pid: str, message: dict[str, Any], *, now: bool = False) -> None:
        """To member ``pid``; ``now``: at once when nothing is queued for them (game messages wait for the
        store's commit; what peers send each other is not stored, and nothing queued is overtaken)."""
        if now:
            self._deliver_now(pid, encode_envelope(message))
            return
        member = self.match.members.get(pid)
        if member is not None and pid not in self.match.lost:
            member.send(message)

    def _deliver_now(self, pid: str, frame: bytes) -> None:
        member = self.match.members.get(pid)
        if member is None or pid in self.match.lost:
            return
        if not member.outbox and member.connection is not None:
            member.connection.deliver([frame])
        else:
            member.outbox.append(frame)
            member.registry.pending[pid] = member

    def _backlog(self, pid: str) -> int:
        """Bytes queued for member ``pid`` and not yet taken by their socket."""
        member = self.match.members.get(pid)
        if member is None:
            return 0
        unsent = getattr(getattr(member.connection, "socket", None), "unsent", 0)
        return sum(len(frame) for frame in member.outbox) + unsent

    def _send_start(self, pid: str) -> None:
        self._send(
            pid,
            {
                "type": "p2p",
                "match_id": self.match.match_id,
                "seat": str(self.match.agent_of[pid]),
                "seats": self._seats(),
                "ice_servers": self._ice_for(pid),
                "options": self._options_for(str(self.match.agent_of[pid])),
            },
        )

    def _options_for(self, seat: str) -> dict[str, Any]:
        """The mesh options of ``seat``'s page: its ``seat_shims`` entry (if any) as its ``shim``."""
        options = {k: v for k, v in self.options.items() if k != "seat_shims"}
        shim = self.options.get("seat_shims", {}).get(seat)
        if shim is not None:
            options["shim"] = shim
        return options

    def _ice_for(self, pid: str) -> list[dict[str, Any]]:
        if not callable(self.ice_servers):
            return self.ice_servers
        try:
            return check_ice_servers(self.ice_servers(pid), "ice_servers(participant_id)")
        except Exception as exc:  # the researcher's callable: the page still gets host candidates, and the relay
            log.exception("match %s: ice_servers(%r) failed; the page gets none", self.match.match_id, pid)
            self._event("p2p_ice_error", {"participant_id": pid, "error": f"{type(exc).__name__}: {exc}"[:2000]})
            return []

    def _roster(self) -> None:
        current = {(str(self.match.agent_of[pid]), epoch) for pid, epoch in self.epochs.items()}
        self.relayed = {pair for pair in self.relayed if pair <= current}  # pairs of pages that are gone
        self._direct_ends = {pair: ends for pair, ends in self._direct_ends.items() if pair in self.relayed}
        peers = {seat: None for seat in self._seats()}
        rtts: dict[str, float | None] = dict(peers)
        for pid, epoch in self.epochs.items():
            seat = str(self.match.agent_of[pid])
            peers[seat] = epoch
            rtt = self.match.members[pid].monitor.rtt_ms() if pid in self.match.members else None
            rtts[seat] = None if rtt is None else round(rtt, 3)
        for pid in self.epochs:
            self._send(pid, {"type": "p2p_peers", "peers": peers, "server_rtt_ms": rtts})

    def _event(self, kind: str, data: dict[str, Any]) -> None:
        match = self.match
        match.room.store.add_event(match.match_id, kind, {"match_id": match.match_id, "scene_id": match.scene.scene_id, **data})
