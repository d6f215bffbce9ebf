"""``MatchSession``: the engine's ``GameSession`` with seats that can change hands.

A match plays one :class:`~mug.session.engine.GameSession` whose clients are
the members' participant ids (client *i* plays the scene's *i*-th Human
agent). On top of the engine a seat can be played by a fill-in policy
(``waitroom(fill_with=...)``): a seat nobody took (``on_timeout="ai"``) or a
lost member's seat (``on_partner_loss="ai"``). A member who leaves has their
held keys released at once.

Recorded sources of human seats name their participant: ``human:<participant_id>``
(their keys gave the action) or ``default:<participant_id>`` (none of their keys
mapped to an action, or they were away). A seat played by a fill-in policy has
that policy's source (``server_policy`` or ``random``).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np

from mug.errors import PolicyError
from mug.inference.runtime import PolicyRuntime
from mug.scenes.gym_scene import GymScene
from mug.scenes.policies import PolicySpec
from mug.session.engine import BROWSER_WAIT_S, LOAD_WAIT_S, GameSession
from mug.session.inputs import contains_action
from mug.session.recording import Recorder
from mug.session.seeds import fnv1a32
from mug.session.transport import Transport

__all__ = ["MatchSession", "EMPTY_SEAT"]

#: Client id prefix of a seat no participant holds (messages to it go nowhere).
EMPTY_SEAT = "seat:"


class MatchSession(GameSession):
    """A game of one match (see module docstring).

    Args:
        scene: the match's scene.
        clients: one client id per Human agent, in the scene's order: a participant id,
            or ``EMPTY_SEAT + agent`` for a seat played by its fill-in policy from the start.
        fills: the fill-in policy of each Human agent that has one.
    """

    def __init__(
        self,
        scene: GymScene,
        clients: Sequence[str],
        transport: Transport,
        recorder: Recorder | None,
        fills: dict[str, PolicySpec],
        **options: Any,
    ) -> None:
        super().__init__(scene, clients, transport, recorder, **options)
        self.fills = fills
        self._fill_runtimes: dict[str, PolicyRuntime] = {}
        for agent, spec in fills.items():  # loaded now (not in a frame tick); reset at episode/scene bounds like any model
            if spec.kind == "model":
                runtime = PolicyRuntime(spec.config, seed=self.scene.policy_seed, name=agent)  # type: ignore[arg-type]
                self._fill_runtimes[agent] = self._runtimes[agent] = runtime
        #: Members whose tab is gone: a lockstep step does not wait for them (their seat takes the default action).
        self.away: set[str] = set()
        self._fill_spaces: dict[str, Any] = {}
        #: Human agents played by their fill-in policy now.
        self.ai_seats: set[str] = set()
        for client in self.clients:
            if client.startswith(EMPTY_SEAT):
                self.ai_seats.update(self.human_of[client])
        runner = next((c for c in self.clients if not c.startswith(EMPTY_SEAT)), self.clients[0])
        self.runs_models = {c: (self.client_models if c == runner else []) for c in self.clients}

    @property
    def runner(self) -> str:
        """The client that runs the browser-side policies."""
        return next(c for c, agents in self.runs_models.items() if agents or not self.client_models)

    def _wait_limit(self) -> float:
        """As the engine's, with the runner (not necessarily the first seat) loading the browser-side policies."""
        if self.runner not in self._loaded:
            return LOAD_WAIT_S
        asked = self.scene.act_timeout_s
        return asked if asked is not None else BROWSER_WAIT_S

    # -- seats --------------------------------------------------------------------------

    def release(self, client: str) -> None:
        """``client`` left: their held keys and queued presses are dropped (their seat takes the default action)."""
        self._held[client] = []
        self._presses[client] = []
        self.away.add(client)
        if self.scene.step_mode == "lockstep" and not self.done and self._everyone_acted():
            self._advance()

    def hand_to_ai(self, agent: str) -> None:
        """The fill-in policy plays ``agent`` from the next step on (a model's hidden state starts afresh)."""
        self.ai_seats.add(agent)
        if agent in self._fill_runtimes:
            self._fill_runtimes[agent].reset(agent)
        if self.scene.step_mode == "lockstep" and not self.done and self._everyone_acted():
            self._advance()

    def hand_back(self, agent: str) -> None:
        """``agent``'s participant plays it again."""
        self.ai_seats.discard(agent)

    def move_runner(self, to: str) -> None:
        """Browser-side policies move to client ``to`` (the runner left); it gets the scene again."""
        if not self.client_models or self.runner == to:
            return
        self.runs_models = {c: (self.client_models if c == to else []) for c in self.clients}
        self._on_ready(to)

    def _on_ready(self, client: str) -> None:
        """A member (re)connected: the scene and the current frame go to them only (the partners have it)."""
        self.away.discard(client)
        everyone, self.clients = self.clients, [client]
        try:
            super()._on_ready(client)
        finally:
            self.clients = everyone

    def _everyone_acted(self) -> bool:
        if self._awaited():  # e.g. the new runner's act for a frame sent before the hand-over carries no results
            return False
        return all(
            c in self._acted
            for c in self.clients
            if self.runs_models[c] or (c not in self.away and any(h not in self.ai_seats for h in self.human_of.get(c, [])))
        )

    # -- stepping -----------------------------------------------------------------------

    def _choose(self) -> tuple[dict[str, Any], dict[str, str], dict[str, dict[str, Any]]]:
        actions, sources, outputs = super()._choose()
        for agent in self.scene.humans:
            if agent not in actions:
                continue
            if agent in self.ai_seats:
                actions[agent], sources[agent], out = self._fill_action(agent)
                if out is not None:
                    outputs[agent] = out
            else:
                sources[agent] = f"{sources[agent]}:{self._client_of[agent]}"
        return actions, sources, outputs

    def _fill_action(self, agent: str) -> tuple[Any, str, dict[str, Any] | None]:
        spec = self.fills[agent]
        obs = self._obs[agent]
        if spec.kind == "model":
            out = self._fill_runtimes[agent].step(obs, agent)
            return out.action, "server_policy", {"logits": out.logits, "states": out.states}
        if spec.kind == "callable":
            env_id = self.env.ids[agent]
            action = spec.fn(obs, env_id)  # type: ignore[misc]
            if not contains_action(self.scene.action_space(agent), action):
                raise PolicyError(
                    f"fill-in policy of agent {env_id!r} returned {action!r}, not an action of {self.scene.action_space(agent)}",
                    policy=agent,
                )
            return action, "server_policy", None
        space = self._fill_spaces.get(agent)
        if space is None:
            space = self._fill_spaces[agent] = copy.deepcopy(self.scene.action_space(agent))
            space.seed(int(np.random.SeedSequence([self.scene.policy_seed, fnv1a32(agent), 1]).generate_state(1)[0]))
        return space.sample(), "random", None
