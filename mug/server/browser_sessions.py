"""The server's side of a browser-side scene (``runtime(environment="browser")``): it stores what the browser records.

The env and mug's engine run in the participant's browser (:class:`mug.browser.BrowserGame`
in a Pyodide worker); the server does not step anything. For each participant in such a
scene, :class:`BrowserSession` stands where a :class:`~mug.session.GameSession` stands for
a server-side scene:

* it sends the ``scene`` message, whose metadata carry ``environment`` (where:
  ``"browser"``, the Pyodide URL, the bundle URLs, packages, the package index and the
  portable ``spec`` with this participant's ``session_id`` and ``resume``);
* it checks every ``steps`` message (:meth:`BrowserSession.handle`): the session is this
  participant's, records come in ``seq`` order (a record at or below the committed ``seq``
  is a resend and skipped; a gap refuses the rest), step numbers go up by one within an
  episode, actions are in the agents' action spaces, sizes are bounded (message limits)
  and the session records no faster than real time allows (``fps`` x ``frame_skip`` with a
  margin); a bad message gets an ``error`` reply and a ``bad_steps`` event, and the game
  goes on;
* it stores the records with the session's new ``seq`` in one commit and, after that
  commit, answers ``steps_ack`` {session_id, seq} (queued messages leave only after the
  store commits);
* an ``env_error`` from the page (the env raised in the browser) is recorded as an
  ``env_error`` event with its traceback and logged; the scene then ends and the study
  goes on with the next scene;
* each finished episode is verified off the event loop (:mod:`mug.server.verify`).

**Reload rule: a reload restarts the episode.** Every ``ready`` gets the scene again
with a *new* ``session_id`` and ``resume`` = {episode: the first episode the latest
session has not finished, seq: 0}. A page whose worker is still running (a reconnect)
keeps its session and resends what was not acknowledged (the server still accepts every
session it gave this participant in this scene, also after a restart: they are in the
store); a reloaded page starts a new worker with the new session, which replays the
interrupted episode from its start (same seed). The earlier session's partial episode
stays in the data, verified as far as it went. Resuming from a snapshot is left to the
peer-to-peer rollback work, which needs snapshots the server can trust.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from mug.browser.scene import PortableSpace
from mug.errors import ConfigError
from mug.session.messages import MessageError, decode_inbound

if TYPE_CHECKING:
    from mug.scenes.gym_scene import GymScene
    from mug.server.participants import Participant

__all__ = ["BrowserSession", "BrowserStudy", "RATE_MARGIN", "ack_finished"]

log = logging.getLogger("mug.server")
#: How much faster than ``fps`` x ``frame_skip`` a session may record steps (it catches up after a stall).
RATE_MARGIN = 1.5
#: Steps a session may record beyond its real-time budget (start-up, clock skew).
RATE_SLACK = 300
#: Step fields verification compares.
VERIFIED_FIELDS = ("actions", "rewards", "terminated", "truncated", "obs_hash")
_AGENT_MAPS = ("actions", "sources", "rewards", "terminated", "truncated")
#: Event names a browser's engine records.
EVENTS = (
    "session", "scene_start", "episode_start", "episode_end", "scene_end", "error", "client_error", "interrupted",
    "late_act", "frames_dropped", "bad_tensor", "policy_restored",
)  # fmt: skip


class BrowserStudy:
    """The browser-side scenes of a study: their specs, client ``environment`` metadata and bundles.

    Built once at server start (every browser-side scene is checked then: a scene that cannot run in the
    browser stops the deployment with its ``ConfigError``)."""

    def __init__(self, scenes: list[GymScene]) -> None:
        from mug.browser.check import STATIC
        from mug.server.pybundle import Bundle, env_bundle, mug_bundle
        from mug.server.pyodide_files import pyodide_files

        self.specs: dict[str, dict[str, Any]] = {}
        self.environment: dict[str, dict[str, Any]] = {}
        #: Every bundle the study declares, by the 16 hex digits in its URL (all ``/pybundle/`` serves).
        self.bundles: dict[str, Bundle] = {}
        browser = [s for s in scenes if s.environment_where == "browser"]
        pyodide = pyodide_files(STATIC / "pyodide")  # the server's copy of Pyodide's core, under a content-hashed URL
        self.pyodide_version = pyodide.version or None
        self.preload: dict[str, Any] | None = None
        if not browser:
            return
        engine = mug_bundle()
        self.bundles[engine.sha16] = engine
        for scene in browser:
            self.specs[scene.scene_id] = scene.browser_spec()
            env = env_bundle(scene)
            wheels = [Bundle.wheel(path) for path in scene.wheels]
            for bundle in (env, *wheels):
                self.bundles[bundle.sha16] = bundle
            self.environment[scene.scene_id] = {
                "where": "browser",
                "pyodide": pyodide.url,
                "bundles": [engine.url, env.url],
                "wheels": [w.url for w in wheels],
                "packages": list(scene.packages),
                "package_index_url": scene.package_index_url or pyodide.default_package_index(),
            }
        indexes = {e["package_index_url"] for e in self.environment.values()}
        if len(indexes) > 1:  # a page starts Python once, with one package index
            raise ConfigError(
                f"browser-side scenes {sorted(self.environment)} name different package indexes {sorted(indexes)}: "
                "the participant's page starts Python with one; give every browser-side scene the same package_index_url"
            )
        self.preload = {
            "pyodide": pyodide.url,
            "bundles": sorted({u for e in self.environment.values() for u in e["bundles"]}),
            "package_index_url": indexes.pop(),
        }


def ack_finished(participant: Participant, message: dict[str, Any]) -> None:
    """A ``steps`` message for a browser session that is over (resent after a reconnect): ack what is stored."""
    store = participant.registry.store
    session_id = message["session_id"]
    if session_id not in store.browser_sessions(participant.participant_id, message["scene_id"]):
        raise MessageError("unknown_session", f"steps for session {session_id!r}: not a session of this participant")
    participant.send({"type": "steps_ack", "session_id": session_id, "seq": store.browser_seq(session_id)})


class _Ingest:
    """What the server tracks of one browser session it gave out."""

    def __init__(self, seq: int) -> None:
        self.seq = seq  # highest committed (or queued for the next commit) seq
        self.last: tuple[int, int] | None = None  # (episode, step) of the last step record
        self.ended: set[int] = set()
        self.steps = 0
        # the running episode's steps for verification: (step, its stored JSON text), no Python objects per field
        # (hundreds of sessions keep an episode each: the garbage collector would walk every one of them)
        self.episode_steps: list[tuple[int, str]] = []
        self.collecting: int | None = None  # the episode of ``episode_steps``
        self.started = time.monotonic()


class BrowserSession:
    """One participant in one browser-side scene (see module docstring)."""

    def __init__(self, participant: Participant, scene: GymScene, session_id: str) -> None:
        self.participant, self.scene, self.base_id = participant, scene, session_id
        self.registry = participant.registry
        self.browser = self.registry.browser
        self.spaces = {a: PortableSpace(d) for a, d in self.browser.specs[scene.scene_id]["action_spaces"].items()}
        #: Per agent with a small discrete space, its actions as a set (one lookup per recorded action).
        self.allowed = {
            a: frozenset(range(s.start, s.start + s.n)) for a, s in self.spaces.items() if s.kind == "discrete" and s.n <= 4096
        }
        self.agents = frozenset(scene.agents)
        self.done = False
        self.failure: str | None = None
        self.sessions: dict[str, _Ingest] = {}
        self.current: str | None = None
        for known in self.registry.store.browser_sessions(participant.participant_id, scene.scene_id):
            ingest = self.sessions[known] = _Ingest(self.registry.store.browser_seq(known))
            ingest.last, ingest.ended, ingest.steps = self.registry.store.browser_progress(known)

    @property
    def store(self) -> Any:
        return self.registry.store

    def start(self) -> None:
        """Send the scene (with a new session); the verifying child starts if it has not yet."""
        self._send_scene()
        self.registry.verifier.start()

    def _send_scene(self) -> None:
        ended = {e for ingest in self.sessions.values() for e in ingest.ended}  # sessions follow each other in time
        resume_episode = max(ended) + 1 if ended else 0
        if resume_episode >= self.scene.num_episodes:  # every episode was played (its scene_end was lost): it is over
            self.done = True
            self.registry.pending[self.participant.participant_id] = self.participant  # the next flush moves on
            return
        self.current = f"{self.base_id}-{len(self.sessions)}" if self.sessions else self.base_id
        self.sessions[self.current] = _Ingest(-1)
        spec = {**self.browser.specs[self.scene.scene_id], "session_id": self.current}
        if resume_episode:
            spec["resume"] = {"episode": resume_episode, "seq": 0}
        self.store.add_event(
            self.participant.participant_id,
            "browser_session",
            {"session_id": self.current, "scene_id": self.scene.scene_id, "resume_episode": resume_episode, "spec": spec},
        )
        meta = self.scene.client_metadata("deployment")
        meta["environment"] = {**self.browser.environment[self.scene.scene_id], "spec": spec}
        self.participant.send({"type": "scene", "scene": meta, "session_id": self.current})

    # -- GameSession's place in Participant --------------------------------------------

    def receive(self, client: str, raw: Any) -> None:
        """``ready`` (the only message Participant passes this way): the scene again, with a new session."""
        if decode_inbound(raw)["type"] == "ready":
            self._send_scene()

    def tick(self) -> bool:
        """Nothing steps on the server."""
        return False

    def restart_wait(self) -> None:
        """Nothing waits on the server."""

    def interrupt(self, reason: str) -> None:
        """The participant left for good."""
        if not self.done:
            self.done = True
            self.store.add_event(
                self.participant.participant_id,
                "interrupted",
                {"session_id": self.current, "scene_id": self.scene.scene_id, "reason": reason},
            )

    def handle(self, client: str, message: dict[str, Any]) -> None:
        """A ``steps`` or ``env_error`` message from the page; anything else is refused."""
        try:
            if message["type"] == "steps":
                self._on_steps(message)
            elif message["type"] == "env_error":
                self._on_env_error(message)
            elif message["type"] == "client_error":
                log.warning("participant %s reports: %r", self.participant.participant_id, message["message"])
                self.store.add_event(self.participant.participant_id, "client_error", {"message": message["message"]})
            else:
                raise MessageError(
                    "wrong_scene",
                    f"{message['type']!r} goes to the game in the browser, not the server, in scene {self.scene.scene_id!r}",
                )
        except MessageError as exc:
            log.warning("participant %s: rejected a message: %s (%s)", self.participant.participant_id, exc, exc.code)
            self.participant.send({"type": "error", "code": exc.code, "message": str(exc), "fatal": False})

    # -- ingestion ----------------------------------------------------------------------

    def _on_steps(self, message: dict[str, Any]) -> None:
        session_id = message["session_id"]
        ingest = self.sessions.get(session_id)
        if ingest is None or message["scene_id"] != self.scene.scene_id:
            raise MessageError(
                "unknown_session",
                f"steps for session {session_id!r} of scene {message['scene_id']!r}: not a session of this participant here",
            )
        fresh = [r for r in message["records"] if r["seq"] > ingest.seq]
        accepted, problem = [], None
        budget = (time.monotonic() - ingest.started) * self.scene.fps * self.scene.frame_skip * RATE_MARGIN + RATE_SLACK
        for r in fresh:
            if r["seq"] != ingest.seq + 1 + len(accepted):
                problem = f"record seq {r['seq']} does not follow seq {ingest.seq + len(accepted)} (records must come in order, none left out)"
                break
            problem = self._check(ingest, r, budget)
            if problem:
                break
            self._advance(ingest, r)
            accepted.append(r)
        if accepted:
            ingest.seq += len(accepted)
            texts = self.store.add_browser_records(
                self.participant.participant_id, session_id, self.scene.scene_id, accepted, ingest.seq
            )
            for r, text in zip(accepted, texts):
                self._collect(ingest, session_id, r, text)
        self.participant.send({"type": "steps_ack", "session_id": session_id, "seq": ingest.seq})
        if problem:
            self.store.add_event(
                self.participant.participant_id,
                "bad_steps",
                {"session_id": session_id, "scene_id": self.scene.scene_id, "problem": problem},
            )
            raise MessageError(
                "bad_steps", f"steps of session {session_id!r}: {problem}; records up to seq {ingest.seq} are stored"
            )
        if any(r["kind"] == "event" and r["name"] == "scene_end" for r in accepted):
            self.done = True  # the page played the scene to its end (in whichever of its sessions)

    def _check(self, ingest: _Ingest, r: dict[str, Any], budget: float) -> str | None:
        """Why record ``r`` cannot be stored (``None`` if it can); ``budget``: the steps the session may have
        recorded by now (see ``RATE_MARGIN``)."""
        if r["kind"] == "event":
            if r["name"] not in EVENTS:
                return f"record seq {r['seq']}: unknown event {r['name']!r}; expected one of {list(EVENTS)}"
            if r["name"] == "episode_end" and not _is_count(r["record"].get("episode")):
                return f"record seq {r['seq']}: episode_end without its episode"
            return None
        record, episode, step = r["record"], r["episode"], r["step"]
        last = ingest.last
        if last is None:
            if step != 0:
                return f"record seq {r['seq']}: the session's first step is step {step} of episode {episode}, not step 0"
        elif not (episode == last[0] and step == last[1] + 1) and not (episode > last[0] and step == 0):
            return (
                f"record seq {r['seq']}: step {step} of episode {episode} after step {last[1]} of episode {last[0]} "
                "(steps go up by one within an episode; a new episode starts at step 0)"
            )
        get, agents = record.get, self.agents
        actions, sources, rewards = get("actions"), get("sources"), get("rewards")
        terminated, truncated = get("terminated"), get("truncated")
        if not (
            type(actions) is dict
            and type(sources) is dict
            and type(rewards) is dict
            and type(terminated) is dict
            and type(truncated) is dict
            and actions.keys() <= agents
            and sources.keys() <= agents
            and rewards.keys() <= agents
            and terminated.keys() <= agents
            and truncated.keys() <= agents
        ):
            for name in _AGENT_MAPS:
                value = get(name)
                if type(value) is not dict or not value.keys() <= agents:
                    break
            return f"record seq {r['seq']}: {name} must map agents of {self.scene.agents} to values, got {str(value)[:80]}"
        for agent, action in actions.items():
            allowed = self.allowed.get(agent)
            if not (type(action) is int and action in allowed if allowed is not None else self.spaces[agent].contains(action)):
                return (
                    f"record seq {r['seq']}: action {action!r} of agent {agent!r} is not in its action space {self.spaces[agent]}"
                )
        for value in rewards.values():
            if type(value) is not float and type(value) is not int:
                return f"record seq {r['seq']}: rewards must be numbers"
        for flags in (terminated, truncated):
            for value in flags.values():
                if type(value) is not bool:
                    return f"record seq {r['seq']}: terminated and truncated must be true or false"
        decision, obs_hash = get("decision"), get("obs_hash")
        if type(decision) is not int or decision < 0 or type(obs_hash) is not str or len(obs_hash) != 16:
            return f"record seq {r['seq']}: a step record needs its decision (integer) and obs_hash (16 hex digits)"
        if ingest.steps + 1 > budget:
            return f"record seq {r['seq']}: {ingest.steps + 1} steps recorded faster than the scene's {self.scene.fps} fps allows"
        return None

    def _advance(self, ingest: _Ingest, r: dict[str, Any]) -> None:
        """Record ``r`` (checked) as the session's latest: what the next record's checks compare with."""
        if r["kind"] == "step":
            ingest.last = (r["episode"], r["step"])
            ingest.steps += 1
        elif r["name"] == "episode_end":
            ingest.ended.add(r["record"]["episode"])

    def _collect(self, ingest: _Ingest, session_id: str, r: dict[str, Any], text: str | None) -> None:
        """Keep step ``r`` (``text``: its stored JSON) for verifying its episode; verify an episode at its end."""
        if r["kind"] == "step":
            if r["episode"] != ingest.collecting:
                ingest.collecting, ingest.episode_steps = r["episode"], []
            ingest.episode_steps.append((r["step"], text))
        elif r["name"] == "episode_end":
            episode = r["record"]["episode"]
            kept = ingest.episode_steps if ingest.collecting == episode else []
            ingest.episode_steps = []
            if kept and kept[0][0] == 0:  # the whole episode came through this server process
                self.registry.verifier.after_commit(
                    self.participant.participant_id, self.browser.specs[self.scene.scene_id], session_id, episode, kept
                )

    def _on_env_error(self, message: dict[str, Any]) -> None:
        if message["session_id"] not in self.sessions:
            raise MessageError(
                "unknown_session", f"env_error for session {message['session_id']!r}: not a session of this participant here"
            )
        log.error(
            "participant %s, scene %s: the env failed in the browser at episode %s step %s: %s",
            self.participant.participant_id,
            self.scene.scene_id,
            message["episode"],
            message["step"],
            message["message"],
        )
        data = {k: v for k, v in message.items() if k != "type"}
        self.store.add_event(self.participant.participant_id, "env_error", {**data, "scene_id": self.scene.scene_id})
        self.done = True  # the scene ends; the study goes on (at the next flush, which visits pending participants)
        self.registry.pending[self.participant.participant_id] = self.participant


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
