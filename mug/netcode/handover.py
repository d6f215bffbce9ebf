"""Handing a lost peer's seats to an AI policy at a frame every remaining peer agrees on (``RollbackPeer.lose_peer``).

A mixin of ``RollbackPeer`` (its state lives there, declared in :mod:`mug.netcode.state`); the rule is in :mod:`mug.netcode.peer`'s
docstring. Why it is exact: peer ``p`` has the lost seat's inputs up to ``K_p`` (contiguous) and confirmed up
to ``C_p <= K_p``. It announces the seat's inputs of ``[C_p - horizon, K_p]`` (``handover``) and takes no more
inputs from the lost peer. No peer confirms a frame more than ``max_prediction + input_delay + 1`` beyond
another's (it needs that one's inputs, stamped at most ``input_delay`` ahead of a frame at most
``max_prediction + 1`` ahead of its confirmed frame), and ``horizon`` exceeds that, so the announcements of
every remaining peer together hold the seat's inputs from below every peer's confirmed frame up to
``F - 1``, ``F = max_p K_p + 1``. Every remaining peer holds the same announcements, so it fills the same
inputs before ``F`` and drops what it held of the seat from ``F`` on: frames before ``F`` confirm with the
seat's real inputs everywhere, and from ``F`` on the seat is an AI seat whose runtime state starts afresh (an
``AIRequest`` with ``restore={"state": None}``: zero hidden state and the sampling stream the runtime's seed
and the seat's name give, equal on every peer). A peer then re-simulates from its confirmed frame, as for a
misprediction.
"""

from __future__ import annotations

from typing import Any

from mug.netcode.state import PeerState
from mug.netcode.wire import action_lists, integer, text

__all__ = ["Handover"]


class Handover(PeerState):
    """Lost peers: announcements of what each remaining peer holds of their seats, and the agreed hand-over."""

    def lose_peer(self, peer: str) -> None:
        """``peer`` is gone for good (the host's server said so): its seats go to the AI policy from a frame all
        remaining peers agree on (module docstring); a ``seat_ai`` event ``{seat, peer, frame}`` says which.

        From now on nothing of ``peer`` is taken, and episode ends are agreed among the remaining peers. The
        seats must be AI seats on every remaining peer's host (its driver or page runtime serves their requests).
        """
        if peer in self._gone:
            return
        if peer not in self.remotes:
            raise ValueError(f"lose_peer: {peer!r} is not another peer of {self.peer_id!r} ({self.remotes})")
        seats = [s for s in self.humans if self.owners[s] == peer]
        self._gone.add(peer)
        self.remotes.remove(peer)
        self.peers.remove(peer)
        for table in self._per_remote:
            table.pop(peer, None)
        self._state_wanted.discard(peer)
        self._unrepairable.discard(peer)
        self.sync.drop(peer)
        for episode, reports in sorted(self._episode_reports.items()):
            reports.pop(peer, None)
            self._check_agreed(episode)
        start = self.confirmed + 1  # from up to horizon frames below our confirmed frame, as far as all are held
        while start > max(0, self.confirmed - self.horizon) and all(s in self._inputs.get(start - 1, {}) for s in seats):
            start -= 1
        inputs = {s: [self._inputs[f][s] for f in range(start, self._upto[s] + 1)] for s in seats}
        self._handovers.setdefault(peer, {})[self.peer_id] = {start: inputs}
        message = {"t": "handover", "from": self.peer_id, "peer": peer, "start": start, "inputs": inputs}
        for remote in self.remotes:
            self._outbox.append((remote, "control", message))
        for waiting in [p for p in self._handovers if p in self._gone]:  # one that waited for ``peer``'s announcement
            self._resolve(waiting)

    def _receive_handover(self, remote: str, message: dict[str, Any]) -> None:
        """A remaining peer's announcement of what it holds of ``peer``'s seats (kept until we lose ``peer`` too)."""
        peer = text(message, "peer")
        seats = {s for s, p in self.owners.items() if p == peer and s in self.humans}
        if peer == self.peer_id or peer == remote or not seats:
            if peer in self._gone and not seats:
                return  # a late announcement: the hand-over is done
            raise ValueError(f"handover of peer {peer!r}: not a peer whose seats can be handed over")
        start = integer(message, "start", 0, self._stamped + self.horizon)  # no peer holds inputs far past ours
        inputs = action_lists(message["inputs"], seats, self._valid, 4 * self.horizon, "inputs")
        self._handovers.setdefault(peer, {})[remote] = {start: inputs}
        if peer in self._gone:
            self._resolve(peer)

    def _resolve(self, peer: str) -> None:
        """Once every remaining peer announced: ``F`` per seat, the inputs before it, the seat an AI seat from it."""
        announced = self._handovers.get(peer, {})
        if any(p not in announced for p in self.peers):
            return
        del self._handovers[peer]
        seats = [s for s in self.humans if self.owners[s] == peer]
        for seat in seats:
            union: dict[int, Any] = {}
            for who in sorted(announced):
                for start, inputs in announced[who].items():
                    for offset, action in enumerate(inputs[seat]):
                        union.setdefault(start + offset, action)
            first = max(0, self.confirmed - self.horizon)
            agreed = max([f + 1 for f in union], default=0)
            previous = self._inputs.get(first - 1, {}).get(seat, self.default_action)
            actions = []
            for f in range(first, agreed):  # a gap (no peer had it; the bound says none) takes the frame before's
                previous = union[f] if f in union else self._inputs.get(f, {}).get(seat, previous)
                actions.append(previous)
            self._fix_inputs(peer, agreed, first, {seat: actions})
            for f in [f for f, held in self._inputs.items() if f >= agreed and seat in held]:
                del self._inputs[f][seat]
            self._upto[seat] = agreed - 1
            self._last_known[seat] = actions[-1] if actions else self._inputs.get(agreed - 1, {}).get(seat, self.default_action)
            self.humans.remove(seat)
            del self.owners[seat]
            self.ai_seats.append(seat)
            self._ai_from[seat] = agreed
            self._ai_requested[seat] = agreed - 1
            self._ai_blobs[seat] = []
            self._ai_restore[seat] = {"state": None}  # a fresh start, the same on every peer
            self._events.append({"type": "seat_ai", "seat": seat, "peer": peer, "frame": agreed})
        self.seats = self.humans + self.ai_seats
        self.designated = self.owners[self.humans[0]]
        # the AI seats' observations of the unconfirmed states: re-simulate from the confirmed state
        c = self.confirmed + 1
        self.sim.restore(self._ring[c])
        self._live = c
        self._ai_obs[c] = self._observe()
        if c < self.frame:
            self._stale = c if self._stale is None else min(self._stale, c)
            self._rollback_from = c if self._rollback_from is None else min(self._rollback_from, c)
