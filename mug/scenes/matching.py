"""Options of scenes played by several participants together: waitroom, matchmaking, partner loss, monitoring.

A :class:`~mug.GymScene` with two or more ``mug.Human`` agents is played by a
*match*: one game, one seat per Human agent, each seat a participant. These
option classes hold what ``GymScene.waitroom(...)``, ``.matchmaking(...)``,
``.multiplayer(...)`` and ``.monitoring(...)`` were given, checked when the
method is called (a bad value raises :class:`~mug.ConfigError` naming the
field). The server side that reads them lives in :mod:`mug.server.matches`.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, Self
from urllib.parse import quote

from mug.errors import ConfigError
from mug.scenes.checks import integer, one_of
from mug.scenes.policies import PolicySpec, file_sha256, policy_spec

__all__ = [
    "Candidate",
    "MatchBuilder",
    "MatchmakingOptions",
    "MonitoringOptions",
    "MultiplayerOptions",
    "WaitroomOptions",
    "ON_TIMEOUT",
    "ON_PARTNER_LOSS",
    "AFTER_PARTNER_LOSS",
    "FILL_MODEL_PREFIX",
]

ON_TIMEOUT = ("end", "skip", "ai")
ON_PARTNER_LOSS = ("end", "wait", "ai")
AFTER_PARTNER_LOSS = ("next", "end")
MODES = ("server", "p2p")
#: The agent part of a fill-in model's URL (``MatchBuilder.fill_model_path``): ``fill_with:<agent>``.
FILL_MODEL_PREFIX = "fill_with:"
#: Upper bounds of ``multiplayer(input_delay=..., max_prediction=...)``, in frames.
MAX_INPUT_DELAY, MAX_PREDICTION = 30, 120


@dataclass(frozen=True)
class Candidate:
    """A participant waiting for a match, as a custom matchmaker sees them.

    Attributes:
        participant_id: the participant's id.
        waited_s: seconds since they entered the waitroom (server clock).
        rtt_ms: the median of the server's recent WebSocket ping round trips to them, ``None`` before the first.
        params: the query parameters of their study link (``{"PROLIFIC_PID": ..., ...}``).
        answers: their earlier survey answers, ``{scene_id: {question: answer}}``.
        partners: ids of everyone they were in a match with before.
    """

    participant_id: str
    waited_s: float
    rtt_ms: float | None
    params: dict[str, str] = field(default_factory=dict)
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)
    partners: frozenset[str] = frozenset()


def seconds(value: Any, field_name: str, low: float, high: float, *, optional: bool = False) -> float | None:
    """``value`` as seconds in ``low..high`` (``None`` allowed if ``optional``); else a ``ConfigError``."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not low <= value <= high:
        extra = " or None" if optional else ""
        raise ConfigError(f"{field_name}: expected a number in {low:g}..{high:g}{extra}, got {value!r}", field=field_name)
    return float(value)


