"""The input messages of a :class:`~mug.netcode.RollbackPeer`: what it sends of its seats' inputs, what it takes.

A mixin of ``RollbackPeer`` (its state lives there, declared in :mod:`mug.netcode.state`); the rules are in :mod:`mug.netcode.peer`'s docstring.
"""

from __future__ import annotations

from typing import Any

from mug.netcode.state import PeerState
from mug.netcode.wire import MAX_INT, integer

__all__ = ["InputExchange", "input_window"]


def input_window(max_prediction: int, input_delay: int) -> int:
    """How many frames of inputs a peer takes ahead of its own (:attr:`RollbackPeer.horizon`): the prediction
    window plus the input delay both ways plus slack. A page's confirmed frames run at most this far past its
    partners' (what a server keeps of a seat's inputs for a reload: :meth:`RollbackPeer.request_state`)."""
    return max_prediction + 2 * input_delay + 2


class InputExchange(PeerState):
    """Input messages: redundancy from the remote's ack, bounds and action checks on what arrives."""

    def _input_message(self, remote: str) -> dict[str, Any]:
        start = max(self._acked[remote] + 1, self.confirmed - self.log_frames)
        while start <= self._stamped and any(s not in self._inputs.get(start, {}) for s in self.local_seats):
            start += 1  # after a state transfer: our inputs from before it are not all held
        end = min(self._stamped, start + self.max_redundancy - 1)
        gaps = [f for f in range(start, end + 1) if any(s not in self._inputs.get(f, {}) for s in self.local_seats)]
        if gaps:  # after a reload: the new page's first inputs, then the state's
            start = gaps[-1] + 1
            end = min(self._stamped, start + self.max_redundancy - 1)
        if self._state_source is not None:
            end = start - 1  # a reloaded page waits for the state (and its inputs from then on)
        inputs = {s: [self._inputs[f][s] for f in range(start, end + 1)] for s in self.local_seats}
        remote_seats = [s for s in self.humans if self.owners[s] == remote]
        return {
            "t": "input",
            "from": self.peer_id,
            "frame": self.frame,
            "adv": self.sync.advantage(self.frame, remote),
            "ack": min(self._upto[s] for s in remote_seats),
            "start": start,
            "inputs": inputs,
        }

    def _receive_inputs(self, remote: str, message: dict[str, Any]) -> None:
        ack, frame = integer(message, "ack", -1), integer(message, "frame", 0)
        adv, start = integer(message, "adv", -MAX_INT, MAX_INT), integer(message, "start", 0)
        inputs = message["inputs"]
        if not isinstance(inputs, dict):
            raise ValueError("inputs: expected {seat: [actions]}")
        if any(self.owners.get(seat) != remote or not isinstance(actions, list) for seat, actions in inputs.items()):
            raise ValueError(f"peer {remote!r} sent inputs for a seat it does not play")
        new: list[tuple[str, int, Any]] = []
        for seat, actions in inputs.items():
            first, last = max(self._upto[seat] + 1, start), min(start + len(actions) - 1, self.frame + self.horizon)
            new += [(seat, f, actions[f - start]) for f in range(first, last + 1) if seat not in self._inputs.get(f, {})]
        if not all(self._valid(seat, action) for seat, _, action in new):
            raise ValueError(f"peer {remote!r} sent an action outside its seat's action space")
        waiting = self._state_source is not None  # a reloaded page: the others are far ahead of it
        reach = self._stamped + self.max_prediction + 1  # no peer gets further without our inputs
        if not waiting and (ack > self._stamped or frame > reach):
            self.stats.bad_messages += 1  # clamped below, the rest of the message is used
        self._acked[remote] = min(ack, self._stamped)  # the newest, not the most: a reloaded page acks less
        if not waiting:
            bound = 4 * self.horizon
            self.sync.observe(self.frame, remote, min(frame, reach), max(-bound, min(adv, bound)))
        for seat, f, action in new:
            self._inputs.setdefault(f, {})[seat] = action
            self._check_prediction(seat, f, action)
        for seat in inputs:
            self._advance_upto(seat)
        self._heard.add(remote)

    def _advance_upto(self, seat: str) -> None:
        """Move ``seat``'s last input known in order over the inputs held after it."""
        while seat in self._inputs.get(self._upto[seat] + 1, {}):
            self._upto[seat] += 1
            self._last_known[seat] = self._inputs[self._upto[seat]][seat]
