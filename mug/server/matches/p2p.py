"""``P2PSession``: the server's side of a peer-to-peer match (``multiplayer(mode="p2p")``); no game runs on the server.

Each member's browser runs the scene (as a browser-side scene does) with a
:class:`mug.netcode.RollbackPeer`; the browsers exchange inputs over the mesh of
:mod:`mug.server.matches.signal`. ``P2PSession`` stands where a
:class:`~mug.server.matches.session.MatchSession` stands in a server-mode
:class:`~mug.server.matches.match.Match`:

* at the match's start (and to a member who comes back) it sends the ``scene``
  message: the scene's metadata with ``environment`` as for a browser-side scene, whose
  ``spec`` is the scene's browser spec plus ``session_id`` (the match id) and ``p2p``
  ``{match_id, seat, owners, ai_seats, input_delay, max_prediction, hash_interval, rejoin}``
  (peer id = the member's seat; ``owners = {seat: seat}`` for every human seat), and with
  ``on_partner_loss="ai"`` the metadata's ``fill_policies`` (the other seats' fill-in models); then the
  match opens the mesh (the ``p2p`` message, with the room's :attr:`MatchRoom.mesh_options`).
  ``rejoin`` is true in the scene sent to a tab that (re)opened mid-match (its ``ready``): a
  reloaded page's new game asks a peer for the confirmed state (state transfer into the
  current frame), with ``stored_inputs`` (its seat's inputs of the last stored frames,
  :meth:`ConfirmedLog.stored_inputs`, or ``None``) in the request; a page whose socket only
  dropped keeps its game and ignores the scene. The
  log holds that member's unstored records out of comparisons until the page says which of
  them stand (:meth:`ConfirmedLog.restarting`);
* it takes what the pages send: ``p2p_frames`` into the :class:`~mug.server.matches.p2p_log.ConfirmedLog`
  (steps stored once, cross-checks, checks; a refused record gets an ``error``
  ``bad_p2p_frames`` reply and a ``bad_p2p_frames`` event ``{peer, problem}``, stored once
  while the same problem comes again, and the match goes on), answered with ``p2p_ack`` ``{match_id, frame}`` to every present member when the
  acknowledged frame goes up (it leaves after the store commits; a member who comes back gets
  the last one after the scene); ``p2p_events`` (each at most :data:`MAX_EVENT_BYTES` as JSON):
  ``desync`` / ``desync_resolved`` / ``resync`` are stored as ``p2p_desync`` /
  ``p2p_desync_resolved`` / ``p2p_resync`` events, ``episode_end`` as ``p2p_episode``
  ``{match_id, episode, frame, peer, stats, relayed_with, unchecked}`` (the peer's statistics
  over the episode, the seats it goes through the server with, the frames of it that could
  not be compared so far), once per peer and episode. A ``resync`` moves where the peer's
  frames go on (see :meth:`ConfirmedLog.resync`): a page sends its events before the frames
  made after them. ``p2p_done``: the match ends ``done`` once every present member sent it;
* a lost member: ``on_partner_loss="end"`` or ``"wait"``: the others' games stall (nothing
  confirms without the lost seat's inputs); a member back in time plays on; at the
  reconnect timeout the match ends ``partner_lost``. ``on_partner_loss="ai"``: the seat of a
  member lost for ``P2P_AI_GRACE_S`` (:mod:`mug.server.matches.match`) goes to its fill-in
  policy for good (:meth:`P2PSession.hand_to_ai`): every present
  member gets ``p2p_seat_ai`` ``{match_id, seat}``, and each page's game hands the seat to
  the AI at a frame ``F`` the remaining peers agree on over the mesh
  (:mod:`mug.netcode.handover`); every page reports it in its ``p2p_events`` as
  ``seat_ai`` ``{seat, peer, frame: F}``, stored once as the lost member's ``seat_ai`` event
  ``{match_id, agent, frame, peer, model_sha256}`` (``peer``: the page that reported it first;
  a report of another ``F`` is refused, ``bad_field``). The
  fill-in policy is a ``ModelConfig`` run by every page's runtime, identically: the scene
  carries it from the start (``fill_policies`` in the scene's metadata, ``{seat: {kind,
  where, config, model_url}}``, as ``policies``), so the pages load it before it is needed.
  The lost member moves on (``match_left`` ``{reason: "seat_ai"}``); a tab of theirs that
  comes back is where the reconnect timeout would have put them;
* an ``env_error`` from a page (the env raised in that browser) is stored as an ``env_error``
  event with its traceback and logged, every present member gets a fatal ``error``, and the
  match ends ``error`` (as a server-mode match whose game failed); ``client_error`` is stored.

Every event is stored under the match id (``participant_id`` and ``session_id``), as
the match's steps are; a ``browser_session`` event with the spec lets ``mug verify``
re-verify the match's episodes later.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from mug.netcode.inputs import input_window
from mug.scenes.policies import file_sha256
from mug.server.matches.p2p_log import RATE_SLACK, ConfirmedLog
from mug.session.messages import MessageError

if TYPE_CHECKING:
    from mug.server.matches.match import Match

__all__ = ["HASH_INTERVAL", "MAX_EVENT_BYTES", "P2PSession"]

log = logging.getLogger("mug.server")
#: Every how many confirmed frames peers exchange the hash of the state (the chain is exchanged with it).
HASH_INTERVAL = 10
#: Largest event of a page (as JSON): an episode's statistics with their histograms are a few KB.
MAX_EVENT_BYTES = 16 * 1024
_STORED_EVENTS = {"desync": "p2p_desync", "desync_resolved": "p2p_desync_resolved", "resync": "p2p_resync"}


class P2PSession:
    """The game of one peer-to-peer match (see module docstring).

    Args:
        match: the match (its seats are every human seat: a p2p scene has no empty seats).
    """

    def __init__(self, match: Match) -> None:
        self.match, self.scene = match, match.scene
        self.registry = match.room.registry
        self.base_spec = self.registry.browser.specs[self.scene.scene_id]
        self.humans = [str(a) for a in self.scene.humans]
        #: Seats an AI policy plays on every peer.
        self.policy_seats = [str(a) for a in self.scene.agents if a not in self.scene.humans]
        #: Human seats handed to their fill-in policy (as ``MatchSession.ai_seats``; :meth:`hand_to_ai`).
        self.ai_seats: set[str] = set()
        #: The frame each handed seat's AI took over at (the pages' ``seat_ai`` reports).
        self.handed_at: dict[str, int] = {}
        fills = self.scene.fill_policies() if self.scene.multiplayer_options.on_partner_loss == "ai" else {}
        self._fill_models = {a: file_sha256(spec.config.onnx_path) for a, spec in fills.items() if spec.config is not None}
        self._fills = {
            a: spec.client_metadata(self.scene.fill_model_path(a), True) for a, spec in fills.items() if spec.config is not None
        }
        self.done = False
        self.failure: str | None = None
        self.finished: set[str] = set()
        self._episodes: set[tuple[str, int]] = set()  # (seat, episode) of the stats stored
        self._refused: dict[str, str] = {}  # seat -> the last problem stored as bad_p2p_frames
        self.log = ConfirmedLog(
            self.base_spec,
            {seat: match.seats[seat] for seat in self.humans},
            self.policy_seats,
            self.scene.fps,
            store_step=self._store_step,
            event=self._event,
            verify=self._verify,
        )

    # -- what Match calls (as on a MatchSession) ---------------------------------------

    @property
    def runner(self) -> None:
        """Nobody runs the policies for the others: every peer runs its AI seats' policies itself."""
        return None

    @property
    def episode(self) -> int:
        """The episode of the last stored step (for the admin's live view)."""
        return self.log.last_step[0] if self.log.last_step else 0

    @property
    def step_index(self) -> int:
        """The last stored step (for the admin's live view)."""
        return self.log.last_step[1] if self.log.last_step else 0

    def start(self) -> None:
        """Record the spec (``browser_session`` event) and send every member the scene; then the match opens the mesh."""
        spec = {**self.base_spec, "session_id": self.match.match_id}
        record = {"session_id": self.match.match_id, "scene_id": self.scene.scene_id, "resume_episode": 0, "spec": spec}
        self.match.room.store.add_event(self.match.match_id, "browser_session", record)
        for pid in self.match.members:
            self._send_scene(pid)

    def tick(self) -> bool:
        """Nothing steps on the server."""
        return False

    def restart_wait(self) -> None:
        """Nothing waits on the server."""

    def release(self, pid: str) -> None:
        """Member ``pid`` is lost: acknowledgements and the match's end no longer wait for them."""
        self._acknowledge()
        self._check_done()

    def hand_to_ai(self, agent: str) -> None:
        """``agent``'s member is lost (``on_partner_loss="ai"``): the present members' pages hand the seat to its
        fill-in policy at a frame they agree on (module docstring)."""
        self.ai_seats.add(agent)
        self.log.hand_over(agent)
        for pid in self._present():
            self.match.members[pid].send({"type": "p2p_seat_ai", "match_id": self.match.match_id, "seat": agent})
        self._acknowledge()

    def interrupt(self, reason: str) -> None:
        """The match ends before every peer was done."""
        if not self.done:
            self.done = True
            self.log.close()
            self._event("interrupted", {"reason": reason, "frame": self.log.stored})

    def handle(self, pid: str, message: dict[str, Any]) -> None:
        """``ready`` (the scene again), a page's ``p2p_frames`` / ``p2p_events`` / ``p2p_done``, ``env_error`` or
        ``client_error``; anything else is refused."""
        try:
            kind = message["type"]
            if kind == "ready":  # a tab (re)opened mid-match: a reloaded page asks its peers for the state
                self.log.restarting(str(self.match.agent_of[pid]))
                self._send_scene(pid, rejoin=True)
                return
            if kind == "client_error":
                log.warning("match %s: participant %s reports: %r", self.match.match_id, pid, message["message"])
                self._event("client_error", {"participant": pid, "message": message["message"]})
                return
            if kind == "env_error":
                self._on_env_error(pid, message)
                return
            if kind not in ("p2p_frames", "p2p_events", "p2p_done"):
                raise MessageError(
                    "wrong_scene", f"{kind!r} goes to the game in the browser in peer-to-peer scene {self.scene.scene_id!r}"
                )
            if message["match_id"] != self.match.match_id:
                raise MessageError(
                    "unknown_match", f"{kind} for match {message['match_id']!r}; this member's match is {self.match.match_id!r}"
                )
            seat = str(self.match.agent_of[pid])
            if kind == "p2p_frames":
                self._on_frames(seat, message["records"])
            elif kind == "p2p_events":
                self._on_events(seat, message["events"])
            else:
                self.finished.add(pid)
                self._check_done()
        except MessageError as exc:
            log.warning("match %s: rejected a message of participant %s: %s (%s)", self.match.match_id, pid, exc, exc.code)
            self.match.members[pid].send({"type": "error", "code": exc.code, "message": str(exc), "fatal": False})

    # -- internals ----------------------------------------------------------------------

    def _on_env_error(self, pid: str, message: dict[str, Any]) -> None:
        """The env raised in member ``pid``'s browser: every peer's game stops there; the match ends ``error``."""
        if message["session_id"] != self.match.match_id:
            raise MessageError("unknown_session", f"env_error for session {message['session_id']!r}: not this match")
        log.error(
            "match %s: the env failed in the browser of participant %s at episode %s step %s: %s",
            self.match.match_id,
            pid,
            message["episode"],
            message["step"],
            message["message"],
        )
        data = {k: v for k, v in message.items() if k not in ("type", "session_id")}
        self._event("env_error", {**data, "participant": pid, "peer": str(self.match.agent_of[pid])})
        self.failure, self.done = message["message"] or "env_error", True
        text = "The game stopped because of an error in the environment."
        for other in self._present():
            member = self.match.members[other]
            member.send({"type": "error", "code": "env_error", "message": text, "fatal": True})
            self.registry.pending[other] = member  # the next flush ends the match (MatchRoom.settle)

    def _send_scene(self, pid: str, *, rejoin: bool = False) -> None:
        seat = str(self.match.agent_of[pid])
        options = self.scene.multiplayer_options
        p2p = {
            "match_id": self.match.match_id,
            "seat": seat,
            "owners": {s: s for s in self.humans},
            "ai_seats": list(self.policy_seats),
            "input_delay": options.input_delay,
            "max_prediction": options.max_prediction,
            "hash_interval": HASH_INTERVAL,
            "rejoin": rejoin,
        }
        if rejoin:  # the seat's last stored inputs: the new page's state request carries them (see ConfirmedLog)
            window = 2 * input_window(options.max_prediction, options.input_delay)
            p2p["stored_inputs"] = self.log.stored_inputs([seat], window)
        spec = {**self.base_spec, "session_id": self.match.match_id, "p2p": p2p}
        meta = self.scene.client_metadata("deployment")
        if self._fills:
            meta["fill_policies"] = {a: fill for a, fill in self._fills.items() if a != seat}
        meta["environment"] = {**self.registry.browser.environment[self.scene.scene_id], "spec": spec}
        member = self.match.members[pid]
        member.send({"type": "scene", "scene": meta, "session_id": self.match.match_id, "match": self.match.seat_of(pid)})
        for agent in sorted(self.ai_seats):  # a page whose socket was down when a seat was handed over learns it now
            member.send({"type": "p2p_seat_ai", "match_id": self.match.match_id, "seat": agent})
        if self.log.acked >= 0:
            member.send({"type": "p2p_ack", "match_id": self.match.match_id, "frame": self.log.acked})

    def _present(self) -> list[str]:
        return [pid for pid in self.match.members if pid not in self.match.lost]

    def _on_frames(self, seat: str, records: list[dict[str, Any]]) -> None:
        problem = self.log.add_frames(seat, records)
        self._acknowledge()
        if problem is not None:
            if self._refused.get(seat) != problem:  # a page resends what is not acked: the same problem is stored once
                self._refused[seat] = problem
                self._event("bad_p2p_frames", {"peer": seat, "problem": problem})
            raise MessageError(
                "bad_p2p_frames", f"p2p_frames of seat {seat!r}: {problem}; frames up to {self.log.received[seat]} are taken"
            )

    def _on_events(self, seat: str, events: list[dict[str, Any]]) -> None:
        for event in events:
            kind = event["type"]
            if kind not in ("episode_end", "seat_ai") and kind not in _STORED_EVENTS:
                raise MessageError(
                    "bad_field", f"p2p_events: unknown event {kind!r}; expected episode_end, seat_ai or {sorted(_STORED_EVENTS)}"
                )
            if len(json.dumps(event, separators=(",", ":"), default=str)) > MAX_EVENT_BYTES:
                raise MessageError("bad_field", f"p2p_events: a {kind} event over {MAX_EVENT_BYTES} bytes")
            data = {k: v for k, v in event.items() if k != "type"}
            frame = event.get("frame")
            if kind == "resync":
                if type(frame) is not int or frame < 0:
                    raise MessageError("bad_field", f"p2p_events: a resync needs its frame (integer >= 0), got {frame!r}"[:200])
                problem = self.log.resync(seat, frame)
                if problem is not None:
                    self._event("bad_p2p_frames", {"peer": seat, "problem": problem})
                    raise MessageError("bad_p2p_frames", f"p2p_events of seat {seat!r}: {problem}")
            if kind == "seat_ai":
                self._on_seat_ai(seat, event.get("seat"), frame)
                continue
            if kind != "episode_end":
                self._event(_STORED_EVENTS[kind], {**data, "peer": seat})
                continue
            episode = event.get("episode")
            if type(episode) is not int or (seat, episode) in self._episodes:
                continue  # a resend after a reconnect, or no episode
            self._episodes.add((seat, episode))
            self._event("p2p_episode", {**data, "peer": seat, **self._relays(seat), "unchecked": self.log.unchecked[seat]})

    def _on_seat_ai(self, reporter: str, seat: Any, frame: Any) -> None:
        """A page handed ``seat`` to the AI from ``frame`` on: stored once (the lost member's ``seat_ai`` event)."""
        if seat not in self.ai_seats:
            raise MessageError("bad_field", f"p2p_events: seat_ai of seat {str(seat)[:40]!r}, which was not handed to the AI")
        if type(frame) is not int or not 0 <= frame <= self.log.stored + RATE_SLACK:
            raise MessageError("bad_field", f"p2p_events: seat_ai needs the frame the AI took over at, got {str(frame)[:40]!r}")
        agreed = self.handed_at.get(seat)
        if agreed is None:
            self.handed_at[seat] = frame
            record = {"agent": seat, "frame": frame, "peer": reporter, "model_sha256": self._fill_models[seat]}
            self.match.event_of(seat, "seat_ai", record)
        elif agreed != frame:
            raise MessageError(
                "bad_field", f"p2p_events: seat {seat!r} went to the AI at frame {agreed} on the other pages, not {frame}"
            )

    def _relays(self, seat: str) -> dict[str, Any]:
        pairs = [{s for s, _ in pair} for pair in self.match.p2p.relayed]
        return {"relayed_with": sorted({s for pair in pairs if seat in pair for s in pair if s != seat})}

    def _acknowledge(self) -> None:
        present = [str(self.match.agent_of[pid]) for pid in self._present()]
        frame = self.log.ack(present)
        if frame is None:
            return
        for pid in self._present():
            self.match.members[pid].send({"type": "p2p_ack", "match_id": self.match.match_id, "frame": frame})

    def _check_done(self) -> None:
        present = self._present()
        if self.done or not present or not all(pid in self.finished for pid in present):
            return
        self.done = True
        self.log.close()
        self._event("p2p_done", {"frame": self.log.stored, "peers": sorted(str(self.match.agent_of[p]) for p in self.finished)})
        for pid in present:
            self.registry.pending[pid] = self.match.members[pid]  # the next flush ends the match (MatchRoom.settle)

    def _store_step(self, row: dict[str, Any]) -> None:
        data = {**row, "session_id": self.match.match_id, "scene_id": self.scene.scene_id}
        self.match.room.store.add_step(self.match.match_id, data, match_id=self.match.match_id)

    def _event(self, kind: str, data: dict[str, Any]) -> None:
        match = self.match
        record = {"session_id": match.match_id, "scene_id": self.scene.scene_id, "match_id": match.match_id, **data}
        match.room.store.add_event(match.match_id, kind, record)

    def _verify(self, episode: int, steps: list[dict[str, Any]]) -> None:
        self.registry.verifier.after_commit(self.match.match_id, self.base_spec, self.match.match_id, episode, steps)
