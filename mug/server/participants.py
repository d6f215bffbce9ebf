"""Participants of a deployment: each one's place in the study, connection and running game.

Reload and reconnect: a participant's progress (the Stager run) is stored on
every scene change. A new connection resumes at the current scene:

* static and survey scenes are shown again (answers already submitted stay
  submitted; an unsubmitted form starts empty);
* an environment scene *continues*: the game pauses while its participant is
  disconnected and resumes with the current frame. After a server restart the
  game is gone from memory: the scene starts again from its first episode (a
  new ``session_id``), and the steps recorded before the restart stay in the data.
* a browser-side scene (``runtime(environment="browser")``) runs in the page's
  worker, which resends what the server has not acknowledged; a reloaded page
  restarts the interrupted episode in a new session (:mod:`mug.server.browser_sessions`).

A second tab for the same participant takes over: the first tab is told
(``error`` code ``replaced``) and closed.

Memory: a participant whose tab has been closed for ``IDLE_AFTER_S`` seconds
(at once, once the study is complete) is dropped from memory. A game left
that long is ended with an ``interrupted`` event; coming back later is like
coming back after a restart (the scene starts again; everything recorded stays).

Store trouble: while the store cannot commit (another program holds the write
lock), nothing is delivered (frames and acks wait for their steps), games do
not tick (they pause, as for a disconnect), and the commit is retried every
``RETRY_S`` seconds; no queued step is dropped and no connection is closed.

Matches: a scene with two or more ``mug.Human`` agents is played by a match
(:mod:`mug.server.matches`). Entering it puts the participant in its waitroom;
once matched, ``match`` is their seat in the shared game (ticked, recorded and
delivered once per match). A reload during a match takes the seat back at the
current step (within ``multiplayer(reconnect_timeout_s=...)``). After the match
each member goes on with their own study. A participant the server ends early
(waitroom timeout ``"end"``, exclusion, a lost partner with
``after_partner_loss="end"``, failed entry screening) gets an end page made by
the server with the researcher's message and a completion code of their own
(logged and stored); it is kept in their ``metadata`` (``ending``) so a reload
shows it again. After a server restart (even SIGKILL) members of a match that was
running get a ``notice`` ``interrupted`` and enter its waitroom again (see
:mod:`mug.server.matches.room`).

Records: every game session starts with a ``session`` event naming the mug
version and, per agent, the policy kind, its ``ModelConfig`` and the SHA-256
of its ONNX file.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from typing import TYPE_CHECKING, Any

import mug
from mug.scenes.gym_scene import GymScene
from mug.scenes.policies import file_sha256
from mug.scenes.screening import ScreeningScene
from mug.scenes.stager import Stager, StagerRun
from mug.scenes.static import EndScene
from mug.scenes.survey import SurveyScene
from mug.server.browser_sessions import BrowserSession, BrowserStudy, ack_finished
from mug.server.matches.monitor import Monitor
from mug.server.matches.room import MatchRoom
from mug.server.store import SessionRecorder, Store
from mug.server.verify import Verifier
from mug.session.engine import GameSession
from mug.session.messages import P2P_INBOUND_TYPES, MessageError, decode_inbound, encode_envelope

if TYPE_CHECKING:
    from mug.server.matches.match import Match
    from mug.server.matches.waitroom import Waitroom
    from mug.server.tab import ParticipantTab

__all__ = ["Participant", "ParticipantRegistry"]

log = logging.getLogger("mug.server")

#: Seconds a participant may be away before their game is ended and they are dropped from memory.
IDLE_AFTER_S = 30 * 60.0
#: Seconds between commit attempts while the store cannot commit.
RETRY_S = 0.05
#: Letters of generated completion codes (no 0/O, 1/I/L: codes are typed in by hand).
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 10


def session_record(scene: GymScene) -> dict[str, Any]:
    """What a game session ran: the mug version and each agent's policy (kind, where it ran, and for a model
    what ``inference=`` asked, its config and the model's SHA-256)."""
    policies: dict[str, Any] = {}
    in_browser = set(scene.browser_policies("deployment"))
    for agent, spec in scene.policy_specs.items():
        where = "browser" if agent in in_browser or spec.kind == "human" else "server"
        entry: dict[str, Any] = {"kind": spec.kind, "where": where}
        if spec.config is not None:
            entry["inference"] = spec.where
            entry["config"] = spec.config.to_dict()
            entry["model_sha256"] = file_sha256(spec.config.onnx_path)
        policies[agent] = entry
    return {"scene_id": scene.scene_id, "mug_version": mug.__version__, "policies": policies}


