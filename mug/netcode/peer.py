"""``RollbackPeer``: one peer of a rollback match, Sans-I/O (no sockets, no clock: the host gives time).

The host calls :meth:`~RollbackPeer.add_local_input` with each local seat's
current action, :meth:`~RollbackPeer.receive` with every message from another
peer, and :meth:`~RollbackPeer.advance` once per display tick; ``advance``
returns the messages to send as ``(to_peer, channel, message)`` (``to_peer``
``None``: every other peer). Channel ``"input"`` may lose, duplicate and
reorder (an unordered, unreliable DataChannel); channel ``"control"`` must be
reliable and ordered. Render right after ``advance`` (before serving AI
requests, which may re-simulate part of the window): the simulation then holds
the state of :attr:`~RollbackPeer.frame` (the speculative present) and
:attr:`~RollbackPeer.display` is the result of the step that led there.

Design (fixed):

- Start barrier: a peer's clock starts (frame 0) once an input message came from every other
  peer (until then it sends its empty input messages each tick): a page whose game is ready
  early (Pyodide loads at different speeds) does not run ahead and stall in episode 0.
- Frame ``f``'s inputs are applied in step ``f``. A local input read while
  frame ``t`` is being produced is stamped ``t + input_delay``.
- Prediction: a seat's unknown input is its last input known in order.
- Confirmed frame ``K``: every seat's input of every frame ``<= K`` is known.
  Snapshots are kept from ``K + 1`` to now; the peer stalls instead of
  predicting more than ``max_prediction`` frames beyond ``K``.
- AI seats run on the confirmed timeline: once the state before frame ``f`` is
  confirmed, the peer requests the AI's action for ``f`` on that state
  (:meth:`~RollbackPeer.ai_requests`); the host's runtime steps once per request
  and answers with :meth:`~RollbackPeer.provide_ai`. Inference never re-runs in a
  rollback; speculative frames predict an AI seat like a human. The action and
  a digest of the runtime's hidden state enter the frame's record and hash.
- Every confirmed frame extends a hash chain; every ``hash_interval``-th frame
  adds the state's hash and its chain value is sent to all peers. The
  designated peer (owner of the first human seat) answers a mismatch with a
  state transfer; the receiver restarts from that state (frame ``c``), drops
  its records from ``c`` (the ``resync`` event says so) and confirms them again.
  A peer that restarts mid-match (a reload) asks for that state with
  :meth:`~RollbackPeer.request_state`; one whose pair with a peer was made anew calls ``reconnected(peer)``.
- Episode ends are part of the simulation; a peer announces each confirmed
  episode end, and an ``episode_end`` event comes once all peers agree.
- A peer gone for good (the host calls :meth:`~RollbackPeer.lose_peer`): its seats become
  AI seats from a frame ``F`` every remaining peer agrees on (:mod:`mug.netcode.handover`):
  each remaining peer announces the seat's inputs it holds (``handover``), ``F`` is one past
  the last frame any of them has, frames before ``F`` confirm with the real inputs, and from
  ``F`` the AI plays the seat afresh on every peer (``seat_ai`` event).

Wire messages (plain JSON)::

    input:   {"t": "input", "from": peer, "frame": f_now, "adv": frames_ahead, "ack": last_frame_of_your_inputs_held,
              "start": f0, "inputs": {seat: [action_f0, action_f0+1, ...]}}
    control: {"t": "hash", "from": peer, "frame": f, "hash": chain, "epoch": epoch_of_the_last_state_applied}
             {"t": "episode", "from": peer, "episode": e, "frame": f}
             {"t": "state_request", "from": peer, "known": {"start": f0, "inputs": {its seat: [input f0, ...]}} | absent}
             {"t": "state", "from": peer, "epoch": n, "frame": c, "sim": snapshot, "chain": chain_before_c,
              "inputs": {seat: input of c - 1}, "result": result_of_c - 1, "last": {ai_seat: its last action},
              "ai": {ai_seat: {"state": blob}}, "yours": {receiver's seat: [its inputs from c on, as the sender holds them]},
              "episodes": {episode: end frame < c, the sender's ends not yet agreed}, "agreed": last agreed episode}
             {"t": "rejoin", "from": server, "peer": rejoining peer, "frame": c, "start": f0,
              "inputs": {its seat: [input f0, ..., input R - 1]}}
             {"t": "handover", "from": peer, "peer": lost peer, "start": f0,
              "inputs": {lost seat: [input f0, ..., input K]}}  (K: its last input held in order)

A reload (:meth:`~RollbackPeer.request_state`): the page asks its *server*
(the designated peer, or when the designated peer reloads, the next peer) for
the state. The server fixes the rejoining seats' inputs of ``[c, R)``, ``R`` =
its frame plus :attr:`~RollbackPeer.horizon` (beyond any input of the old page:
what it held, else its prediction), sends them in ``yours`` and to every other
peer in a ``rejoin`` message (with the inputs it holds from a few frames before
``c``); every peer overwrites that range (a peer that had already confirmed an
old-page input there differs in its chain and is repaired by a state transfer), and the
new page stamps its inputs from ``R`` on. While waiting for the state the page
sends no inputs. ``known`` (from the match's record on the server) are the seat's
inputs as the old page confirmed them: the server takes them where it lacks the
old page's, so the frames the old page confirmed and the record holds are
confirmed again as they are stored (the old page's last inputs never reached
the partners when the old page was the first to confirm them).

Robustness: integer fields are bounded (:mod:`mug.netcode.wire`); an ``ack``
beyond our own stamped inputs, or a ``frame``/hash frame beyond what a peer
could have reached without our inputs, is clamped or dropped and counted in
``stats.bad_messages`` (not while this page waits for a state); remote actions
outside the seat's action space (``Simulation.valid_action``) drop the message.
The designated peer repairs a peer at most ``max_transfers`` times in a row
(with pauses of ``horizon * 2**n`` frames after the ``n``-th; the count starts
afresh once a peer stayed in sync for ``horizon * 2**max_transfers`` frames);
then an ``unrepairable`` event and no more transfers to it.
Time sync takes one sample per newer frame of a peer (duplicated or reordered
packets give none); it cancels the latency only when it is symmetric: with
one-way latencies ``a`` (to) and ``b`` (from the peer) the estimate is off by
``(b - a) / 2`` frames (the peers then share rollbacks unevenly).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from mug.netcode.handover import Handover
from mug.netcode.inputs import InputExchange, input_window
from mug.netcode.records import AIRequest, FrameRecord, PeerStats
from mug.netcode.resync import Resync
from mug.netcode.simulation import FrameResult, Simulation, digest
from mug.netcode.sync import TimeSync
from mug.netcode.wire import integer, text

__all__ = ["Outgoing", "RollbackPeer"]

Outgoing = tuple[str | None, str, dict[str, Any]]


class RollbackPeer(InputExchange, Resync, Handover):
    """One peer (see module docstring).

    Args:
        sim: the peer's own simulation, in the match's start state.
        peer_id: this peer's id.
        owners: every human seat -> the id of the peer that plays it (all peers are the owners' ids).
        ai_seats: seats played by an AI policy on every peer.
        input_delay: frames between reading a local input and applying it.
        max_prediction: frames predicted beyond the confirmed frame before the peer stalls.
        fps: frames per second of the host's clock.
        default_action: every seat's input before its first one.
        hash_interval: every how many confirmed frames the chain hash is exchanged.
        max_redundancy: most inputs per seat in one input message.
        timer: real clock for statistics only (re-simulation time).
        max_transfers: state transfers the designated peer sends a peer in a row without the desync resolving
            before it gives up (``unrepairable`` event).
        start_barrier: frame 0 waits until every other peer was heard from (``False``: it starts at the first
            :meth:`advance`, for hosts that start every peer at once by other means).
    """

    def __init__(
        self,
        sim: Simulation,
        peer_id: str,
        owners: Mapping[str, str],
        ai_seats: Iterable[str] = (),
        *,
        input_delay: int = 2,
        max_prediction: int = 8,
        fps: float = 30.0,
        default_action: Any = 0,
        hash_interval: int = 1,
        max_redundancy: int | None = None,
        timer: Callable[[], float] = time.perf_counter,
        max_transfers: int = 4,
        start_barrier: bool = True,
    ) -> None:
        if input_delay < 0 or max_prediction < 1 or hash_interval < 1 or max_transfers < 1:
            raise ValueError(
                "RollbackPeer: need input_delay >= 0, max_prediction >= 1, hash_interval >= 1 and max_transfers >= 1"
            )
        self.sim, self.peer_id = sim, str(peer_id)
        self.owners = {str(s): str(p) for s, p in owners.items()}
        if self.peer_id not in self.owners.values():
            raise ValueError(f"RollbackPeer: peer {self.peer_id!r} owns no seat in {self.owners}")
        self.humans = list(self.owners)
        self.ai_seats = [str(s) for s in ai_seats]
        self.seats = self.humans + self.ai_seats
        self.local_seats = [s for s in self.humans if self.owners[s] == self.peer_id]
        self.peers = sorted(set(self.owners.values()))
        self.remotes = [p for p in self.peers if p != self.peer_id]
        self.designated = self.owners[self.humans[0]]
        self.input_delay, self.max_prediction, self.fps = input_delay, max_prediction, fps
        self.default_action, self.hash_interval, self.timer = default_action, hash_interval, timer
        window = input_window(max_prediction, input_delay)
        self.horizon = window  # remote inputs are taken up to this many frames ahead of ours
        self.log_frames = 2 * window  # confirmed inputs kept for replays after a state transfer
        self.max_redundancy = max_redundancy or 2 * window
        self.hash_keep = 4 * window  # own chain values kept to compare with late ones

        self.frame = 0  # the live state is S_frame; frames < frame have been stepped
        self.confirmed = -1
        self.display: FrameResult | None = None
        self.stats = PeerStats()
        self._inputs: dict[int, dict[str, Any]] = {}
        self._upto = dict.fromkeys(self.seats, -1)
        self._last_known = dict.fromkeys(self.seats, default_action)
        self._held = dict.fromkeys(self.local_seats, default_action)
        self._stamped = -1
        self._stamped_at: dict[int, float] = {}
        self._acked = dict.fromkeys(self.remotes, -1)
        self._used: dict[int, dict[str, Any]] = {}
        self._results: dict[int, FrameResult] = {}
        self._ring: dict[int, Any] = {0: sim.snapshot()}
        self._ai_obs: dict[int, dict[str, Any]] = {0: self._observe()}
        self._live = 0
        self._stale: int | None = None
        self._rollback_from: int | None = None
        self._ai_digests: dict[int, dict[str, str | None]] = {}
        self._ai_requested = dict.fromkeys(self.ai_seats, -1)
        self._ai_blobs: dict[str, list[tuple[int, Any, Any]]] = {s: [] for s in self.ai_seats}
        self._ai_restore: dict[str, dict[str, Any]] = {}
        self._requests: list[AIRequest] = []
        self._chain = digest(["mug-rollback", self.seats])
        self._chains: dict[int, str] = {}
        self._hashes: dict[int, str] = {}
        self._remote_hashes: dict[str, dict[int, str]] = {r: {} for r in self.remotes}
        self._open_desyncs: dict[str, dict[str, Any]] = {}
        self._transfers_sent = dict.fromkeys(self.remotes, 0)
        self.max_transfers = max_transfers
        self._attempts = dict.fromkeys(self.remotes, 0)  # transfers since the peer was last long in sync
        self._resolved_at: dict[str, int] = {}  # the frame each peer's last desync resolved at
        self._next_transfer = dict.fromkeys(self.remotes, -1)  # no transfer before our confirmed frame reaches it
        self._unrepairable: set[str] = set()
        self._gone: set[str] = set()  # lost peers (lose_peer): nothing of theirs is taken
        self._handovers: dict[str, dict[str, dict[int, Any]]] = {}  # lost peer -> announcer -> {start: inputs}
        self._ai_from = dict.fromkeys(self.ai_seats, 0)  # AI seat -> its first frame as one (lose_peer: F)
        self._state_wanted: set[str] = set()  # peers that asked for the state (answered in the next advance)
        self._matched: dict[str, int] = {}  # the last hashed frame whose chain matched each peer's
        self._agreed_episode = -1
        self._episode_now = 0  # the episode of the last confirmed frame
        self._valid_action = getattr(sim, "valid_action", None)
        self._resim_mark = 0.0
        self._episode_reports: dict[int, dict[str, int]] = {}
        self._episode_counts = self.stats.counts()  # at the last confirmed episode end
        self._episode_stats: dict[int, dict[str, Any]] = {}
        self._records: list[FrameRecord] = []
        self._events: list[dict[str, Any]] = []
        self._outbox: list[Outgoing] = []
        self._per_remote = (self._acked, self._remote_hashes, self._open_desyncs, self._transfers_sent, self._attempts)
        self._per_remote += (self._resolved_at, self._next_transfer, self._matched)
        self.sync = TimeSync(self.remotes)
        self._epoch = 0  # the sender's count of the state transfer we last applied (in our hash messages)
        self._state_source: str | None = None  # the peer asked for a state (request_state)
        self._start: float | None = None  # the host time of frame 0 (once every peer was heard from)
        self._heard: set[str] = set() if start_barrier else set(self.remotes)  # remotes an input message came from
        self._lost = 0
        self._now = 0.0

    # -- the host's calls ---------------------------------------------------------------

    def add_local_input(self, seat: str, action: Any) -> None:
        """``seat``'s current action (held until changed); stamped into the next frame produced, plus the delay."""
        if seat not in self._held:
            raise ValueError(f"add_local_input: {seat!r} is not a local seat of peer {self.peer_id!r} ({self.local_seats})")
        if not self._valid(seat, action):
            raise ValueError(f"add_local_input: action {action!r} is not in seat {seat!r}'s action space")
        self._held[seat] = action

    def advance(self, now_s: float) -> list[Outgoing]:
        """Produce the frames due at ``now_s`` (host clock, seconds); the messages to send."""
        self._now = now_s
        tick = self.stats.resim_seconds - self._resim_mark
        self.stats.resim_tick_max_seconds = max(self.stats.resim_tick_max_seconds, tick)
        self._resim_mark = self.stats.resim_seconds
        if self._start is None:
            if any(r not in self._heard for r in self.remotes):  # the start barrier (module docstring)
                for remote in self.remotes:
                    self._outbox.append((remote, "input", self._input_message(remote)))
                out, self._outbox = self._outbox, []
                return out
            self._start = now_s
        self._confirm()
        due = int((now_s - self._start) * self.fps + 1e-6) + 1 - self._lost  # a tick's float time may fall short
        produced = 0
        while self.frame < due and produced < 2:
            if self.frame - 1 - self.confirmed >= self.max_prediction:
                self.stats.stalls += 1  # the frame's time is lost (below), not made up later in a burst
                break
            if self.remotes and self.sync.should_hold():
                self.stats.held += 1
                self._lost += 1
                due -= 1
                continue
            self._produce()
            produced += 1
        if self.frame < due:  # stalled, or a late tick: the backlog is dropped, not rushed through
            self._lost += due - self.frame
        self._ensure(self.frame)
        self._confirm()
        for remote in sorted(self._state_wanted):
            self._send_state(remote, rejoin=True)
        self._state_wanted.clear()
        for remote in self.remotes:
            self._outbox.append((remote, "input", self._input_message(remote)))
        out, self._outbox = self._outbox, []
        return out

    def receive(self, from_peer: str, message: Any) -> None:
        """A message from another peer; malformed or unexpected ones are counted (``stats.bad_messages``) and dropped."""
        if from_peer in self._gone:
            return  # a lost peer's packets still in flight
        try:
            kind = message["t"]
            if from_peer not in self.remotes or message.get("from") != from_peer:
                raise ValueError("unknown sender")
            if kind == "input":
                self._receive_inputs(from_peer, message)
            elif kind == "hash":
                frame = integer(message, "frame", 0)
                self._receive_hash(from_peer, frame, text(message, "hash"), integer(message, "epoch", 0))
            elif kind == "episode":
                self._receive_episode(from_peer, integer(message, "episode", 0), integer(message, "frame", 0))
            elif kind == "state" and from_peer in (self.designated, self._state_source):
                self._apply_state(message)
            elif kind == "state_request":
                self._receive_state_request(from_peer, message)
            elif kind == "rejoin":
                self._receive_rejoin(from_peer, message)
            elif kind == "handover":
                self._receive_handover(from_peer, message)
            else:
                raise ValueError(f"unexpected message {kind!r}")
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError, IndexError):
            self.stats.bad_messages += 1

    def ai_requests(self) -> list[AIRequest]:
        """AI turns that are due (each handed out once, in frame order per seat); answer with :meth:`provide_ai`."""
        self._confirm()
        out, self._requests = self._requests, []
        return out

    def provide_ai(
        self,
        seat: str,
        frame: int,
        action: Any,
        state_digest: str | None = None,
        state: Any = None,
        *,
        epoch: int | None = None,
    ) -> bool:
        """The AI seat's action for ``frame`` (of an :class:`AIRequest`), the digest of its hidden state after
        acting, and that state as plain data (sent to a peer that needs a state transfer).

        ``state`` and ``epoch`` (the request's) are required (``ValueError`` without them; their defaults
        remain for the signature only): without the state a repaired peer's AI would diverge again, and
        without the epoch a late answer to a request made before a state transfer would be taken. An answer
        of another epoch is dropped (``False``; an asynchronous runtime may answer late). ``ValueError`` if
        there is no such request or the action is not in the seat's action space."""
        if epoch is None and seat in self._ai_requested:
            raise ValueError(f"provide_ai: pass epoch= (the AIRequest's epoch) with the answer for seat {seat!r}")
        if epoch is not None and epoch != self.stats.resyncs:
            return False
        if seat not in self._ai_requested or frame != self._upto[seat] + 1 or frame > self._ai_requested[seat]:
            raise ValueError(f"provide_ai: no open request for seat {seat!r} frame {frame}")
        if state is None:
            raise ValueError(f"provide_ai: pass state= (seat {seat!r}'s hidden state as plain data): state transfers need it")
        if not self._valid(seat, action):
            raise ValueError(f"provide_ai: action {action!r} is not in seat {seat!r}'s action space")
        self._inputs.setdefault(frame, {})[seat] = action
        self._ai_digests.setdefault(frame, {})[seat] = state_digest
        self._upto[seat], self._last_known[seat] = frame, action
        self._ai_blobs[seat].append((frame, action, state))
        self._check_prediction(seat, frame, action)
        return True

    def take_records(self) -> list[FrameRecord]:
        """Confirmed frame records since the last call, in frame order."""
        out, self._records = self._records, []
        return out

    def take_events(self) -> list[dict[str, Any]]:
        """Events since the last call: ``desync``, ``desync_resolved``, ``resync``, ``unrepairable``,
        ``episode_end`` (with this peer's ``stats`` over the episode: frames, stalls, held, rollbacks, depths,
        ... up to its confirmed end), ``seat_ai`` (``seat``, ``peer``, ``frame``: a lost peer's seat is an AI
        seat from that frame on, :meth:`lose_peer`).

        ``resync``: ``frame`` (records from it on are dropped and confirmed again), ``first_bad_frame`` (this
        peer's records from it up to ``frame - 1`` may differ from the sender's: past the last frame whose hash
        matched the sender's), ``from``, ``local_hash``, ``remote_hash``. ``unrepairable`` (on the designated
        peer): ``peer``, ``frame``, ``transfers``: the peer's desync did not resolve after ``max_transfers``
        state transfers; no more are sent to it."""
        out, self._events = self._events, []
        return out

    @property
    def unresolved_desyncs(self) -> int:
        """Peers whose hashes differ from ours, with no matching hash since."""
        return len(self._open_desyncs)

    def memory(self) -> dict[str, int]:
        """How much the peer holds: snapshots, frames of inputs, frames of per-frame bookkeeping, hashes (own
        and received), chain values, AI states kept, episode reports and statistics, read times of inputs."""
        return {
            "snapshots": len(self._ring),
            "inputs": len(self._inputs),
            "frames": max(len(self._used), len(self._results), len(self._ai_obs)),
            "hashes": len(self._hashes) + sum(len(h) for h in self._remote_hashes.values()),
            "chains": len(self._chains),
            "ai_blobs": sum(len(b) for b in self._ai_blobs.values()),
            "episodes": len(self._episode_reports) + len(self._episode_stats),
            "stamped_at": len(self._stamped_at),
        }

    def _valid(self, seat: str, action: Any) -> bool:
        return self._valid_action is None or bool(self._valid_action(seat, action))

    def _server_for(self, peer: str) -> str:
        """The peer that sends ``peer`` the state it asks for: the designated peer, else the next one."""
        return self.designated if peer != self.designated else next(p for p in self.peers if p != self.designated)

    # -- frames -------------------------------------------------------------------------

    def _observe(self) -> dict[str, Any]:
        return {s: self.sim.observation(s) for s in self.ai_seats}

    def _input_for(self, seat: str, frame: int) -> Any:
        known = self._inputs.get(frame)
        if known is not None and seat in known:
            return known[seat]
        return self._last_known[seat]

    def _step(self, frame: int) -> None:
        used = {s: self._input_for(s, frame) for s in self.seats}
        result = self.sim.step(used)
        self._used[frame], self._results[frame] = used, result
        self._ring[frame + 1] = self.sim.snapshot()
        if self.ai_seats:
            self._ai_obs[frame + 1] = self._observe()
        self._live = frame + 1

    def _produce(self) -> None:
        """Step the present frame for the first time (after stamping local inputs up to it plus the delay)."""
        self._ensure(self.frame)
        f = self.frame
        for g in range(self._stamped + 1, f + self.input_delay + 1):
            for seat in self.local_seats:
                self._inputs.setdefault(g, {})[seat] = self._held[seat]
                self._upto[seat], self._last_known[seat] = g, self._held[seat]
            self._stamped_at[g] = self._now
        self._stamped = max(self._stamped, f + self.input_delay)
        started = self.timer()
        self._step(f)
        self.stats.step_seconds += self.timer() - started
        self.frame = f + 1
        self.stats.frames += 1
        self.display = self._results[f]
        read = self._stamped_at.pop(f, None)
        if read is not None and self.local_seats:
            ms = round((self._now - read) * 1000)
            self.stats.latency_ms[ms] = self.stats.latency_ms.get(ms, 0) + 1

    def _ensure(self, limit: int) -> None:
        """Re-simulate stale frames below ``limit`` (``limit <= frame``) so that ``S_limit`` is exact for what is known."""
        if self._stale is None or self._stale >= limit:
            return
        start = self._stale
        started = self.timer()
        if self._live != start:
            self.sim.restore(self._ring[start])
        for f in range(start, limit):
            self._step(f)
        self.stats.resim_seconds += self.timer() - started
        self.stats.resim_frames += limit - start
        self._stale = limit if limit < self.frame else None
        if self._stale is None:
            self.display = self._results[self.frame - 1] if self.frame else None
            if self._rollback_from != -1:  # -1: re-stepping after a state transfer (a resync, not a correction)
                self.stats.rolled_back(self.frame - (self._rollback_from if self._rollback_from is not None else start))
            self._rollback_from = None

    def _check_prediction(self, seat: str, frame: int, actual: Any) -> None:
        """A newly known input of an already stepped frame: mark a rollback if it differs from what was used."""
        if frame >= self.frame or (self._stale is not None and self._stale <= frame):
            return
        if self._results[frame].kind != "step" or self._used[frame][seat] == actual:
            return  # a reset step ignores its inputs
        self.stats.mispredictions += 1
        self._stale = frame
        self._rollback_from = frame if self._rollback_from is None else min(self._rollback_from, frame)

    def _confirm(self) -> None:
        """Extend the confirmed frame as far as inputs allow; request AI turns on newly confirmed states.

        The state before frame ``K + 1`` is confirmed as soon as ``K`` is, also when it is the present
        (not stepped yet): its AI turns are requested then, so that a quick answer is used before any prediction.
        A reloaded page confirms nothing until the state comes (:meth:`request_state`)."""
        while self._state_source is None:
            f = self.confirmed + 1
            if f > self.frame:
                break
            waiting = False
            for seat in self.ai_seats:
                if self._upto[seat] >= f:
                    continue
                self._ensure(f)
                observation = self._ai_obs[f][seat]
                if observation is None:  # the state ended its episode: a reset step, no AI turn
                    self._inputs.setdefault(f, {})[seat] = None
                    self._ai_digests.setdefault(f, {})[seat] = None
                    self._upto[seat] = f
                    continue
                if self._ai_requested[seat] < f:
                    episode = self._results[f - 1].episode if f else 0
                    self._requests.append(
                        AIRequest(seat, f, episode, observation, self._ai_restore.pop(seat, None), self.stats.resyncs)
                    )
                    self._ai_requested[seat] = f
                    self.stats.ai_requests += 1
                waiting = True
            if waiting or f == self.frame or any(self._upto[s] < f for s in self.humans):
                break
            self._ensure(f + 1)
            self._record(f)
        self._prune()

    def _record(self, f: int) -> None:
        inputs = {s: self._inputs[f][s] for s in self.seats}
        ai = {s: self._ai_digests.get(f, {}).get(s) for s in self.ai_seats if self._ai_from[s] <= f}
        result = self._results[f]
        hashed = f % self.hash_interval == 0
        state_hash = self.sim.state_hash(self._ring[f + 1]) if hashed else None
        self._chain = digest([self._chain, f, inputs, ai, result.to_dict(), state_hash])
        self._chains[f] = self._chain
        self._records.append(FrameRecord(f, inputs, ai, result, state_hash, self._chain))
        self.confirmed = f
        if hashed:
            self._hashes[f] = self._chain
            epoch = self._epoch
            self._outbox.append(
                (None, "control", {"t": "hash", "from": self.peer_id, "frame": f, "hash": self._chain, "epoch": epoch})
            )
            for remote in self.remotes:
                theirs = self._remote_hashes[remote].pop(f, None)
                if theirs is not None:
                    self._compare(remote, f, theirs)
        self._episode_now = result.episode
        if result.ended:
            self._announce_episode(result.episode, f)

    def _prune(self) -> None:
        k = self.confirmed
        for table, keep in ((self._ring, k + 1), (self._ai_obs, k + 1), (self._used, k + 1), (self._results, k)):
            for f in [f for f in table if f < keep]:
                del table[f]
        for table in (self._inputs, self._ai_digests, self._chains):
            for f in [f for f in table if f < k - self.log_frames]:
                del table[f]
        while len(self._hashes) > self.hash_keep:
            del self._hashes[min(self._hashes)]
        for hashes in self._remote_hashes.values():
            for f in [f for f in hashes if f <= k]:
                del hashes[f]
        for blobs in self._ai_blobs.values():
            older = [i for i, (f, _, _) in enumerate(blobs) if f <= k]
            if len(older) > 1:
                del blobs[: older[-1]]
