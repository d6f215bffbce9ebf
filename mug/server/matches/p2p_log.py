"""``ConfirmedLog``: the server's record of a peer-to-peer match, built from the frames its peers confirmed.

Every peer uploads its confirmed :class:`~mug.netcode.FrameRecord` s (``p2p_frames``),
in frame order. The log:

* **stores each frame once**, from the *reference* peer (the owner of the match's
  first human seat, the netcode's designated peer): a ``kind == "step"`` record becomes
  a step row under the match id (``actions`` = every seat's input, ``sources`` =
  ``human:<participant_id>`` or ``policy``, rewards, flags and ``obs_hash`` from its
  ``result``, plus ``frame``, ``chain`` and ``ai_digests``); ``reset`` and ``over``
  frames are not steps;
* **cross-checks** every other peer's record of a frame by its ``chain`` (the hash of
  every record up to it): a difference is a ``p2p_mismatch`` event ``{match_id, frame,
  peer, chain, reference_chain}``, once per peer until the two agree again;
* **checks** each record before taking it: frames contiguous per peer (a frame at or
  below what the peer already delivered, or below the acknowledged frame, is a resend
  and skipped), the record's shape and value types, human inputs in their seats' action
  spaces, step numbers going up by one within an episode, and no more frames than the
  scene's ``fps`` allows since the match started (with :data:`RATE_MARGIN` and
  :data:`RATE_SLACK`). The first bad record and everything after it in the message are
  refused (:meth:`add_frames` returns why);
* **acknowledges**: :attr:`acked` is the highest frame ``a`` such that the reference's
  records up to ``a`` are stored and every present peer delivered its records up to ``a``
  (the same value for every member; sent once the store has committed). A peer lagging
  more than :data:`MAX_UNCHECKED` frames behind the stored ones does not hold it back further
  (its records of older frames could not be compared any more), so no page keeps more than
  that many records because of another;
* **follows resyncs** (:meth:`resync`): a peer restarted from a state transfer sends its
  frames from that state's frame on, again or, after a reload, for the first time;
* **verifies** each finished episode (its stored steps, re-simulated by
  :mod:`mug.server.verify` under the session id = match id);
* **follows a seat handed to the AI** (:meth:`hand_over`, ``on_partner_loss="ai"``): the lost
  peer is no longer compared or waited for; if it was the reference, the next remaining
  peer becomes the reference and its records beyond the stored frames are stored. The
  peers' records carry the seat's AI digest from the agreed frame ``F`` on (the netcode's
  ``seat_ai``): those steps have ``sources[seat] = "policy"``, the earlier ones ``human:<pid>``.

A reference that reloads: its new page restarts from a state transfer; frames its old page
confirmed but never delivered are stored from another peer's records of them (every peer
confirmed the same frames; the reference's new records wait for them up to
:data:`SKIP_WAIT_S`, or until :meth:`close`), so the record has no gap when any other peer
delivered them.
The scene a reopened tab gets carries its seat's last stored inputs (:meth:`stored_inputs`):
the new page sends them with its state request, so frames the old page confirmed and the
log stored are confirmed again with the same inputs.

Memory is bounded: the reference's chains are kept for the last :data:`MAX_UNCHECKED`
stored frames (their inputs for the last :data:`KEPT_INPUTS`), and each other peer's
records beyond the stored frames (waiting for the reference's) for at most
:data:`MAX_UNCHECKED` frames. Beyond that cap the oldest of a
peer's waiting frames are dropped without comparison, and a record older than the kept
chains cannot be compared either; both are counted per peer (:attr:`unchecked`) and
reported in each episode's ``p2p_episode`` event. Only the running episode's steps are
kept (for its verification), as for browser-side sessions.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from mug.browser.scene import PortableSpace
from mug.server.browser_sessions import VERIFIED_FIELDS

__all__ = ["ConfirmedLog", "KEPT_INPUTS", "MAX_UNCHECKED", "RATE_MARGIN", "RATE_SLACK"]

#: Frames of comparison state kept per peer (and of the reference's chains): 2 minutes at 30 fps.
MAX_UNCHECKED = 3600
#: Frames of stored inputs kept for a reloading page (:meth:`ConfirmedLog.stored_inputs`).
KEPT_INPUTS = 256
#: How long (in the scene's frames: seconds times fps) the reference's records wait for other peers' records of
#: frames it skipped before those are recorded as a gap.
SKIP_WAIT_S = 10.0
#: How much faster than ``fps`` a peer may deliver frames (it catches up after a stall or a reconnect).
RATE_MARGIN = 1.5
#: Frames a peer may deliver beyond its real-time budget (start-up, clock skew).
RATE_SLACK = 300
_KINDS = ("step", "reset", "over")
_NUMBERS, _BOOLS = frozenset({int, float}), frozenset({bool})


class ConfirmedLog:
    """The confirmed record of one peer-to-peer match (see module docstring).

    Args:
        spec: the scene's browser spec (action spaces, agents, episodes).
        peers: peer id (= seat) -> participant id, in the scene's seat order; the first is the reference.
        ai_seats: seats played by an AI policy on every peer.
        fps: the scene's frame rate.
        store_step: stores one step row (the row's data).
        event: records one event of the match (kind, data).
        verify: verifies one finished episode (episode, its steps as ``mug.server.verify`` takes them).
        clock: seconds, monotonic (tests may pass their own).
    """

    def __init__(
        self,
        spec: Mapping[str, Any],
        peers: Mapping[str, str],
        ai_seats: Iterable[str],
        fps: float,
        *,
        store_step: Callable[[dict[str, Any]], None],
        event: Callable[[str, dict[str, Any]], None],
        verify: Callable[[int, list[dict[str, Any]]], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.peers = dict(peers)
        self.reference = next(iter(self.peers))
        self.ai_seats = [str(s) for s in ai_seats]
        self.seats = set(self.peers) | set(self.ai_seats)
        self.agents = frozenset(spec["agents"])
        self.spaces = {a: PortableSpace(d) for a, d in spec["action_spaces"].items()}
        self.num_episodes = spec["gameplay"]["num_episodes"]
        self.fps, self.clock = fps, clock
        self._store_step, self._event, self._verify = store_step, event, verify
        self.started = clock()
        #: Per peer, the last frame of the contiguous records it delivered (-1: none).
        self.received = dict.fromkeys(self.peers, -1)
        #: The last frame stored from the reference (-1: none).
        self.stored = -1
        #: The frame every member was last told is committed (``p2p_ack``).
        self.acked = -1
        #: Per peer, frames that could not be compared (see module docstring).
        self.unchecked = dict.fromkeys(self.peers, 0)
        self._chains: OrderedDict[int, str] = OrderedDict()  # the reference's, frame -> chain
        self._inputs: deque[tuple[int, dict[str, Any]]] = deque(maxlen=KEPT_INPUTS)  # stored frames' inputs
        # each other peer's records beyond the stored frames, frame -> record
        self._waiting: dict[str, OrderedDict[int, dict[str, Any]]] = {p: OrderedDict() for p in self.peers if p != self.reference}
        self._mismatched: set[str] = set()
        self._last: tuple[int, int] | None = None  # (episode, step) of the last stored step
        self._episode_steps: list[dict[str, Any]] = []
        self._verified: set[int] = set()
        self._gap = False
        self._held: set[str] = set()  # peers restarting (see restarting)
        self._skipped: int | None = None  # the last frame the restarted reference skipped (see _fill_skipped)
        self._after_skip: list[dict[str, Any]] = []  # the reference's records after the skipped frames
        #: Human seats handed to the AI (:meth:`hand_over`).
        self.handed: set[str] = set()

    @property
    def last_step(self) -> tuple[int, int] | None:
        """``(episode, step)`` of the last stored step (``None``: none yet)."""
        return self._last

    # -- frames -------------------------------------------------------------------------

    def add_frames(self, peer: str, records: list[dict[str, Any]]) -> str | None:
        """Take ``peer``'s records (``FrameRecord.to_dict()`` s in frame order); why the first bad one was refused
        (``None``: all taken or skipped as resends). What came before a bad record is taken; a seat handed to the AI
        (:meth:`hand_over`) delivers nothing any more."""
        if peer in self.handed:
            return None
        problem = self._take(peer, records)
        self._fill_skipped()  # another peer's records may hold frames the reference skipped
        return problem

    def _take(self, peer: str, records: list[dict[str, Any]]) -> str | None:
        self._release(peer)
        if self.acked > self.received[peer]:  # frames acknowledged without this peer's (it lagged, or was away)
            self.unchecked[peer] += self.acked - self.received[peer]
            self.received[peer] = self.acked
        for r in records:
            frame = r.get("frame")
            if type(frame) is not int or frame < 0:
                return f"record frame {str(frame)[:40]!r}: expected a frame number (integer >= 0)"
            floor = self.received[peer]
            if frame <= floor:
                continue  # a resend, or a frame every member was told is committed
            if frame != floor + 1:
                return f"frame {frame} does not follow frame {floor} (frames come in order, none left out)"
            problem = self._check(r)
            if problem is None and frame + 1 > self._budget():
                problem = f"{frame + 1} frames delivered faster than the scene's {self.fps:g} fps allows"
            skipping = peer == self.reference and self._skipped is not None  # see resync
            if problem is None and peer == self.reference and frame > self.stored and not skipping:
                problem = self._continues(r["result"])
            if problem is not None:
                return f"frame {frame}: {problem}"
            self.received[peer] = frame
            if skipping:
                self._after_skip.append(r)
            elif peer == self.reference and frame > self.stored:
                self._store(r)
            elif frame <= self.stored:
                self._compare(peer, frame, r["chain"])
            else:
                self._wait(peer, frame, r)
        return None

    def restarting(self, peer: str) -> None:
        """``peer``'s tab (re)opened mid-match. A reloaded page's new game restarts from a state transfer at a
        frame ``c`` that may lie below the last frames its old page confirmed (their inputs never reached the
        peer that sent the state): those old records are superseded, not wrong. So the peer's records waiting
        for the reference's are not compared until its next message says which stand: a :meth:`resync` drops
        those from its frame on, new :meth:`add_frames` (a page that kept its game resends) end the hold."""
        self._held.add(peer)

    def _release(self, peer: str) -> None:
        """End a :meth:`restarting` hold: compare what waits that the reference has stored meanwhile."""
        if peer not in self._held:
            return
        self._held.discard(peer)
        waiting = self._waiting.get(peer)
        for f in [f for f in waiting or () if f <= self.stored]:
            self._compare(peer, f, waiting.pop(f)["chain"])  # type: ignore[union-attr]

    def resync(self, peer: str, frame: int) -> str | None:
        """``peer`` restarted from a state transfer at ``frame``: its records from there on come (again); why
        not (``None``: taken).

        A peer that restarted ahead of what it delivered (a reloaded page: its unsent records are gone) goes on
        from ``frame``; the frames in between are not compared (:attr:`unchecked`), and if the peer is the
        reference, those not stored yet are stored from another peer's records of them (see
        :meth:`_fill_skipped`; else a ``p2p_gap``). A frame beyond what the scene's fps allows since the
        match started is refused."""
        if frame > self._budget():
            return f"resync at frame {frame}: further than the scene's {self.fps:g} fps allows"
        last = max(self.received[peer], self.acked)
        if frame - 1 <= last:
            self.received[peer] = min(self.received[peer], frame - 1)
            waiting = self._waiting.get(peer)
            if waiting is not None:
                for f in [f for f in waiting if f >= frame]:
                    del waiting[f]
            self._release(peer)
            return None
        self._release(peer)
        self.unchecked[peer] += frame - 1 - last
        self.received[peer] = frame - 1
        if peer == self.reference and frame - 1 > self.stored:
            self._skipped = frame - 1
            self._fill_skipped()
        return None

    def close(self) -> None:
        """The match ended: frames the reference skipped that no other peer delivered are a gap (see
        :meth:`resync`), and the reference's records after them are stored."""
        self._fill_skipped(give_up=True)

    def _fill_skipped(self, give_up: bool = False) -> None:
        """Store the frames the reference skipped (up to ``_skipped``: its new page restarted past frames its
        old page confirmed but never delivered) from the other peers' records of them (every peer confirmed
        the same frames), then the reference's records that came meanwhile. While no other peer delivered
        them, the reference's records wait, for :data:`SKIP_WAIT_S` of frames at most (or until
        :meth:`close`); then the missing frames are a ``p2p_gap`` event ``{peer, first, last}``, and the
        episode they belong to is not verified."""
        if self._skipped is None:
            return
        while self.stored < self._skipped:
            frame = self.stored + 1
            record = next((w[frame] for p, w in self._waiting.items() if frame in w and p not in self._held), None)
            if record is None or self._continues(record["result"]) is not None:
                break
            self._store(record)
        if self.stored < self._skipped:
            if not give_up and len(self._after_skip) < self.fps * SKIP_WAIT_S:
                return
            self._event("p2p_gap", {"peer": self.reference, "first": self.stored + 1, "last": self._skipped})
            self.stored, self._gap, self._episode_steps = self._skipped, True, []
            for other, waiting in self._waiting.items():
                for f in [f for f in waiting if f <= self._skipped]:
                    del waiting[f]
                    self.unchecked[other] += 1
        self._skipped = None
        waiting, self._after_skip = self._after_skip, []
        for r in waiting:
            problem = self._continues(r["result"])
            if problem is not None:
                self.received[self.reference] = r["frame"] - 1  # what follows is refused as out of order
                self._event("bad_p2p_frames", {"peer": self.reference, "problem": f"frame {r['frame']}: {problem}"})
                return
            self._store(r)

    def hand_over(self, peer: str) -> None:
        """``peer``'s seat goes to the AI for good: stop comparing and waiting for it; a lost reference is
        replaced by the next remaining peer, whose records beyond the stored frames are stored now (frames a
        reloaded reference had skipped included: the new reference delivers every frame itself)."""
        if peer not in self.peers or peer in self.handed:
            raise ValueError(f"hand_over: {peer!r} is not a seat of this match still played by its member")
        self.handed.add(peer)
        self._waiting.pop(peer, None)
        self._held.discard(peer)
        remaining = [p for p in self.peers if p not in self.handed]
        if peer != self.reference or not remaining:
            return
        self.reference = remaining[0]
        self._skipped, self._after_skip = None, []  # the old reference's skip: the new one delivers those frames itself
        waiting = self._waiting.pop(self.reference)
        for frame in sorted(f for f in waiting if f > self.stored):
            record = waiting[frame]
            if frame != self.stored + 1 or self._continues(record["result"]) is not None:
                break  # what is not stored now is refused as out of order when the page sends it again
            self._store(record)
        self.received[self.reference] = self.stored

    def stored_inputs(self, seats: Iterable[str], frames: int) -> dict[str, Any] | None:
        """``{"start": f0, "inputs": {seat: [input of f0, ...]}}``: ``seats``' inputs in the last ``frames``
        (at most :data:`KEPT_INPUTS`) stored frames, for a page that reloads
        (:meth:`mug.netcode.RollbackPeer.request_state`); ``None`` before the first stored frame."""
        recent = list(self._inputs)[-frames:]
        if not recent:
            return None
        return {"start": recent[0][0], "inputs": {s: [inputs[s] for _, inputs in recent] for s in seats}}

    def _budget(self) -> float:
        """The most frames a peer may have delivered by now."""
        return (self.clock() - self.started) * self.fps * RATE_MARGIN + RATE_SLACK

    def ack(self, present: Iterable[str]) -> int | None:
        """The new acknowledged frame, if it went up (``present``: the peers still playing)."""
        delivered = [self.received[p] for p in present if p in self.received]
        value = min(self.stored, max(min(delivered, default=self.stored), self.stored - MAX_UNCHECKED))
        if value <= self.acked:
            return None
        self.acked = value
        return value

    # -- checks -------------------------------------------------------------------------

    def _check(self, r: dict[str, Any]) -> str | None:
        """Why record ``r`` is malformed (``None``: it is not)."""
        inputs, digests, result, chain = r.get("inputs"), r.get("ai_digests"), r.get("result"), r.get("chain")
        if type(chain) is not str or not 0 < len(chain) <= 64:
            return "chain must be the record's hash (text of 1..64 characters)"
        state_hash = r.get("state_hash")
        if state_hash is not None and (type(state_hash) is not str or len(state_hash) > 64):
            return "state_hash must be text of at most 64 characters or null"
        if type(inputs) is not dict or set(inputs) != self.seats:
            return f"inputs must hold one input per seat of {sorted(self.seats)}, got {str(inputs)[:80]}"
        if type(digests) is not dict or not set(digests) <= set(self.ai_seats) | self.handed:
            return f"ai_digests must map AI seats of {self.ai_seats + sorted(self.handed)} to digests, got {str(digests)[:80]}"
        if any(d is not None and (type(d) is not str or len(d) > 64) for d in digests.values()):
            return "ai_digests must be text of at most 64 characters or null"
        if type(result) is not dict or result.get("kind") not in _KINDS:
            return f"result must be a step result of kind {list(_KINDS)}, got {str(result)[:80]}"
        episode, step, obs_hash = result.get("episode"), result.get("step"), result.get("obs_hash")
        if type(episode) is not int or not 0 <= episode < self.num_episodes or type(step) is not int or step < 0:
            return f"result needs its episode (0..{self.num_episodes - 1}) and step (integer >= 0)"
        if type(obs_hash) is not str or len(obs_hash) != 16:
            return "result.obs_hash must be 16 hex digits"
        for name in ("rewards", "terminated", "truncated"):
            value = result.get(name)
            if type(value) is not dict or not value.keys() <= self.agents:
                return f"result.{name} must map agents of {sorted(self.agents)} to values, got {str(value)[:80]}"
        if not {type(v) for v in result["rewards"].values()} <= _NUMBERS:
            return "result.rewards must be numbers"
        if not {type(v) for v in result["terminated"].values()} | {type(v) for v in result["truncated"].values()} <= _BOOLS:
            return "result.terminated and result.truncated must be true or false"
        for seat, action in inputs.items():
            if action is None and seat in digests and result["kind"] != "step":
                continue  # an AI seat does not act on an ended episode's state
            if not self.spaces[seat].contains(action):
                return f"input {str(action)[:40]} of seat {seat!r} is not in its action space {self.spaces[seat]}"
        return None

    def _continues(self, result: dict[str, Any]) -> str | None:
        """Why the reference's next new frame does not follow the stored ones (``None``: it does)."""
        if result["kind"] != "step":
            return None
        episode, step = result["episode"], result["step"]
        if self._gap:  # the frames before are missing (see resync)
            self._gap = False
            return None
        if self._last is None:
            if step != 0:
                return f"the match's first step is step {step} of episode {episode}, not step 0"
            return None
        last_episode, last_step = self._last
        if (episode, step) != (last_episode, last_step + 1) and not (episode > last_episode and step == 0):
            return (
                f"step {step} of episode {episode} after step {last_step} of episode {last_episode} "
                "(steps go up by one within an episode; a new episode starts at step 0)"
            )
        return None

    # -- the record ---------------------------------------------------------------------

    def _store(self, r: dict[str, Any]) -> None:
        frame, result = r["frame"], r["result"]
        self.stored = frame
        self._chains[frame] = r["chain"]
        while len(self._chains) > MAX_UNCHECKED:
            self._chains.popitem(last=False)
        if self._inputs and self._inputs[-1][0] != frame - 1:
            self._inputs.clear()  # after a gap: only contiguous frames
        self._inputs.append((frame, dict(r["inputs"])))
        for peer, waiting in self._waiting.items():
            waited = None if peer in self._held else waiting.pop(frame, None)
            if waited is not None:
                self._compare(peer, frame, waited["chain"])
        episode = result["episode"]
        if self._episode_steps and (result["kind"] != "step" or episode != self._last[0]):  # type: ignore[index]
            self._finish_episode()  # an episode that ended without every agent done (e.g. no live agents left)
        if result["kind"] != "step":
            return
        row = {
            "frame": frame,
            "chain": r["chain"],
            "ai_digests": dict(r["ai_digests"]),
            "episode": episode,
            "step": result["step"],
            "decision": frame,
            "time": time.time(),
            "actions": dict(r["inputs"]),
            "sources": {
                s: "policy" if s in r["ai_digests"] or s not in self.peers else f"human:{self.peers[s]}" for s in r["inputs"]
            },
            "rewards": dict(result["rewards"]),
            "terminated": dict(result["terminated"]),
            "truncated": dict(result["truncated"]),
            "obs_hash": result["obs_hash"],
        }
        self._store_step(row)
        self._last = (episode, result["step"])
        self._episode_steps.append({"step": row["step"], **{k: row[k] for k in VERIFIED_FIELDS}})
        terminated, truncated = result["terminated"], result["truncated"]
        if terminated and all(terminated[a] or truncated.get(a, False) for a in terminated):
            self._finish_episode()

    def _finish_episode(self) -> None:
        steps, self._episode_steps = self._episode_steps, []
        episode = self._last[0]  # type: ignore[index]
        if episode not in self._verified and steps[0]["step"] == 0:
            self._verified.add(episode)
            self._verify(episode, steps)

    def _wait(self, peer: str, frame: int, record: dict[str, Any]) -> None:
        waiting = self._waiting[peer]
        waiting[frame] = record
        while len(waiting) > MAX_UNCHECKED:
            waiting.popitem(last=False)
            self.unchecked[peer] += 1

    def _compare(self, peer: str, frame: int, chain: str) -> None:
        reference = self._chains.get(frame)
        if reference is None:
            self.unchecked[peer] += 1
        elif reference == chain:
            self._mismatched.discard(peer)
        elif peer not in self._mismatched:
            self._mismatched.add(peer)
            self._event("p2p_mismatch", {"frame": frame, "peer": peer, "chain": chain, "reference_chain": reference})