class Participant:
    """One participant (see module docstring)."""

    def __init__(
        self,
        registry: ParticipantRegistry,
        participant_id: str,
        run: StagerRun,
        token: str,
        completion_code: str | None = None,
        ending: dict[str, Any] | None = None,
    ) -> None:
        self.registry, self.participant_id, self.run, self.token = registry, participant_id, run, token
        #: This participant's own completion code (given at the first ``EndScene(unique_code=True)``).
        self.completion_code = completion_code
        #: The end page the server made for them (``end_with``), if it ended their study early.
        self.ending = ending
        self.connection: ParticipantTab | None = None
        self.game: GameSession | BrowserSession | None = None
        #: Their seat's match while they play one, the waitroom while they wait for one.
        self.match: Match | None = None
        self.waiting: Waitroom | None = None
        #: Round trips and visibility, as the server measured them.
        self.monitor = Monitor()
        #: The study link's query parameters and the browser's User-Agent (captured when the page is opened).
        self.params: dict[str, str] = {}
        self.user_agent: str | None = None
        self._answers: dict[str, dict[str, Any]] | None = None
        self.outbox: list[bytes] = []
        self.entered = False
        self.left_at: float | None = time.monotonic()  # since when no tab is open (None while one is)

    # -- connection ---------------------------------------------------------------------

    def attach(self, connection: ParticipantTab) -> None:
        """Make ``connection`` this participant's tab; an older tab is told and closed."""
        old, self.connection = self.connection, connection
        self.left_at = None
        self.monitor.set_hidden(False)  # a new tab starts visible; the page says so after `ready` if it is hidden
        if old is not None:
            old.close_with(
                {
                    "type": "error",
                    "code": "replaced",
                    "message": "This study was opened in another tab or window; continue there.",
                    "fatal": True,
                }
            )
        self.outbox.clear()

    def resume(self) -> None:
        """The tab said ``ready`` (opened or reconnected): show where the participant is."""
        if self.ending is not None:
            self.send({"type": "scene", "scene": self.ending, "participant_id": self.participant_id})
        elif self.match is not None:
            self.match.rejoin(self.participant_id)
        elif self.waiting is not None:
            self.waiting.join(self)
        elif isinstance(self.run.current, ScreeningScene) and self.participant_id in self.registry.matches.screening:
            self.send({"type": "scene", "scene": self.run.current.client_metadata(), "participant_id": self.participant_id})
        elif self.game is not None and not self.game.done:
            self.game.receive(self.participant_id, {"type": "ready"})
        elif self.game is not None and not self.game.failure:
            self.game = None
            self.advance()
        elif not self.entered or self.game is not None or isinstance(self.run.current, (GymScene, ScreeningScene)):
            self.enter_scene()  # first time in this process, a failed game, a waitroom left while away: start the scene
        else:
            self._show(self.run.current)

    def link(self, params: dict[str, str], user_agent: str) -> None:
        """The study link's query parameters and the browser's User-Agent, from a page load of theirs (stored;
        a load without parameters beyond the id, e.g. a bookmark of the bare page, keeps the earlier ones)."""
        if set(params) - {"participant"} or not self.params:
            self.params = params
        self.user_agent = user_agent
        self.registry.store.set_link(self.participant_id, self.params, user_agent)

    def detach(self, connection: ParticipantTab) -> None:
        """The tab closed; a running game pauses."""
        if self.connection is connection:
            self.connection = None
            self.left_at = time.monotonic()
            if self.match is not None:
                self.match.left(self.participant_id)

    @property
    def complete(self) -> bool:
        """Whether the participant reached the end of the study (an end scene, or past the last scene)."""
        return self.run.done or isinstance(self.run.current, EndScene)

    def send(self, message: dict[str, Any], buffers: list[bytes] | None = None) -> None:
        """Queue a message; it leaves after the next store commit (see ``ParticipantRegistry.flush``)."""
        if message.get("type") == "scene" and self.registry.browser.preload:  # the page loads Pyodide early
            message = {**message, "preload": self.registry.browser.preload}
        self.outbox.append(encode_envelope(message, buffers or []))
        self.registry.pending[self.participant_id] = self

    # -- scenes -------------------------------------------------------------------------

    def enter_scene(self) -> None:
        """Show the current scene (start its game for an environment scene)."""
        scene = self.run.current
        store = self.registry.store
        self.entered = True
        store.save_participant(self.participant_id, self.run.progress(), None if scene is None else scene.scene_id, self.run.done)
        if scene is None:
            self.send({"type": "scene_end", "scene_id": None})
            return
        if isinstance(scene, GymScene) and scene.is_match:
            self.game = None
            self.registry.matches.enter(self, scene)
            return
        if isinstance(scene, ScreeningScene):
            self.game = None
            self.registry.matches.screen(self, scene)
            return
        if isinstance(scene, GymScene):
            session_id = f"{self.participant_id}-{scene.scene_id}-{self.run.repeat}-{secrets.token_hex(3)}"
            store.add_event(self.participant_id, "session", {"session_id": session_id, **session_record(scene)})
            if scene.environment_where == "browser":  # the browser runs it: see mug.server.browser_sessions
                self.game = BrowserSession(self, scene, session_id)
                self.game.start()
                return
            self.game = GameSession(
                scene,
                [self.participant_id],
                self.registry,
                SessionRecorder(store, self.participant_id),
                session_id=session_id,
                max_message_bytes=self.registry.max_message_bytes,
            )
            self.game.start()
            return
        self.game = None
        if isinstance(scene, EndScene):
            store.save_participant(self.participant_id, self.run.progress(), scene.scene_id, True)
            if scene.unique_code and self.completion_code is None:
                self.completion_code = self.registry.new_completion_code()
                store.set_completion_code(self.participant_id, self.completion_code)
            store.add_event(
                self.participant_id, "completed", {"scene_id": scene.scene_id, "completion_code": self._code_of(scene)}
            )
        self._show(scene)

    def end_with(self, reason: str, message: str) -> None:
        """End this participant's study now with a server-made end page: ``message`` and a completion code of
        their own (stored, logged). ``reason``: ``waitroom_timeout``, ``partner_lost``, ``hidden``, ``rtt``, ``screening``, ``match_error``."""
        store = self.registry.store
        if self.completion_code is None:
            self.completion_code = self.registry.new_completion_code()
            store.set_completion_code(self.participant_id, self.completion_code)
        scene = self.run.current
        scene_id = scene.scene_id if scene is not None else "end"
        self.ending = {
            "scene_id": f"{scene_id}-{reason}",
            "kind": "end",
            "header": "Thank you",
            "body": message,
            "button": "Finish",
            "completion_code": self.completion_code,
            "redirect_delay_s": 0.0,
            "redirects": False,
            "redirect_url": None,
            "reason": reason,
        }
        self.run.index = len(self.run.order)
        store.save_participant(self.participant_id, self.run.progress(), scene_id, True)
        store.set_ending(self.participant_id, self.ending)
        store.add_event(
            self.participant_id,
            "completed",
            {"scene_id": scene_id, "completion_code": self.completion_code, "reason": reason},
        )
        log.info("participant %s ended by the server (%s); completion code %s", self.participant_id, reason, self.completion_code)
        self.send({"type": "scene", "scene": self.ending, "participant_id": self.participant_id})

    def store_event(self, kind: str, data: dict[str, Any]) -> None:
        """Queue an event of this participant."""
        self.registry.store.add_event(self.participant_id, kind, data)

    def answers(self) -> dict[str, dict[str, Any]]:
        """Their survey answers so far, ``{scene_id: answers}`` (read from the store once, then kept)."""
        if self._answers is None:
            self._answers = self.registry.store.responses_of(self.participant_id)
        return self._answers

    def _code_of(self, scene: EndScene) -> str | None:
        return self.completion_code if scene.unique_code else scene.completion_code

    def _show(self, scene: Any) -> None:
        """Send a static or survey scene to the tab."""
        if scene is None:
            self.send({"type": "scene_end", "scene_id": None})
            return
        meta = scene.client_metadata()
        if isinstance(scene, EndScene):
            meta["completion_code"] = self._code_of(scene)
            meta["redirect_url"] = scene.redirect_for(self.participant_id, meta["completion_code"])
        self.send({"type": "scene", "scene": meta, "participant_id": self.participant_id})

    def advance(self) -> None:
        """Leave the current scene for the next one."""
        left = self.run.current
        self.registry.store.add_event(self.participant_id, "advance", {"scene_id": None if left is None else left.scene_id})
        self.run.advance()
        self.enter_scene()

    def receive(self, raw: Any) -> str | None:
        """One inbound message from this participant's tab; a bad one gets an ``error`` reply.
        Returns the message's type (``None`` for a bad one)."""
        try:
            message = decode_inbound(raw, max_bytes=self.registry.max_message_bytes)
            if message["type"] == "ready":
                self.resume()
            elif message["type"] == "visibility":
                if self.monitor.set_hidden(message["hidden"]):
                    self.store_event("visibility", {"hidden": message["hidden"], "match_id": self.match and self.match.match_id})
            elif self.match is not None:
                self.match.handle(self.participant_id, message)
            elif self.game is not None and not self.game.done:
                self.game.handle(self.participant_id, message)
            elif message["type"] == "steps":
                ack_finished(self, message)
            elif message["type"] in P2P_INBOUND_TYPES:
                # mesh traffic still in flight when the match ended (a relay batch, a late ICE candidate): the
                # mesh is gone, so is its purpose; no error for the page, no warning in the log
                log.debug("participant %s: %s after their match ended, dropped", self.participant_id, message["type"])
            else:
                self._static_message(message)
        except MessageError as exc:
            log.warning("participant %s: rejected a message: %s (%s)", self.participant_id, exc, exc.code)
            self.send({"type": "error", "code": exc.code, "message": str(exc), "fatal": False})
            return None
        return message["type"]

    def _static_message(self, message: dict[str, Any]) -> None:
        scene = self.run.current
        if message["type"] == "client_error":
            log.warning("participant %s reports: %s", self.participant_id, message["message"])
            self.registry.store.add_event(self.participant_id, "client_error", {"message": message["message"]})
            return
        if message["type"] == "act":
            raise MessageError("wrong_scene", "no environment scene is running")
        if scene is None or message.get("scene_id") != scene.scene_id:
            current = None if scene is None else scene.scene_id
            raise MessageError(
                "unknown_scene",
                f"{message['type']} for scene {message.get('scene_id')!r}, but the participant is in scene {current!r}",
            )
        if message["type"] == "response":
            if not isinstance(scene, SurveyScene):
                raise MessageError("wrong_scene", f"scene {scene.scene_id!r} is not a survey")
            try:
                answers = scene.clean_response(message["answers"])
            except ValueError as exc:
                raise MessageError("bad_response", str(exc)) from exc
            self.registry.store.add_response(self.participant_id, scene.scene_id, answers)
            self.answers()[scene.scene_id] = answers
            self.send({"type": "ack", "scene_id": scene.scene_id})
            self.advance()
            return
        if isinstance(scene, (SurveyScene, EndScene, ScreeningScene)) or self.ending is not None or self.waiting is not None:
            raise MessageError("wrong_scene", f"scene {scene.scene_id!r} cannot be skipped with advance")
        self.advance()


