"""Hash comparison, desync events, state transfer and episode agreement of a :class:`~mug.netcode.RollbackPeer`.

A mixin of ``RollbackPeer`` (its state lives there); the rules are in :mod:`mug.netcode.peer`'s docstring.
"""

from __future__ import annotations

from typing import Any

from mug.netcode.simulation import FrameResult

__all__ = ["Resync"]


class Resync:
    """The peer's hash, desync, state-transfer and episode-agreement handling (works on ``RollbackPeer``'s state)."""

    def _receive_hash(self, remote: str, frame: int, value: str, epoch: int) -> None:
        if self.peer_id == self.designated and epoch < self._transfers_sent[remote]:
            return  # computed before our state transfer reached it
        mine = self._hashes.get(frame)
        if mine is not None:
            self._compare(remote, frame, value)
        elif frame > self.confirmed:
            self._remote_hashes[remote][frame] = value

    def _compare(self, remote: str, frame: int, value: str) -> None:
        mine = self._hashes[frame]
        open_event = self._open_desyncs.get(remote)
        if mine == value:
            if open_event is not None and frame > open_event["frame"]:
                del self._open_desyncs[remote]
                self._events.append({"type": "desync_resolved", "peer": remote, "frame": frame, "since": open_event["frame"]})
            return
        if open_event is None:
            event = {"type": "desync", "peer": remote, "frame": frame, "local_hash": mine, "remote_hash": value}
            self._open_desyncs[remote] = event
            self._events.append(dict(event))
            self.stats.desyncs += 1
        if self.peer_id == self.designated:
            self._send_state(remote)

    def _send_state(self, remote: str) -> None:
        k = self.confirmed
        ai = {}
        for seat, blobs in self._ai_blobs.items():
            before = [blob for f, _, blob in blobs if f <= k]
            ai[seat] = {"state": before[-1] if before else None}
        self._transfers_sent[remote] += 1
        theirs = [s for s in self.humans if self.owners[s] == remote]
        message = {
            "t": "state",
            "from": self.peer_id,
            "epoch": self._transfers_sent[remote],
            "frame": k + 1,
            "sim": self._ring[k + 1],
            "chain": self._chain,
            "inputs": {s: self._inputs[k][s] for s in self.seats} if k >= 0 else None,
            "last": dict(self._last_seen_ai(k)),
            "result": self._results[k].to_dict() if k >= 0 else None,
            "ai": ai,
            "yours": {s: [self._inputs[f][s] for f in range(k + 1, self._upto[s] + 1)] for s in theirs},
        }
        self._outbox.append((remote, "control", message))

    def _last_seen_ai(self, k: int) -> dict[str, Any]:
        out = {}
        for seat, blobs in self._ai_blobs.items():
            before = [action for f, action, _ in blobs if f <= k]
            out[seat] = before[-1] if before else self.default_action
        return out

    def _apply_state(self, message: dict[str, Any]) -> None:
        c = int(message["frame"])
        known, result = message["inputs"], message["result"]
        if c < 0 or (c > 0 and (not isinstance(known, dict) or set(known) != set(self.seats) or not isinstance(result, dict))):
            raise ValueError("state transfer without the inputs and result of the frame before it")
        ai, last = message["ai"], message["last"]
        if any(not isinstance(ai.get(s), dict) or "state" not in ai[s] or s not in last for s in self.ai_seats):
            raise ValueError("state transfer without every AI seat's state")
        if not {"chain", "sim", "from"} <= set(message):
            raise ValueError("incomplete state transfer")
        yours, epoch = message["yours"], int(message["epoch"])
        if set(yours) != set(self.local_seats) or not all(isinstance(v, list) for v in yours.values()):
            raise ValueError("state transfer without what the sender holds of our inputs")
        self.sim.restore(message["sim"])
        self.stats.resyncs += 1
        self._epoch, self._state_source = epoch, None
        old = self._chains.get(c - 1)
        self._events.append(
            {"type": "resync", "frame": c, "from": message["from"], "local_hash": old, "remote_hash": message["chain"]}
        )
        self._records = [r for r in self._records if r.frame < c]
        self._ring = {c: self.sim.snapshot()}
        self._ai_obs = {c: self._observe()} if self.ai_seats else {}
        self._live = c
        self._used = {}
        self._results = {c - 1: FrameResult(**message["result"])} if message["result"] is not None else {}
        self._chain, self.confirmed = str(message["chain"]), c - 1
        self._chains = {f: h for f, h in self._chains.items() if f < c - 1} | {c - 1: self._chain}
        self._hashes = {f: h for f, h in self._hashes.items() if f < c}
        if message["inputs"] is not None:
            self._inputs.setdefault(c - 1, {}).update(message["inputs"])
        for seat in self.humans:
            if self._upto[seat] < c - 1:
                self._upto[seat], self._last_known[seat] = c - 1, message["inputs"][seat]
        for seat in self.ai_seats:
            for f in [f for f, known in self._inputs.items() if f >= c and seat in known]:
                del self._inputs[f][seat]
            self._upto[seat] = self._ai_requested[seat] = c - 1
            self._last_known[seat] = message["last"][seat]
            self._ai_blobs[seat] = []
            self._ai_restore[seat] = {"state": message["ai"][seat]["state"]}
        self._requests = []
        for seat, actions in yours.items():  # what the others hold of our inputs is what was played
            for offset, action in enumerate(actions):
                self._inputs.setdefault(c + offset, {})[seat] = action
            self._upto[seat] = max(self._upto[seat], c - 1 + len(actions))
            self._stamped = max(self._stamped, c - 1 + len(actions))
        self._stamped = max(self._stamped, c - 1)
        self._stamped_at = {f: t for f, t in self._stamped_at.items() if f >= c}
        for seat in self.humans:
            while seat in self._inputs.get(self._upto[seat] + 1, {}):
                self._upto[seat] += 1
                self._last_known[seat] = self._inputs[self._upto[seat]][seat]
        if self.frame <= c:  # the clock moves on with the jump (no burst of frames to catch up)
            self._lost -= c - self.frame
            self.frame, self._stale, self._rollback_from = c, None, None
        else:
            self._stale, self._rollback_from = c, c

    def _report_episode(self, peer: str, episode: int, frame: int) -> None:
        reports = self._episode_reports.setdefault(episode, {})
        if reports.get(peer) == frame:
            return
        reports[peer] = frame
        if len(reports) == len(self.peers) and len(set(reports.values())) == 1:
            stats = self._episode_stats.pop(episode, None)
            self._events.append({"type": "episode_end", "episode": episode, "frame": frame, "stats": stats})
            self._episode_reports = {e: r for e, r in self._episode_reports.items() if e > episode}
