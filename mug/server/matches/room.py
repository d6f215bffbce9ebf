"""``MatchRoom``: every waitroom and match of one deployment, their ticking, and the admin's live status.

Ticking: :meth:`tick` steps each running match once per frame of its scene
(one game however many members); :meth:`check` runs a few times a second for
waitrooms (departures, timeouts, groups), lost members' reconnect timeouts,
monitoring and entry screening.

Server restart: a match is only in memory. A match left unended in the store
(the server was killed) is recorded as ended ``interrupted`` when the next server
starts; its members, on their return, get a ``notice`` ``interrupted`` and enter
the scene's waitroom again (a new match; the steps of the interrupted one stay
in the data, every acknowledged one included).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from mug.scenes.gym_scene import GymScene
from mug.scenes.screening import ScreeningScene
from mug.server.matches.match import Match
from mug.server.matches.matchmaker import assign_seats
from mug.server.matches.signal import IceServers
from mug.server.matches.waitroom import Waitroom
from mug.server.store import Store

if TYPE_CHECKING:
    from mug.server.participants import Participant, ParticipantRegistry

__all__ = ["MatchRoom", "FINISHED_KEPT", "SCREENING_WAIT_S"]

log = logging.getLogger("mug.server")
#: What members of a match that could not start are shown (with their completion code).
MATCH_FAILED = "Sorry, the game could not be started because of an error on our side. Here is your completion code."
#: Finished matches kept per scene for the live status.
FINISHED_KEPT = 50
#: Seconds entry screening waits for its minimum number of round-trip samples.
SCREENING_WAIT_S = 30.0
INTERRUPTED_MESSAGE = "The server restarted and your game was interrupted. You are back in the waiting room."


class MatchRoom:
    """Waitrooms and matches of one deployment (see module docstring)."""

    def __init__(self, registry: ParticipantRegistry, store: Store, seed: int) -> None:
        self.registry, self.store, self.seed = registry, store, seed
        self.waitrooms: dict[str, Waitroom] = {}
        self.matches: dict[str, Match] = {}
        self.finished: dict[str, deque[dict[str, Any]]] = {}
        #: Earlier partners and the latest group of each participant (from the store, then from new matches).
        self.partners: dict[str, set[str]] = {}
        self.groups: dict[str, frozenset[str]] = {}
        #: Members of matches the last server left unended: participant id -> match id.
        self.interrupted: dict[str, str] = {}
        #: Participants in entry screening, with the ``time.monotonic()`` they entered it.
        self.screening: dict[str, tuple[Participant, float]] = {}
        #: ICE servers of peer-to-peer matches (``mug.deploy(ice_servers=...)``).
        self.ice_servers: IceServers = []
        #: The mesh options every peer-to-peer match opens its mesh with (``MatchSignals.start``; e.g. a test's shim).
        self.mesh_options: dict[str, Any] = {}
        for match_id, scene_id, seats in store.interrupt_open_matches():
            log.warning("match %s of scene %s was running when the server stopped: recorded as interrupted", match_id, scene_id)
            for pid in seats.values():
                self.interrupted[pid] = match_id
        self._counts: dict[str, int] = {}
        for row in store.matches():
            self._counts[row["scene_id"]] = self._counts.get(row["scene_id"], 0) + 1
            self._remember(list(row["seats"].values()))
        store.commit()

    def _remember(self, group: list[str]) -> None:
        for pid in group:
            self.partners.setdefault(pid, set()).update(p for p in group if p != pid)
            self.groups[pid] = frozenset(group)

    # -- entering -----------------------------------------------------------------------

    def enter(self, participant: Participant, scene: GymScene) -> None:
        """``participant`` enters match scene ``scene``: into its waitroom."""
        match_id = self.interrupted.pop(participant.participant_id, None)
        if match_id is not None:
            self.store.add_event(
                participant.participant_id, "interrupted_notice", {"scene_id": scene.scene_id, "match_id": match_id}
            )
            participant.send({"type": "notice", "code": "interrupted", "message": INTERRUPTED_MESSAGE})
        room = self.waitrooms.get(scene.scene_id)
        if room is None:
            room = self.waitrooms[scene.scene_id] = Waitroom(self, scene)
        room.join(participant)

    def screen(self, participant: Participant, scene: ScreeningScene) -> None:
        """``participant`` enters an entry screening: decided now, or once enough round trips are measured."""
        self.screening[participant.participant_id] = (participant, time.monotonic())
        participant.send({"type": "scene", "scene": scene.client_metadata(), "participant_id": participant.participant_id})
        self._screen(participant, scene, time.monotonic())

    def _screen(self, participant: Participant, scene: ScreeningScene, now: float) -> None:
        pid = participant.participant_id
        since = self.screening[pid][1]
        samples = [rtt for _, rtt in participant.monitor.rtts]
        if len(samples) < scene.min_rtt_samples and now - since < SCREENING_WAIT_S:
            return
        del self.screening[pid]
        passed, values = scene.evaluate(participant.user_agent, samples, participant.params)
        self.store.add_event(pid, "screening", {"scene_id": scene.scene_id, "passed": passed, "values": values})
        if passed:
            participant.advance()
            return
        self.store.add_event(pid, "excluded", {"scene_id": scene.scene_id, "reason": "screening", "values": values})
        participant.send({"type": "notice", "code": "excluded", "message": scene.message})
        participant.end_with("screening", scene.message)

    def start_match(self, scene: GymScene, group: list[str], waited: dict[str, float]) -> Match | None:
        """Start a match of ``group`` (participant ids; fewer than the seats leaves seats to ``fill_with``).

        If the game cannot be built (the env's constructor raises, a fill-in model does not load), the
        error is logged and recorded (``match_error``) and each member gets an end page with a completion
        code: nobody is left in a waitroom that no longer holds them."""
        n = self._counts[scene.scene_id] = self._counts.get(scene.scene_id, 0) + 1
        match_id = f"{scene.scene_id}-{n:05d}"
        seats, problem = assign_seats(group, scene.humans, self.seed, match_id, scene.matchmaking_options.seats)
        if problem is not None:
            self.store.add_event("", "seats_error", {"scene_id": scene.scene_id, "match_id": match_id, "problem": problem[:2000]})
        try:
            match = Match(self, scene, match_id, seats)
        except Exception as exc:
            log.exception("match %s could not start", match_id)
            error = f"{type(exc).__name__}: {exc}"[:2000]
            self.store.add_event("", "match_error", {"scene_id": scene.scene_id, "match_id": match_id, "error": error})
            for pid in seats.values():
                self.registry.participants[pid].end_with("match_error", MATCH_FAILED)
            return None
        self.matches[match_id] = match
        now = time.time()
        self.store.add_match(match_id, scene.scene_id, seats, now, now)
        self._remember(list(seats.values()))
        for agent, pid in seats.items():
            member = match.members[pid]
            member.match = match
            member.store_event(
                "matched", {"scene_id": scene.scene_id, "match_id": match_id, "agent": agent, "waited_s": round(waited[pid], 3)}
            )
        log.info("match %s started: %s", match_id, seats)
        match.start()
        return match

    def ended(self, match: Match, lost: str | None) -> None:
        """A match ended (called by :meth:`Match.finish`): recorded, out of the running list."""
        self.matches.pop(match.match_id, None)
        now = time.time()
        self.store.end_match(match.match_id, now, match.ended or "done")
        kept = self.finished.setdefault(match.scene.scene_id, deque(maxlen=FINISHED_KEPT))
        kept.append({"match_id": match.match_id, "members": dict(match.seats), "ended": now, "reason": match.ended})
        log.info("match %s ended: %s%s", match.match_id, match.ended, f" (lost {lost})" if lost else "")

    # -- ticking ------------------------------------------------------------------------

    def tick(self, fps: int) -> None:
        """One frame tick of every match whose scene runs at ``fps``."""
        for match in list(self.matches.values()):
            if match.scene.fps == fps:
                match.tick()

    def check(self, now: float | None = None) -> None:
        """Waitrooms, matches' timeouts and monitoring, entry screening (see module docstring)."""
        now = time.monotonic() if now is None else now
        for pid, (participant, _) in list(self.screening.items()):
            scene = participant.run.current
            if isinstance(scene, ScreeningScene):
                self._screen(participant, scene, now)
            else:
                del self.screening[pid]
        for match in list(self.matches.values()):
            try:
                match.check(now)
            except Exception:  # a bug of ours in one match must not stop the others' timeouts
                log.exception("match %s: check failed", match.match_id)
        for room in list(self.waitrooms.values()):
            try:
                room.check(now)
            except Exception:
                log.exception("waitroom of scene %s: check failed", room.scene.scene_id)

    def settle(self, participant: Participant) -> None:
        """After messages: a member's match whose game is over ends (and its members move on)."""
        match = participant.match
        if match is not None and match.session.done and match.ended is None:
            match.finish("error" if match.session.failure else "done")

    def status(self) -> dict[str, Any]:
        """Per match scene, for the admin's live view: ``{scene_id: {waiting, longest_wait_s, running: [...],
        finished: [...]}}`` (see ``CONTRACT``: running ``{match_id, members, episode, step, started}``,
        finished ``{match_id, members, ended, reason}``, the last ``FINISHED_KEPT``)."""
        now = time.monotonic()
        scenes = {s.scene_id for s in self.registry.stager.scenes.values() if isinstance(s, GymScene) and s.is_match}
        out = {}
        for scene_id in sorted(scenes):
            room = self.waitrooms.get(scene_id)
            out[scene_id] = {
                "waiting": 0 if room is None else len(room.waiting),
                "longest_wait_s": 0.0 if room is None else round(room.longest_wait(now), 3),
                "running": [m.status() for m in self.matches.values() if m.scene.scene_id == scene_id],
                "finished": list(self.finished.get(scene_id, ())),
            }
        return out