class ParticipantRegistry:
    """All participants of one deployment; also the engine's transport (messages queue per participant)."""

    def __init__(self, stager: Stager, store: Store, max_message_bytes: int) -> None:
        self.stager, self.store, self.max_message_bytes = stager, store, max_message_bytes
        self.browser = BrowserStudy([s for s in stager.scenes.values() if isinstance(s, GymScene)])
        self.verifier = Verifier(self)
        self.participants: dict[str, Participant] = {}
        #: Participants with queued messages since the last flush (a flush touches only these).
        self.pending: dict[str, Participant] = {}
        self._retry: asyncio.TimerHandle | None = None
        self._flush_handle: asyncio.Handle | None = None
        #: Waitrooms and matches (scenes with several ``mug.Human`` agents).
        self.matches = MatchRoom(self, store, stager.seed)

    def get_or_create(self, participant_id: str) -> Participant:
        """The participant, loaded from the store or newly started (with a fresh browser token)."""
        known = self.participants.get(participant_id)
        if known is not None:
            return known
        row = self.store.participant(participant_id)
        code = ending = None
        if row is not None:
            run = self.stager.resume(row["progress"])
            token, code, ending = row["metadata"].get("token", ""), row["completion_code"], row["metadata"].get("ending")
        else:
            run = self.stager.start(participant_id)
            token = secrets.token_urlsafe(18)
            self.store.save_participant(participant_id, run.progress(), None, False, {"token": token})
            if not self.store.commit():
                self._retry_soon()
        participant = self.participants[participant_id] = Participant(self, participant_id, run, token, code, ending)
        if row is not None:  # the study link and browser they came with (see ``Participant.link``)
            participant.params = dict(row["metadata"].get("params") or {})
            participant.user_agent = row["metadata"].get("user_agent")
        return participant

    def new_completion_code(self) -> str:
        """A completion code no participant has (checked against the store and those in memory)."""
        in_memory = {p.completion_code for p in self.participants.values()}
        while True:
            code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
            if code not in in_memory and not self.store.completion_code_taken(code):
                return code

    def send(self, client_id: str, message: dict[str, Any], buffers: list[bytes]) -> None:
        """Transport for ``GameSession``: client ids are participant ids."""
        participant = self.participants.get(client_id)
        if participant is not None:
            participant.send(message, buffers)

    def forget_idle(self, idle_after: float = IDLE_AFTER_S, now: float | None = None) -> list[str]:
        """Drop participants away for ``idle_after`` seconds (at once when complete); returns their ids.

        A game they left is ended first (an ``interrupted`` event); the store keeps everything.
        """
        now = time.monotonic() if now is None else now
        gone = []
        for participant_id, participant in list(self.participants.items()):
            left = participant.left_at
            if participant.connection is not None or left is None or participant_id in self.pending:
                continue
            if participant.match is not None or participant.waiting is not None or participant_id in self.matches.screening:
                continue  # the match room lets them go by its own rules
            if not participant.complete and now - left < idle_after:
                continue
            game = participant.game
            if game is not None and not game.done:
                game.interrupt(f"participant away for {now - left:.0f} s")
            del self.participants[participant_id]
            gone.append(participant_id)
        if gone:
            self.store.commit()
            log.info("dropped %d idle or finished participants from memory", len(gone))
        return gone

    def games(self) -> list[Participant]:
        """Participants whose server-side game is running and connected (ticking); none while the store cannot
        commit. Browser-side sessions never tick (the page steps the env)."""
        if self.store.failing_since is not None:
            return []
        return [
            p for p in self.participants.values() if type(p.game) is GameSession and not p.game.done and p.connection is not None
        ]

    def flush(self) -> None:
        """Commit the store, then deliver every queued message; finished games move on to the next scene.

        Only participants with queued messages are visited (a game that ends queues its ``scene_end``).
        If the commit fails, nothing is delivered and a retry is scheduled (see module docstring).
        """
        if not self.pending and not self.store.dirty:
            return
        for participant in list(self.pending.values()):
            if participant.game is not None and participant.game.done and not participant.game.failure:
                participant.game = None
                participant.advance()
            elif participant.match is not None:
                self.matches.settle(participant)
        stalled = self.store.failing_since is not None
        if not self.store.commit():
            self._retry_soon()
            return
        self.verifier.committed()
        if stalled:  # frames held back by the stall reach their clients only now: their waits start now
            for participant in self.participants.values():
                if participant.game is not None:
                    participant.game.restart_wait()
            for match in self.matches.matches.values():
                match.session.restart_wait()
        pending, self.pending = self.pending, {}
        for participant in pending.values():
            out, participant.outbox = participant.outbox, []
            if out and participant.connection is not None:
                participant.connection.deliver(out)

    def flush_soon(self) -> None:
        """:meth:`flush` once the event loop has handled every socket that is ready now (group commit).

        Browser-side sessions' ``steps`` that arrive together on many sockets then share one commit; their
        acks go out one loop iteration later. Without a running loop, at once."""
        if self._flush_handle is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        self._flush_handle = loop.call_soon(self._flush_now)

    def _flush_now(self) -> None:
        self._flush_handle = None
        self.flush()

    def _retry_soon(self) -> None:
        """Call :meth:`flush` again in ``RETRY_S`` (once; on the running event loop, if there is one)."""
        if self._retry is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._retry = loop.call_later(RETRY_S, self._flush_again)

    def _flush_again(self) -> None:
        self._retry = None
        self.flush()
