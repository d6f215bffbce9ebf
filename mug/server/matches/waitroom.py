"""``Waitroom``: participants waiting for the other members of a match, all timing on the server.

Entering a match scene puts a participant here. They get ``waitroom`` messages
(``{scene_id, waiting, needed, time_left_s, message}``; the counts are ``null``
with ``show_count=False``) on entering, whenever the count changes, and every
``UPDATE_EVERY_S`` seconds. A few times a second the room:

1. removes whoever has had no open tab for ``leave_grace_s`` (``waitroom_left``);
2. applies ``on_timeout`` to whoever waited ``timeout_s`` (``waitroom_timeout``):
   ``"end"`` (an end page with ``timeout_message`` and a completion code), ``"skip"``
   (the next scene) or ``"ai"`` (a match now, with ``fill_with`` in the empty seats; for a
   participant with an open tab: one without waits for it until ``leave_grace_s``);
3. forms groups from the candidates: waiting participants with an open tab (and,
   with ``matchmaking(max_rtt_ms=...)``, a measured round trip at most that), with
   kept groups first (``keep_groups``), then the matchmaker (first come, first served
   by default) until it waits. A participant is in at most one match: forming a
   group takes its members out of the room first.

Each member of a formed group gets a ``matched`` event with the seconds they waited.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from mug.scenes.gym_scene import GymScene
from mug.scenes.matching import Candidate
from mug.server.matches.matchmaker import choose_group

if TYPE_CHECKING:
    from mug.server.matches.room import MatchRoom
    from mug.server.participants import Participant

__all__ = ["Waitroom", "UPDATE_EVERY_S"]

#: Seconds between ``waitroom`` updates while nothing changes.
UPDATE_EVERY_S = 5.0


class Waitroom:
    """The waitroom of one match scene (see module docstring)."""

    def __init__(self, room: MatchRoom, scene: GymScene) -> None:
        self.room, self.scene = room, scene
        self.seats = len(scene.humans)
        #: Waiting participants by id, oldest first, with the ``time.monotonic()`` they came in.
        self.waiting: dict[str, tuple[Participant, float]] = {}
        self._updated = 0.0
        self._count = -1

    def join(self, participant: Participant) -> None:
        """``participant`` enters (or, already waiting, is shown the room again)."""
        pid = participant.participant_id
        if pid not in self.waiting:
            self.waiting[pid] = (participant, time.monotonic())
            participant.waiting = self
            self._event(participant, "waitroom_joined", {})
        self._send(participant, time.monotonic())
        self.check(time.monotonic())

    def leave(self, participant: Participant, reason: str) -> float:
        """Take ``participant`` out (recorded unless they were matched); the seconds they waited."""
        _, since = self.waiting.pop(participant.participant_id)
        participant.waiting = None
        waited = time.monotonic() - since
        if reason != "matched":
            self._event(participant, "waitroom_left", {"reason": reason, "waited_s": round(waited, 3)})
        return waited

    def longest_wait(self, now: float) -> float:
        """Seconds the longest waiting participant has waited."""
        return max((now - since for _, since in self.waiting.values()), default=0.0)

    # -- the room's work ----------------------------------------------------------------

    def check(self, now: float) -> None:
        """Departures, timeouts, then groups (see module docstring); then updates."""
        options = self.scene.waitroom_options
        for participant, _ in list(self.waiting.values()):
            left = participant.left_at
            if participant.connection is None and left is not None and now - left >= options.leave_grace_s:
                self.leave(participant, "left")
        self._form(now)  # first: a participant whose partner arrives in the same check is matched, not timed out
        for participant, since in list(self.waiting.values()):
            if participant.participant_id not in self.waiting or now - since < options.timeout_s:
                continue
            if options.on_timeout == "ai" and participant.connection is None:
                continue  # no match starts with an empty seat: theirs waits for their tab (or the grace ends)
            self._timed_out(participant, now - since)
        if len(self.waiting) != self._count or now - self._updated >= UPDATE_EVERY_S:
            for participant, _ in self.waiting.values():
                self._send(participant, now)
            self._updated, self._count = now, len(self.waiting)

    def _timed_out(self, participant: Participant, waited: float) -> None:
        options = self.scene.waitroom_options
        self._event(participant, "waitroom_timeout", {"waited_s": round(waited, 3), "on_timeout": options.on_timeout})
        if options.on_timeout == "ai":
            pid = participant.participant_id
            self._start([pid, *[p for p in self._eligible() if p != pid][: self.seats - 1]])
            return
        self.leave(participant, "timeout")
        participant.send({"type": "notice", "code": "waitroom_timeout", "message": options.timeout_message})
        if options.on_timeout == "end":
            participant.end_with("waitroom_timeout", options.timeout_message)
        else:
            participant.advance()

    def _eligible(self) -> list[str]:
        """Ids of waiting participants who may be matched now (an open tab; within ``max_rtt_ms``), oldest first."""
        max_rtt = self.scene.matchmaking_options.max_rtt_ms
        out = []
        for pid, (participant, _) in self.waiting.items():
            if participant.connection is None:
                continue
            if max_rtt is not None and ((rtt := participant.monitor.rtt_ms()) is None or rtt > max_rtt):
                continue
            out.append(pid)
        return out

    def _candidate(self, pid: str, now: float) -> Candidate:
        participant, since = self.waiting[pid]
        return Candidate(
            participant_id=pid,
            waited_s=now - since,
            rtt_ms=participant.monitor.rtt_ms(),
            params=dict(participant.params),
            answers=participant.answers(),
            partners=frozenset(self.room.partners.get(pid, ())),
        )

    def _form(self, now: float) -> None:
        options = self.scene.matchmaking_options
        eligible = self._eligible()
        if options.keep_groups:  # earlier groups of this size first; their members wait for their own group
            present = set(eligible)
            for pid in list(eligible):
                group = self.room.groups.get(pid, frozenset())
                if len(group) == self.seats and group <= present:
                    self._start(sorted(group))
                    present -= group
            eligible = [p for p in eligible if p in present and len(self.room.groups.get(p, ())) != self.seats]
        while len(eligible) >= self.seats:
            if options.matchmaker is None:
                group: list[str] | None = eligible[: self.seats]
            else:
                candidates = [self._candidate(pid, now) for pid in eligible]
                group, problem = choose_group(candidates, self.seats, options.matchmaker, self.scene.scene_id)
                if problem is not None:
                    self.room.store.add_event(
                        "", "matchmaker_error", {"scene_id": self.scene.scene_id, "problem": problem[:2000]}
                    )
            if group is None:
                return
            self._start(group)
            taken = set(group)
            eligible = [p for p in eligible if p not in taken]

    def _start(self, group: list[str]) -> None:
        waited = {}
        for pid in group:
            participant, _ = self.waiting[pid]
            waited[pid] = self.leave(participant, "matched")
        self.room.start_match(self.scene, group, waited)

    def _send(self, participant: Participant, now: float) -> None:
        options = self.scene.waitroom_options
        since = self.waiting[participant.participant_id][1]
        participant.send(
            {
                "type": "waitroom",
                "scene_id": self.scene.scene_id,
                "waiting": len(self.waiting) if options.show_count else None,
                "needed": self.seats if options.show_count else None,
                "time_left_s": round(max(0.0, options.timeout_s - (now - since)), 1),
                "message": options.message,
            }
        )

    def _event(self, participant: Participant, kind: str, data: dict[str, Any]) -> None:
        self.room.store.add_event(participant.participant_id, kind, {"scene_id": self.scene.scene_id, **data})
