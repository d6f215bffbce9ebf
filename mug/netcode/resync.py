"""Hash comparison, desync events, state transfer, reloads and episode agreement of a :class:`~mug.netcode.RollbackPeer`.

A mixin of ``RollbackPeer`` (its state lives there, declared in :mod:`mug.netcode.state`); the rules are in :mod:`mug.netcode.peer`'s docstring.
"""

from __future__ import annotations

from typing import Any

from mug.netcode.simulation import FrameResult
from mug.netcode.state import PeerState
from mug.netcode.wire import action_lists, integer, text

__all__ = ["Resync"]


class Resync(PeerState):
    """The peer's hash, desync, state-transfer, reload and episode-agreement handling (on ``RollbackPeer``'s state)."""

    # -- hashes and desyncs -------------------------------------------------------------

    def _receive_hash(self, remote: str, frame: int, value: str, epoch: int) -> None:
        if frame > self._stamped:  # a peer confirms no frame of which we have not stamped our inputs
            if self._state_source is not None:
                return  # a reloaded page: the others are far ahead until the state comes
            raise ValueError(f"hash of frame {frame} beyond our inputs ({self._stamped})")
        if self.peer_id == self.designated and epoch < self._transfers_sent[remote]:
            return  # computed before our state transfer reached it
        if frame in self._hashes:
            self._compare(remote, frame, value)
        elif frame > self.confirmed:
            self._remote_hashes[remote][frame] = value

    def _compare(self, remote: str, frame: int, value: str) -> None:
        mine = self._hashes[frame]
        open_event = self._open_desyncs.get(remote)
        if mine == value:
            self._matched[remote] = max(self._matched.get(remote, -1), frame)
            if open_event is not None and frame > open_event["frame"]:
                del self._open_desyncs[remote]
                self._resolved_at[remote] = frame
                self._events.append({"type": "desync_resolved", "peer": remote, "frame": frame, "since": open_event["frame"]})
            return
        if open_event is None:
            if frame - self._resolved_at.get(remote, -(2**62)) > self.horizon * 2**self.max_transfers:
                self._attempts[remote] = 0  # in sync for long since the last repair: a new problem
            event = {"type": "desync", "peer": remote, "frame": frame, "local_hash": mine, "remote_hash": value}
            self._open_desyncs[remote] = event
            self._events.append(dict(event))
            self.stats.desyncs += 1
        if self.peer_id == self.designated:
            self._repair(remote, frame)

    def _repair(self, remote: str, frame: int) -> None:
        """A state transfer to a diverged peer, unless one is recent (the pause doubles with each) or the cap is hit."""
        if remote in self._unrepairable or self.confirmed < self._next_transfer[remote]:
            return
        if self._attempts[remote] >= self.max_transfers:
            self._unrepairable.add(remote)
            self._events.append({"type": "unrepairable", "peer": remote, "frame": frame, "transfers": self._attempts[remote]})
            return
        self._attempts[remote] += 1
        self._next_transfer[remote] = self.confirmed + self.horizon * 2 ** self._attempts[remote]
        self._send_state(remote)

    # -- state transfer -----------------------------------------------------------------

    def _ai_before(self, seat: str, k: int) -> tuple[Any, Any]:
        """The AI seat's last action and hidden state at or before frame ``k`` (default action, ``None``: none yet)."""
        before = [(action, blob) for f, action, blob in self._ai_blobs[seat] if f <= k]
        return before[-1] if before else (self.default_action, None)

    def _send_state(self, remote: str, *, rejoin: bool = False) -> None:
        """The confirmed state to ``remote``; on a reload (``rejoin``) also fix its seats' inputs up to ``R``."""
        k = self.confirmed
        self._transfers_sent[remote] += 1
        theirs = [s for s in self.humans if self.owners[s] == remote]
        end = {s: self._upto[s] + 1 for s in theirs}
        if rejoin:  # R: beyond any input the old page stamped (it needed ours to get there)
            end = dict.fromkeys(theirs, self.frame + self.horizon)
        yours = {s: [self._inputs.get(f, {}).get(s, self._last_known[s]) for f in range(k + 1, end[s])] for s in theirs}
        ours = sorted((e, r[self.peer_id]) for e, r in self._episode_reports.items() if r.get(self.peer_id, k + 1) <= k)
        episodes = {str(e): f for e, f in ours[-self.horizon :]}
        message = {
            "t": "state",
            "from": self.peer_id,
            "epoch": self._transfers_sent[remote],
            "frame": k + 1,
            "sim": self._ring[k + 1],
            "chain": self._chain,
            "inputs": {s: self._inputs[k][s] for s in self.seats} if k >= 0 else None,
            "last": {s: self._ai_before(s, k)[0] for s in self.ai_seats},
            "result": self._results[k].to_dict() if k >= 0 else None,
            "ai": {s: {"state": self._ai_before(s, k)[1]} for s in self.ai_seats},
            "yours": yours,
            "episodes": episodes,
            "agreed": self._agreed_episode,
        }
        self._outbox.append((remote, "control", message))
        if rejoin and theirs:
            start = k + 1
            while start - 1 >= max(0, k - self.log_frames) and all(s in self._inputs.get(start - 1, {}) for s in theirs):
                start -= 1
            held = {s: [self._inputs[f][s] for f in range(start, k + 1)] + yours[s] for s in theirs}
            self._fix_inputs(remote, k + 1, start, held)
            fixed = {"t": "rejoin", "from": self.peer_id, "peer": remote, "frame": k + 1, "start": start, "inputs": held}
            for other in self.remotes:
                if other != remote:
                    self._outbox.append((other, "control", fixed))

    def _fix_inputs(self, peer: str, c: int, start: int, inputs: dict[str, list[Any]]) -> None:
        """A rejoining peer's inputs: those before ``c`` fill gaps, those from ``c`` on replace what is held;
        the old page's hashes still held or open desyncs with it are dropped (they are not the new page's)."""
        self._remote_hashes.get(peer, {}).clear()  # (a lost peer's are gone already: Handover)
        self._open_desyncs.pop(peer, None)
        for seat, actions in inputs.items():
            for offset, action in enumerate(actions):
                f = start + offset
                if f < c and (f <= self.confirmed or seat in self._inputs.get(f, {})):
                    continue
                self._inputs.setdefault(f, {})[seat] = action  # also below our confirmed frame: a transfer replays it
                if f > self.confirmed:
                    self._check_prediction(seat, f, action)
            if self._upto[seat] >= start - 1:  # no gap before the fixed inputs
                self._upto[seat] = max(self._upto[seat], start + len(actions) - 1)
                self._last_known[seat] = self._inputs[self._upto[seat]][seat]
            self._advance_upto(seat)

    def _receive_rejoin(self, remote: str, message: dict[str, Any]) -> None:
        peer = text(message, "peer")
        if peer not in self.remotes or peer == remote or remote != self._server_for(peer):
            raise ValueError("rejoin from a peer that does not serve that one")
        c, start = integer(message, "frame", 0), integer(message, "start", 0)
        seats = {s for s in self.humans if self.owners[s] == peer}
        inputs = action_lists(message["inputs"], seats, self._valid, 2 * self.horizon + self.log_frames + 2, "inputs")
        if start > c or any(start + len(a) < c for a in inputs.values()):
            raise ValueError("rejoin: the fixed inputs do not reach the state's frame")
        self._fix_inputs(peer, c, start, inputs)

    def _apply_state(self, message: dict[str, Any]) -> None:
        """Restart from the sender's state: everything is checked and built first, then taken at once."""
        c, epoch = integer(message, "frame", 0), integer(message, "epoch", 0)
        if self._state_source is None and c > self._stamped + 1:
            raise ValueError("state transfer of a frame no peer can have confirmed")
        chain, source = text(message, "chain"), text(message, "from")
        known, result = message["inputs"], message["result"]
        if c > 0:
            known = action_lists({s: [a] for s, a in known.items()}, set(self.seats), self._checked_input, 1, "inputs")
            known = {s: a[0] for s, a in known.items()}
            if not isinstance(result, dict):
                raise ValueError("state transfer without the result of the frame before it")
            before = FrameResult(**result)
            if not isinstance(before.episode, int) or not isinstance(before.kind, str):
                raise ValueError("state transfer: a malformed result")
        elif known is not None or result is not None:
            raise ValueError("state transfer of frame 0 with a frame before it")
        ai, last = message["ai"], message["last"]
        if not isinstance(ai, dict) or not isinstance(last, dict):
            raise ValueError("state transfer without the AI seats' states")
        if any(not isinstance(ai.get(s), dict) or "state" not in ai[s] or s not in last for s in self.ai_seats):
            raise ValueError("state transfer without every AI seat's state")
        yours = action_lists(message["yours"], set(self.local_seats), self._valid, 2 * self.horizon + 2, "yours")
        episodes = message.get("episodes", {})
        if not isinstance(episodes, dict) or len(episodes) > self.horizon:
            raise ValueError("state transfer: malformed episode ends")
        ends = {integer({"e": int(e)}, "e", 0): integer(episodes, e, 0, c - 1) for e in episodes}
        agreed = integer(message, "agreed", -1) if "agreed" in message else -1
        backup = self.sim.snapshot()
        try:
            self.sim.restore(message["sim"])
            ring, observed = self.sim.snapshot(), self._observe() if self.ai_seats else {}
        except Exception as exc:
            self.sim.restore(backup)
            raise ValueError(f"state transfer: the simulation refused the state ({type(exc).__name__}: {exc})") from exc

        old = self._chains.get(c - 1)
        first_bad = c if old == chain else min(c, self._matched.get(source, -1) + 1)
        self.stats.resyncs += 1
        self._epoch, self._state_source = epoch, None
        event = {"type": "resync", "frame": c, "first_bad_frame": first_bad, "from": source, "local_hash": old}
        self._events.append(event | {"remote_hash": chain})
        self._records = [r for r in self._records if r.frame < c]
        self._ring, self._ai_obs, self._live, self._used = {c: ring}, ({c: observed} if self.ai_seats else {}), c, {}
        self._results = {c - 1: before} if c > 0 else {}
        self._chain, self.confirmed = chain, c - 1
        self._chains = {f: h for f, h in self._chains.items() if f < c - 1} | {c - 1: chain}
        self._hashes = {f: h for f, h in self._hashes.items() if f < c}
        for hashes in self._remote_hashes.values():
            for f in [f for f in hashes if f < c]:
                del hashes[f]
        if c > 0:
            self._inputs.setdefault(c - 1, {}).update(known)
            self._episode_now = before.episode
        for seat in self.humans:
            if self._upto[seat] < c - 1:
                self._upto[seat], self._last_known[seat] = c - 1, known[seat]
        for seat in self.ai_seats:
            begin = max(c, self._ai_from[seat])  # a seat handed to the AI at F keeps its human inputs before F
            for f in [f for f, held in self._inputs.items() if f >= begin and seat in held]:
                del self._inputs[f][seat]
            self._upto[seat] = self._ai_requested[seat] = begin - 1
            self._last_known[seat] = last[seat] if begin == c else self._inputs.get(begin - 1, {}).get(seat, last[seat])
            self._ai_blobs[seat] = []
            self._ai_restore[seat] = {"state": ai[seat]["state"] if begin == c else None}
        self._requests = []
        for seat, actions in yours.items():  # what the others hold of our inputs is what was played
            for offset, action in enumerate(actions):
                self._inputs.setdefault(c + offset, {})[seat] = action
            self._upto[seat] = max(self._upto[seat], c - 1 + len(actions))
            self._stamped = max(self._stamped, c - 1 + len(actions))
        self._stamped = max(self._stamped, c - 1)
        self._stamped_at = {f: t for f, t in self._stamped_at.items() if f >= c}
        for seat in self.humans:
            self._advance_upto(seat)
        if self.frame <= c:  # the clock moves on with the jump (no burst of frames to catch up)
            self._lost -= c - self.frame
            self.frame, self._stale, self._rollback_from = c, None, None
        else:
            self._stale, self._rollback_from = c, -1  # not a rollback: the resync is counted as such
        self._agreed_episode = max(self._agreed_episode, agreed)
        for episode, frame in sorted(ends.items()):  # ends the state jumped over, or that we had wrong
            if episode > self._agreed_episode and self._episode_reports.get(episode, {}).get(self.peer_id) != frame:
                self._announce_episode(episode, frame)

    def _checked_input(self, seat: str, action: Any) -> bool:
        """An input of the frame before a state: AI seats' may be ``None`` (a reset step has no AI turn)."""
        return (action is None and seat in self.ai_seats) or self._valid(seat, action)

    def reconnected(self, remote: str) -> None:
        """The pair with ``remote`` was made anew (a socket reconnect closes a page's mesh and opens another): the
        control messages in flight on the old one are lost, so our episode reports not yet agreed go to it again
        (inputs come again anyway: each input message repeats everything the remote has not acknowledged; a lost
        hash only skips one comparison; a lost state transfer is sent again on the next mismatch)."""
        if remote not in self.remotes:
            raise ValueError(f"reconnected: {remote!r} is not a peer of {self.peer_id!r} ({self.remotes})")
        for episode, reports in sorted(self._episode_reports.items()):
            if self.peer_id in reports:
                message = {"t": "episode", "from": self.peer_id, "episode": episode, "frame": reports[self.peer_id]}
                self._outbox.append((remote, "control", message))

    def request_state(self, known: dict[str, Any] | None = None) -> None:
        """Ask for the confirmed state (a peer that restarts mid-match, e.g. after a reload or reconnect): the
        designated peer, or when this peer is the designated one the next peer, sends it as on a desync.

        ``known``: ``{"start": f0, "inputs": {seat: [action of f0, ...]}}``, this peer's seats' inputs as the
        match's record holds them (what the old page confirmed and uploaded; at most ``2 * horizon`` frames):
        the state's sender takes those it lacks, so the frames are confirmed again with the old page's inputs
        rather than with predictions."""
        self._state_source = self._server_for(self.peer_id)
        message: dict[str, Any] = {"t": "state_request", "from": self.peer_id}
        if known is not None:
            message["known"] = known
        self._outbox.append((self._state_source, "control", message))

    def _receive_state_request(self, remote: str, message: dict[str, Any]) -> None:
        """``remote`` asks for the state (sent at our next tick); its ``known`` inputs fill what we lack."""
        known = message.get("known")
        if known is not None:
            start = integer(known, "start", 0)
            seats = {s for s in self.humans if self.owners[s] == remote}
            inputs = action_lists(known["inputs"], seats, self._valid, 2 * self.horizon, "known")
            self._fix_inputs(remote, start + max(map(len, inputs.values()), default=0), start, inputs)
        self._state_wanted.add(remote)

    @property
    def waiting_for_state(self) -> bool:
        """Whether this peer asked for the confirmed state (:meth:`~RollbackPeer.request_state`) and it has not
        come yet (the host may ask again: a request sent before the mesh's pair existed is lost)."""
        return self._state_source is not None

    # -- episodes -----------------------------------------------------------------------

    def _announce_episode(self, episode: int, frame: int) -> None:
        """Our confirmed end of ``episode`` at ``frame``: to every peer, and into our own reports."""
        self._episode_stats[episode] = self.stats.since(self._episode_counts)
        self._episode_counts = self.stats.counts()
        self._outbox.append((None, "control", {"t": "episode", "from": self.peer_id, "episode": episode, "frame": frame}))
        self._report_episode(self.peer_id, episode, frame)

    def _receive_episode(self, remote: str, episode: int, frame: int) -> None:
        if self._state_source is not None:
            return  # a reloaded page: the state brings the ends it needs
        if frame > self._stamped or episode > max(self._agreed_episode, self._episode_now) + self.horizon:
            raise ValueError(f"episode {episode} end at frame {frame}: beyond what any peer can have confirmed")
        self._report_episode(remote, episode, frame)

    def _report_episode(self, peer: str, episode: int, frame: int) -> None:
        if episode <= self._agreed_episode:
            return  # agreed already (a repeat after a state transfer)
        reports = self._episode_reports.setdefault(episode, {})
        if reports.get(peer) == frame:
            return
        reports[peer] = frame
        self._check_agreed(episode)

    def _check_agreed(self, episode: int) -> None:
        """``episode_end`` once every peer reported the same end of ``episode``."""
        reports = self._episode_reports.get(episode, {})
        if episode > self._agreed_episode and len(reports) == len(self.peers) and len(set(reports.values())) == 1:
            frame = next(iter(reports.values()))
            stats = self._episode_stats.pop(episode, None)
            self._events.append({"type": "episode_end", "episode": episode, "frame": frame, "stats": stats})
            self._agreed_episode = episode
            self._episode_reports = {e: r for e, r in self._episode_reports.items() if e > episode}
            self._episode_stats = {e: s for e, s in self._episode_stats.items() if e > episode}
