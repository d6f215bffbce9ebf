"""``Match``: one game of several participants, its seats, and what happens when a member is lost.

A member is *lost* when their tab closes or they are excluded. Their held keys
are released at once. Within ``multiplayer(reconnect_timeout_s=...)`` a member
who comes back (``ready`` on a new socket) takes their seat back at the current
step: they get ``match`` and the engine's ``scene`` and current ``frame``.
``on_partner_loss`` decides the meantime and the end:

* ``"end"``: the game goes on, the lost seat takes the default action; at the
  timeout the match ends (``partner_lost``);
* ``"wait"``: the game pauses for every member (``paused`` with the time left,
  then ``resumed`` when every lost member is back); at the timeout, as ``"end"``;
* ``"ai"``: the fill-in policy plays the seat (``seat_ai`` event) until the
  member is back (``seat_returned``); at the timeout the member moves on and the
  policy keeps the seat. A match without members left ends (``abandoned``). In a
  ``multiplayer(mode="p2p")`` match a member lost for :data:`P2P_AI_GRACE_S` (a
  dropped connection that comes back sooner keeps the seat) has their seat taken
  by the policy for good (the pages agree on the frame: :mod:`mug.server.matches.p2p`;
  the ``seat_ai`` event carries it) and moves on (``match_left`` with reason
  ``seat_ai``), as after the timeout.

A match that ends on a partner loss sends each remaining member a ``notice``
(``partner_lost``, the researcher's message), then ``multiplayer(after_partner_loss=...)``:
the next scene, or an end page with the message and a completion code. The
lost member goes the same way when they return.

Records: the ``matches`` table row (seats, formed, started, ended, end reason);
the game's steps and engine events under the match id (``participant_id`` and
``match_id`` both hold it); per member the events ``matched``, ``partner_lost``
(``{match_id, agent}``, the member who was lost), ``seat_ai``, ``seat_returned``,
``excluded`` and ``match_left``.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from mug.scenes.gym_scene import GymScene
from mug.server.matches.p2p import P2PSession
from mug.server.matches.session import EMPTY_SEAT, MatchSession
from mug.server.matches.signal import P2P_TYPES, MatchSignals
from mug.server.store import Store

if TYPE_CHECKING:
    from mug.server.matches.room import MatchRoom
    from mug.server.participants import Participant

__all__ = ["P2P_AI_GRACE_S", "Match", "MatchRecorder"]

log = logging.getLogger("mug.server")
#: How long a member of a ``multiplayer(mode="p2p", on_partner_loss="ai")`` match may be lost before the fill-in
#: policy takes their seat for good (at most ``reconnect_timeout_s``): a dropped connection that comes back sooner
#: keeps the seat; a closed tab's partners stall this long (nothing confirms without its inputs) before the AI plays.
P2P_AI_GRACE_S = 3.0


class MatchRecorder:
    """The recorder of a match's game: steps and engine events stored once, under the match id."""

    def __init__(self, store: Store, match_id: str) -> None:
        self.store, self.match_id = store, match_id

    def record(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "step":
            self.store.add_step(self.match_id, data, match_id=self.match_id)
        else:
            self.store.add_event(self.match_id, kind, data)


class _MembersPresent:
    """The game's transport: messages to a lost member are dropped until they are back (``ready``), so a tab
    that has connected but not yet said ``ready`` gets no frame twice; each member's ``scene`` message carries
    their seat (``match`` ``{match_id, seat, seats}``)."""

    def __init__(self, match: Match) -> None:
        self.match = match

    def send(self, client: str, message: dict[str, Any], buffers: list[bytes]) -> None:
        if client in self.match.lost or client not in self.match.members:  # away, or gone on with their study
            return
        if message.get("type") == "scene" and client in self.match.agent_of:
            message = {**message, "match": self.match.seat_of(client)}
        self.match.room.registry.send(client, message, buffers)


class Match:
    """One running match (see module docstring).

    Args:
        room: the deployment's :class:`~mug.server.matches.room.MatchRoom`.
        scene: the match's scene.
        match_id: its id (``<scene_id>-<n>``).
        seats: ``{agent: participant_id}`` of the seats participants hold (the others are played by ``fill_with``).
    """

    def __init__(self, room: MatchRoom, scene: GymScene, match_id: str, seats: dict[str, str]) -> None:
        self.room, self.scene, self.match_id, self.seats = room, scene, match_id, dict(seats)
        self.agent_of = {pid: agent for agent, pid in seats.items()}
        #: Members still in the match (participant id -> Participant).
        self.members: dict[str, Participant] = {pid: room.registry.participants[pid] for pid in seats.values()}
        #: Lost members and since when (``time.monotonic()``).
        self.lost: dict[str, float] = {}
        self.paused = False
        self.ended: str | None = None
        self.started = time.time()
        self.started_mono = time.monotonic()
        options = scene.waitroom_options
        fills = {a: spec for a in scene.humans if (spec := options.fill_for(a, scene.agent_ids)) is not None}
        clients = [seats.get(agent, EMPTY_SEAT + agent) for agent in scene.humans]
        #: The game: the server's engine, or for ``multiplayer(mode="p2p")`` the record of the members' browsers.
        self.session: MatchSession | P2PSession
        if scene.multiplayer_options.mode == "p2p":
            self.session = P2PSession(self)
        else:
            self.session = MatchSession(
                scene,
                clients,
                _MembersPresent(self),
                MatchRecorder(room.store, match_id),
                fills,
                session_id=match_id,
                max_message_bytes=room.registry.max_message_bytes,
            )
        #: The peer-to-peer mesh's signalling and relay (opened by ``p2p.start()``; see ``signal.py``).
        self.p2p = MatchSignals(self, room.ice_servers)

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Record what the game runs (a ``session`` event under the match id), tell every member their seat,
        and start the game."""
        from mug.server.participants import session_record  # the one record of a game's policies

        self.room.store.add_event(self.match_id, "session", {"session_id": self.match_id, **session_record(self.scene)})
        self.session.start()
        if isinstance(self.session, P2PSession):
            self.p2p.start(self.room.mesh_options)

    def seat_of(self, pid: str) -> dict[str, Any]:
        """Member ``pid``'s seat, as the ``match`` block of their ``scene`` message."""
        return {"match_id": self.match_id, "seat": str(self.agent_of[pid]), "seats": len(self.scene.humans)}

    @property
    def running(self) -> bool:
        """Whether the game steps on ticks (not paused, not over)."""
        return self.ended is None and not self.paused and not self.session.done

    def tick(self) -> None:
        """One frame tick of the game (nothing while paused)."""
        if self.running:
            self.session.tick()

    # -- messages -----------------------------------------------------------------------

    def handle(self, pid: str, message: dict[str, Any]) -> None:
        """A checked inbound message of member ``pid`` (``ready`` is :meth:`rejoin`)."""
        if pid in self.lost:
            return  # a message from a lost member's old tab, already closing
        if message["type"] in P2P_TYPES:
            self.p2p.handle(pid, message)
            return
        self.session.handle(pid, message)

    def rejoin(self, pid: str) -> None:
        """Member ``pid`` opened a tab (first time or reconnect): their seat back, the scene and current frame."""
        if self.lost.pop(pid, None) is not None:
            agent = self.agent_of[pid]
            if agent in self.session.ai_seats:
                self.session.hand_back(agent)
                self._event(pid, "seat_returned", {"agent": agent})
            self._event(pid, "rejoined", {"agent": agent})
        self.session.handle(pid, {"type": "ready"})
        self.p2p.rejoined(pid)
        if self.paused:
            self._send_paused(pid)  # after the scene: the page's new game view would close an earlier overlay
        if self.paused and not self.lost:
            self.paused = False
            for member in self.members.values():
                member.send({"type": "resumed", "scene_id": self.scene.scene_id})
            self.session.restart_wait()

    def _p2p_ai(self) -> bool:
        return self.scene.multiplayer_options.on_partner_loss == "ai" and isinstance(self.session, P2PSession)

    def left(self, pid: str) -> None:
        """Member ``pid``'s tab closed: they are lost (see module docstring)."""
        if pid in self.lost or pid not in self.members or self.ended is not None:
            return
        self.lost[pid] = time.monotonic()
        self.session.release(pid)
        self.p2p.left(pid)
        agent = self.agent_of[pid]
        self._event(pid, "partner_lost", {"agent": agent})
        policy = self.scene.multiplayer_options.on_partner_loss
        if policy == "ai" and not self._p2p_ai():  # a P2P seat goes to the AI for good, after the grace (check)
            self._to_ai(pid)
        elif policy == "wait":
            self.paused = True
            for other in self.members:
                if other not in self.lost:
                    self._send_paused(other)
        if self.session.runner == pid:
            present = [p for p in self.members if p not in self.lost]
            if present:
                self.session.move_runner(present[0])

    def _to_ai(self, pid: str) -> None:
        agent = self.agent_of[pid]
        if agent not in self.session.ai_seats:
            self.session.hand_to_ai(agent)
            if not isinstance(self.session, P2PSession):  # a P2P session stores it with the frame the pages agreed on
                self._event(pid, "seat_ai", {"agent": agent})

    def event_of(self, agent: str, kind: str, data: dict[str, Any]) -> None:
        """Store an event of the member who holds (or held) ``agent``'s seat."""
        self._event(self.seats[agent], kind, data)

    def _send_paused(self, pid: str) -> None:
        timeout = self.scene.multiplayer_options.reconnect_timeout_s
        now = time.monotonic()
        left = max(0.0, min(timeout - (now - t) for t in self.lost.values())) if self.lost else timeout
        self.members[pid].send(
            {
                "type": "paused",
                "scene_id": self.scene.scene_id,
                "reason": "partner_lost",
                "message": "Your partner lost the connection. Waiting for them to come back…",
                "time_left_s": round(left, 1),
            }
        )

    # -- checks (the room calls these a few times a second) -----------------------------

    def check(self, now: float) -> None:
        """Reconnect timeouts and monitoring."""
        if self.ended is not None:
            return
        timeout = self.scene.multiplayer_options.reconnect_timeout_s
        if self._p2p_ai():
            timeout = min(timeout, P2P_AI_GRACE_S)
        for pid, since in list(self.lost.items()):
            if now - since >= timeout and self.ended is None:
                self._gone(pid, reason="seat_ai" if self._p2p_ai() else "timeout")
        monitoring = self.scene.monitoring_options
        for pid, member in list(self.members.items()):
            if self.ended is not None or pid in self.lost:
                continue
            # hidden time counts from the match's start (a tab hidden in the waitroom is not excluded at once)
            # and not while the match is paused for a lost partner
            hidden = 0.0 if self.paused else min(member.monitor.hidden_for(now), now - self.started_mono)
            if monitoring.max_hidden_s is not None and hidden >= monitoring.max_hidden_s:
                self.exclude(pid, "hidden", {"hidden_s": round(hidden, 3), "max_hidden_s": monitoring.max_hidden_s})
                continue
            if monitoring.warn_hidden_s is not None and hidden >= monitoring.warn_hidden_s and not member.monitor.warned:
                member.monitor.warned = True
                self._event(pid, "hidden_warning", {"hidden_s": round(hidden, 3), "warn_hidden_s": monitoring.warn_hidden_s})
                member.send(
                    {"type": "notice", "code": "hidden_warning", "message": "Please keep this tab visible while you play."}
                )
            if monitoring.max_rtt_ms is not None:
                window = member.monitor.window(monitoring.rtt_window, since=self.started_mono)
                over = [r for r in window if r > monitoring.max_rtt_ms]
                if len(over) >= monitoring.rtt_violations:
                    values = {
                        "rtt_ms": [round(r, 2) for r in window],
                        "max_rtt_ms": monitoring.max_rtt_ms,
                        "violations": len(over),
                        "rtt_window": monitoring.rtt_window,
                    }
                    self.exclude(pid, "rtt", values)

    def exclude(self, pid: str, reason: str, values: dict[str, Any]) -> None:
        """Exclude member ``pid`` (recorded with the measured ``values``): they see the exclusion page, the
        partners are handled as for a lost partner whose reconnect time is over."""
        member = self.members[pid]
        log.info("match %s: participant %s excluded (%s: %s)", self.match_id, pid, reason, values)
        self._event(pid, "excluded", {"reason": reason, "values": values})
        self.session.release(pid)
        self.p2p.left(pid)
        if pid not in self.lost:
            self.lost[pid] = time.monotonic()
            self._event(pid, "partner_lost", {"agent": self.agent_of[pid]})
            if self.scene.multiplayer_options.on_partner_loss == "ai":
                self._to_ai(pid)
        message = self.scene.monitoring_options.exclusion_message
        member.send({"type": "notice", "code": "excluded", "message": message})
        self._gone(pid, ending=(reason, message))

    def _gone(self, pid: str, ending: tuple[str, str] | None = None, reason: str = "timeout") -> None:
        """A lost member's reconnect time is over (or they were excluded, or their P2P seat went to the AI)."""
        member = self.members[pid]
        if self.scene.multiplayer_options.on_partner_loss != "ai":
            self.finish("partner_lost", lost=pid, ending=ending)
            return
        self._to_ai(pid)
        self.lost.pop(pid, None)
        del self.members[pid]
        member.match = None
        self._event(pid, "match_left", {"agent": self.agent_of[pid], "reason": "excluded" if ending else reason})
        self._move_on(member, ending, lost=True)
        if not any(p not in self.lost for p in self.members):
            self.finish("abandoned")

    def finish(self, reason: str, *, lost: str | None = None, ending: tuple[str, str] | None = None) -> None:
        """End the match (``done``, ``partner_lost``, ``abandoned``, ``error``, ``interrupted``) and move its members on."""
        if self.ended is not None:
            return
        self.ended = reason
        if not self.session.done:
            self.session.interrupt(reason)
        self.room.ended(self, lost)
        for pid, member in list(self.members.items()):
            member.match = None
            if reason == "done":
                member.advance()
            elif reason == "error":
                member.entered = False  # a reload enters the scene (and its waitroom) again
            elif pid == lost:
                self._move_on(member, ending, lost=True)
            else:
                message = self.scene.multiplayer_options.partner_loss_message
                member.send({"type": "notice", "code": "partner_lost", "message": message})
                self._move_on(member, None, lost=False)
        self.members.clear()

    def _move_on(self, member: Participant, ending: tuple[str, str] | None, *, lost: bool) -> None:
        if ending is not None:
            member.end_with(ending[0], ending[1])
            return
        options = self.scene.multiplayer_options
        if options.after_partner_loss == "end":
            member.end_with("partner_lost", options.partner_loss_message)
        else:
            member.advance()

    def _event(self, pid: str, kind: str, data: dict[str, Any]) -> None:
        self.room.store.add_event(
            pid, kind, {"session_id": self.match_id, "scene_id": self.scene.scene_id, "match_id": self.match_id, **data}
        )

    def status(self) -> dict[str, Any]:
        """This match for the admin's live view."""
        return {
            "match_id": self.match_id,
            "members": dict(self.seats),
            "episode": self.session.episode,
            "step": self.session.step_index,
            "started": self.started,
        }