def _text(value: Any, field_name: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{field_name}: expected a string, got {value!r}", field=field_name)
    return value


def _callable(value: Any, field_name: str) -> Callable[..., Any] | None:
    if value is not None and not callable(value):
        raise ConfigError(f"{field_name}: expected a function or None, got {value!r}", field=field_name)
    return value


def _fill_spec(value: Any, field_name: str) -> PolicySpec:
    """A fill-in policy: a ModelConfig (run on the server), ``mug.Random`` or a callable; never ``mug.Human``."""
    spec = policy_spec(field_name, value, "server")
    if spec.kind == "human":
        raise ConfigError(f"{field_name}: a fill-in policy plays a seat nobody holds; mug.Human cannot", field=field_name)
    return spec


@dataclass(frozen=True)
class WaitroomOptions:
    """``GymScene.waitroom(...)``; see that method."""

    timeout_s: float = 120.0
    on_timeout: str = "end"
    fill_with: PolicySpec | dict[Hashable, PolicySpec] | None = None
    show_count: bool = True
    message: str = "Waiting for other participants…"
    timeout_message: str = "Nobody else arrived in time. Thank you for waiting; here is your completion code."
    leave_grace_s: float = 10.0

    @classmethod
    def make(
        cls,
        timeout_s: Any,
        on_timeout: Any,
        fill_with: Any,
        show_count: Any,
        message: Any,
        timeout_message: Any,
        leave_grace_s: Any,
    ) -> WaitroomOptions:
        """Checked options (``ConfigError`` naming the field)."""
        fill: PolicySpec | dict[Hashable, PolicySpec] | None = None
        if isinstance(fill_with, Mapping):
            if not fill_with:
                raise ConfigError("fill_with: expected a policy or a non-empty dict of agent -> policy", field="fill_with")
            fill = {agent: _fill_spec(policy, f"fill_with[{agent!r}]") for agent, policy in fill_with.items()}
        elif fill_with is not None:
            fill = _fill_spec(fill_with, "fill_with")
        on_timeout = one_of(on_timeout, "on_timeout", ON_TIMEOUT)
        if on_timeout == "ai" and fill is None:
            raise ConfigError('on_timeout="ai" fills the missing seats with fill_with=...; give it a policy', field="fill_with")
        if not isinstance(show_count, bool):
            raise ConfigError(f"show_count: expected True or False, got {show_count!r}", field="show_count")
        return cls(
            timeout_s=seconds(timeout_s, "timeout_s", 1, 3600),  # type: ignore[arg-type]
            on_timeout=on_timeout,
            fill_with=fill,
            show_count=show_count,
            message=_text(message, "message"),
            timeout_message=_text(timeout_message, "timeout_message"),
            leave_grace_s=seconds(leave_grace_s, "leave_grace_s", 0, 600),  # type: ignore[arg-type]
        )

    def fill_for(self, agent: str, agent_ids: Mapping[str, Hashable]) -> PolicySpec | None:
        """The fill-in policy of ``agent`` (its wire id; a dict names agents by the env's ids or wire ids)."""
        if isinstance(self.fill_with, dict):
            for key in (agent_ids.get(agent, agent), agent):
                if key in self.fill_with:
                    return self.fill_with[key]
            return None
        return self.fill_with


@dataclass(frozen=True)
class MatchmakingOptions:
    """``GymScene.matchmaking(...)``; see that method."""

    matchmaker: Callable[..., Any] | None = None
    max_rtt_ms: float | None = None
    keep_groups: bool = False
    seats: Callable[..., Any] | None = None

    @classmethod
    def make(cls, matchmaker: Any, max_rtt_ms: Any, keep_groups: Any, seats: Any) -> MatchmakingOptions:
        """Checked options (``ConfigError`` naming the field)."""
        if not isinstance(keep_groups, bool):
            raise ConfigError(f"keep_groups: expected True or False, got {keep_groups!r}", field="keep_groups")
        return cls(
            matchmaker=_callable(matchmaker, "matchmaker"),
            max_rtt_ms=seconds(max_rtt_ms, "max_rtt_ms", 1, 60_000, optional=True),
            keep_groups=keep_groups,
            seats=_callable(seats, "seats"),
        )


@dataclass(frozen=True)
class MultiplayerOptions:
    """``GymScene.multiplayer(...)``; see that method."""

    mode: str = "server"
    on_partner_loss: str = "end"
    reconnect_timeout_s: float = 30.0
    after_partner_loss: str = "next"
    partner_loss_message: str = "Your partner left the game."
    input_delay: int = 2
    max_prediction: int = 8

    @classmethod
    def make(
        cls,
        mode: Any,
        on_partner_loss: Any,
        reconnect_timeout_s: Any,
        after_partner_loss: Any,
        partner_loss_message: Any,
        input_delay: Any = 2,
        max_prediction: Any = 8,
    ) -> MultiplayerOptions:
        """Checked options (``ConfigError`` naming the field)."""
        mode = one_of(mode, "mode", MODES)
        on_partner_loss = one_of(on_partner_loss, "on_partner_loss", ON_PARTNER_LOSS)
        return cls(
            mode=mode,
            on_partner_loss=on_partner_loss,
            reconnect_timeout_s=seconds(reconnect_timeout_s, "reconnect_timeout_s", 0, 3600),  # type: ignore[arg-type]
            after_partner_loss=one_of(after_partner_loss, "after_partner_loss", AFTER_PARTNER_LOSS),
            partner_loss_message=_text(partner_loss_message, "partner_loss_message"),
            input_delay=integer(input_delay, "input_delay", 0, MAX_INPUT_DELAY),
            max_prediction=integer(max_prediction, "max_prediction", 1, MAX_PREDICTION),
        )


@dataclass(frozen=True)
class MonitoringOptions:
    """``GymScene.monitoring(...)``; see that method."""

    max_rtt_ms: float | None = None
    rtt_window: int = 10
    rtt_violations: int = 5
    warn_hidden_s: float | None = None
    max_hidden_s: float | None = None
    exclusion_message: str = "You were removed from this study because your connection or attention was lost."

    @classmethod
    def make(
        cls, max_rtt_ms: Any, rtt_window: Any, rtt_violations: Any, warn_hidden_s: Any, max_hidden_s: Any, exclusion_message: Any
    ) -> MonitoringOptions:
        """Checked options (``ConfigError`` naming the field)."""
        window = integer(rtt_window, "rtt_window", 1, 1000)
        violations = integer(rtt_violations, "rtt_violations", 1, 1000)
        if violations > window:
            raise ConfigError(
                f"rtt_violations: {violations} violations cannot happen within a window of rtt_window={window} samples",
                field="rtt_violations",
            )
        warn = seconds(warn_hidden_s, "warn_hidden_s", 0, 3600, optional=True)
        hidden = seconds(max_hidden_s, "max_hidden_s", 0, 3600, optional=True)
        if warn is not None and hidden is not None and warn >= hidden:
            raise ConfigError(
                f"warn_hidden_s: the warning ({warn:g} s) must come before the exclusion (max_hidden_s={hidden:g} s)",
                field="warn_hidden_s",
            )
        return cls(
            max_rtt_ms=seconds(max_rtt_ms, "max_rtt_ms", 1, 60_000, optional=True),
            rtt_window=window,
            rtt_violations=violations,
            warn_hidden_s=warn,
            max_hidden_s=hidden,
            exclusion_message=_text(exclusion_message, "exclusion_message"),
        )


class MatchBuilder:
    """The builder methods of a scene played by several participants (mixed into :class:`~mug.GymScene`, which
    holds the option objects they set)."""

    waitroom_options: WaitroomOptions
    matchmaking_options: MatchmakingOptions
    multiplayer_options: MultiplayerOptions
    monitoring_options: MonitoringOptions
    # the scene's own (GymScene)
    scene_id: str
    environment_where: str
    humans: list[str]
    is_match: bool
    agent_ids: dict[str, Any]

    def _check_match_ready(self) -> None:
        """The match rules of :meth:`~mug.GymScene.check_ready`: what a P2P match needs, and a fill-in policy for
        every Human agent where one may be needed; ``ConfigError`` naming the option at fault."""
        if self.multiplayer_options.mode == "p2p":
            if self.environment_where != "browser" or not 2 <= len(self.humans) <= 4:
                raise ConfigError(
                    f'scene {self.scene_id!r}: multiplayer(mode="p2p") runs the game in each member\'s browser: it needs '
                    'runtime(environment="browser") and 2 to 4 mug.Human agents',
                    field="mode",
                )
            if self.waitroom_options.on_timeout == "ai":
                raise ConfigError(
                    f'scene {self.scene_id!r}: multiplayer(mode="p2p") needs a participant in every Human seat; '
                    'waitroom(on_timeout="ai") is not supported with it (use "end" or "skip")',
                    field="on_timeout",
                )
            if self.multiplayer_options.on_partner_loss == "ai":
                self._check_p2p_fills()
        # any seat may end up played by the fill-in policy (seats are shuffled): each Human agent needs one
        needs = [
            rule
            for rule, used in (
                ('multiplayer(on_partner_loss="ai")', self.multiplayer_options.on_partner_loss == "ai"),
                ('waitroom(on_timeout="ai")', self.waitroom_options.on_timeout == "ai"),
            )
            if used
        ]
        if self.is_match and needs:
            missing = [self.agent_ids.get(a, a) for a in self.humans if self.waitroom_options.fill_for(a, self.agent_ids) is None]
            if missing:
                raise ConfigError(
                    f"scene {self.scene_id!r}: {' and '.join(needs)} needs waitroom(fill_with=...) for every Human agent "
                    f"(any seat may be the empty one); none for {missing}",
                    field="fill_with",
                )

    def _check_p2p_fills(self) -> None:
        """In a P2P match the fill-in policy runs in every member's browser, identically: only a ``ModelConfig``
        (ONNX, run by the page's runtime as the scene's P2P AI seats are)."""
        for agent in self.humans:
            spec = self.waitroom_options.fill_for(agent, self.agent_ids)
            if spec is not None and spec.kind != "model":
                what = "a Python callable (it runs on the server)" if spec.kind == "callable" else f"mug.{spec.kind.title()}"
                raise ConfigError(
                    f'scene {self.scene_id!r}: multiplayer(mode="p2p", on_partner_loss="ai") plays a lost seat in every '
                    f"member's browser; the fill-in policy of agent {self.agent_ids.get(agent, agent)!r} is {what}, which "
                    "cannot run there; supported: a ModelConfig (ONNX), run by each page's runtime",
                    field="fill_with",
                )

    def fill_policies(self) -> dict[str, PolicySpec]:
        """Each Human agent's fill-in policy (``waitroom(fill_with=...)``), for those that have one."""
        fills = {a: self.waitroom_options.fill_for(a, self.agent_ids) for a in self.humans}
        return {a: spec for a, spec in fills.items() if spec is not None}

    def fill_model_path(self, agent: str) -> str:
        """Relative URL of ``agent``'s fill-in ONNX model in a P2P match (named by its content, as
        ``GymScene.model_path``; its agent part is :data:`FILL_MODEL_PREFIX` plus the agent)."""
        config = self.fill_policies()[agent].config
        if config is None:
            raise ConfigError(f"fill_model_path: agent {agent!r} of scene {self.scene_id!r} has no fill-in ONNX model")
        digest = file_sha256(config.onnx_path)[:16]
        return f"models/{self.scene_id}/{quote(FILL_MODEL_PREFIX + agent, safe='')}/{digest}.onnx"

    def waitroom(
        self,
        timeout_s: float = 120.0,
        on_timeout: str = "end",
        fill_with: Any = None,
        show_count: bool = True,
        message: str = "Waiting for other participants…",
        timeout_message: str = "Nobody else arrived in time. Thank you for waiting; here is your completion code.",
        leave_grace_s: float = 10.0,
    ) -> Self:
        """The waitroom of a scene with several ``mug.Human`` agents (one participant per Human agent).

        Participants wait (seeing ``message``, how many wait and are needed unless
        ``show_count=False``, and the time left) until a group is formed, at most
        ``timeout_s`` seconds (the server's clock). Then ``on_timeout``:

        - ``"end"``: an end page with ``timeout_message`` and a completion code of their own;
        - ``"skip"``: on to the next scene of their study;
        - ``"ai"``: the match starts with ``fill_with`` in the missing seats.

        ``fill_with`` is a policy (``ModelConfig`` run on the server, ``mug.Random`` or a
        callable ``(observation, agent_id) -> action``) or a dict ``{agent: policy}``; it also
        takes over a lost partner's seat with ``multiplayer(on_partner_loss="ai")`` (in a
        ``multiplayer(mode="p2p")`` match only a ``ModelConfig``, run in every member's browser). A
        participant whose tab stays closed for ``leave_grace_s`` seconds leaves the waitroom.
        """
        self.waitroom_options = WaitroomOptions.make(
            timeout_s, on_timeout, fill_with, show_count, message, timeout_message, leave_grace_s
        )
        return self

    def matchmaking(
        self,
        matchmaker: Callable[..., Any] | None = None,
        max_rtt_ms: float | None = None,
        keep_groups: bool = False,
        seats: Callable[..., Any] | None = None,
    ) -> Self:
        """Who is matched with whom, and who gets which seat.

        - ``matchmaker(candidates, seats) -> list[participant_id] | None``: given the waiting
          :class:`mug.Candidate` s (oldest first) and the number of seats, a group to start
          now, or ``None`` to wait. Default: first come, first served. If it raises or returns
          something that is not a group of waiting candidates, the error is logged and the
          group is formed first come, first served.
        - ``max_rtt_ms``: only participants whose measured round trip (the median of the
          server's WebSocket pings) is at most this are matched; one without a measurement waits.
        - ``keep_groups``: participants who played an earlier match of this study together are
          matched together again (if one of them is gone, the waitroom's ``on_timeout`` applies).
        - ``seats(participant_ids, agents, seed) -> {agent: participant_id}``: who plays which
          Human agent. Default: a shuffle seeded by the study seed and the match id. Recorded.
        """
        self.matchmaking_options = MatchmakingOptions.make(matchmaker, max_rtt_ms, keep_groups, seats)
        return self

    def multiplayer(
        self,
        mode: str = "server",
        on_partner_loss: str = "end",
        reconnect_timeout_s: float = 30.0,
        after_partner_loss: str = "next",
        partner_loss_message: str = "Your partner left the game.",
        input_delay: int = 2,
        max_prediction: int = 8,
    ) -> Self:
        """How a match is played and what happens when a member leaves.

        ``mode="server"``: the server steps the one game and streams its frames. ``mode="p2p"``:
        each member's browser runs the game (``runtime(environment="browser")`` is required) and the
        browsers exchange inputs peer to peer with rollback: a local input is applied ``input_delay``
        frames after it is read (0..30), and a peer predicts at most ``max_prediction`` frames (1..120)
        ahead of the last frame whose inputs it has from everyone before it waits. The server stores each
        frame once, as the browsers confirmed it, compares the browsers' records, and verifies each finished
        episode by re-simulating it (see :mod:`mug.server.matches.p2p`).

        A member whose tab closes (or who is excluded) is *lost*; their held keys are
        released at once. If they come back within ``reconnect_timeout_s`` they take their
        seat back at the current step. Meanwhile ``on_partner_loss``:

        - ``"end"``: the game goes on (the lost seat takes the default action); after the
          timeout the match ends and everyone is shown ``partner_loss_message``;
        - ``"wait"``: the game pauses for everyone, with a countdown; after the timeout, as ``"end"``;
        - ``"ai"``: the waitroom's ``fill_with`` plays the seat until they return (recorded as
          ``seat_ai`` / ``seat_returned`` events); past the timeout the lost member moves on and
          the policy plays on.

        With ``mode="p2p"``, ``"end"`` and ``"wait"``: without a lost member's inputs no peer can confirm
        frames, so the others' games stall ``max_prediction`` frames ahead either way; ``"wait"`` also shows
        them the pause with its countdown (and does not count their hidden time meanwhile). A member back in
        time goes on where they were (a reloaded page gets the match's state from a peer). ``"ai"``: once a
        member has been lost for :data:`mug.server.matches.match.P2P_AI_GRACE_S` (3 s; a dropped connection
        back sooner keeps the seat, the others stall meanwhile) the fill-in policy takes the seat for good, on
        every remaining member's page, from a frame the pages agree on (frames before it keep the member's
        real inputs; the ``seat_ai`` event records the frame); the others play on to the match's end, and the
        record and its verification cover the whole match. The lost member then moves on, as after the
        timeout (``match_left`` with reason ``seat_ai``; a reload takes longer than the grace). ``fill_with`` must then be a
        ``ModelConfig`` (every page runs it, as it runs the scene's AI seats; a ``ConfigError`` otherwise).
        ``after_partner_loss``: where members go when a match ends that way: ``"next"`` scene, or ``"end"``
        (an end page with the message and a completion code).
        """
        self.multiplayer_options = MultiplayerOptions.make(
            mode, on_partner_loss, reconnect_timeout_s, after_partner_loss, partner_loss_message, input_delay, max_prediction
        )
        return self

    def monitoring(
        self,
        max_rtt_ms: float | None = None,
        rtt_window: int = 10,
        rtt_violations: int = 5,
        warn_hidden_s: float | None = None,
        max_hidden_s: float | None = None,
        exclusion_message: str = "You were removed from this study because your connection or attention was lost.",
    ) -> Self:
        """Exclusion rules of a match, decided by the server from what it measured (and recorded with the values).

        - ``max_rtt_ms``: a member with ``rtt_violations`` of their last ``rtt_window`` ping round
          trips above it is excluded.
        - ``warn_hidden_s`` / ``max_hidden_s``: a member whose tab has been hidden (the page reports
          visibility changes, the server times them) this long in one stretch is warned
          (``notice`` ``hidden_warning``) / excluded.

        The excluded member sees ``exclusion_message`` with a completion code; the partners are
        handled as for a lost partner (``multiplayer(on_partner_loss=...)``).
        """
        self.monitoring_options = MonitoringOptions.make(
            max_rtt_ms, rtt_window, rtt_violations, warn_hidden_s, max_hidden_s, exclusion_message
        )
        return self
