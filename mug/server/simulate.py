"""Simulated participants: the participant page's own code, run under Node, going through a deployed study.

Use them to pilot a study before paying anyone::

    stats = await SimulatedParticipant(url, "pilot1", answers={"helpful": 6}).run()

or to fill a multi-human scene, a waitroom or a load test with many at once, all in one Node process::

    results = await mug.simulate(url, 50, keys=["ArrowLeft", "ArrowRight"])

Each one joins as a browser does (GET the study page for its participant id and cookie, then the
WebSocket), continues text pages, answers surveys (``answers`` by question id, else 1 / the first
option / ""), presses ``keys`` in turn (one press a frame) in environment scenes, runs the
browser-side policies with the JS runtime, and waits in waitrooms. What it sends is built by the
page's own modules (``js/src/client/player.js`` and ``messages.js``, driven by
``js/src/client/bot.js``; the runner is ``mug/static/simulate.mjs``), so a simulated participant
cannot drift from what a participant's browser does. Needs Node.js >= 20 on ``PATH``.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from itertools import pairwise
from pathlib import Path
from typing import Any

from tornado.httpclient import AsyncHTTPClient

from mug.errors import MugError

__all__ = ["ParticipantStats", "SimulatedParticipant", "join", "simulate"]

#: The bundled runner (built from ``js/bin/simulate.mjs``).
RUNNER = Path(__file__).resolve().parent.parent / "static" / "simulate.mjs"


@dataclass
class ParticipantStats:
    """What one simulated participant saw.

    Times are seconds since the epoch (``time.time()``'s clock, taken in the Node process), latencies
    and gaps seconds. ``frame_log`` holds one ``(episode, step, frame_hash, time)`` per frame received,
    where ``frame_hash`` covers what the frame shows (render payload and HUD, not the observations only
    this client is sent): the members of one match see the same hashes for the same steps.
    ``latency_log`` holds one ``(time, seconds)`` per act: from sending it to the next frame (or episode
    end) that answered it.
    ``ended`` says how the run ended: ``"end"`` (the end page), ``"acks"`` (``stop_after_acks``),
    ``"fatal"`` (a fatal error), ``"timeout"``, ``"closed"`` (the server closed the socket) or
    ``"join_failed"``. ``waitroom``, ``matches``, ``pauses`` and ``notices`` record the multi-human
    scenes' messages as they came; ``visibility`` the hidden/visible reports the bot sent;
    ``reconnects`` how often it came back after a ``disconnect`` span; ``dropped_messages`` how many
    server messages failed the page's checks (and were dropped, as the page drops them).
    """

    participant_id: str
    acked_steps: int = 0
    frames: int = 0
    frame_log: list[tuple[int, int, str, float]] = field(default_factory=list)
    latency_log: list[tuple[float, float]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    client_errors: list[str] = field(default_factory=list)
    scenes: list[str] = field(default_factory=list)
    completion_code: str | None = None
    cookie: str | None = None
    waitroom: list[dict[str, Any]] = field(default_factory=list)
    matches: list[dict[str, Any]] = field(default_factory=list)
    pauses: list[dict[str, Any]] = field(default_factory=list)
    notices: list[dict[str, Any]] = field(default_factory=list)
    visibility: list[dict[str, Any]] = field(default_factory=list)
    dropped_messages: int = 0
    reconnects: int = 0
    ended: str | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ParticipantStats:
        """The stats from one line of the runner's output."""
        return cls(
            participant_id=data["participant_id"],
            acked_steps=data.get("acked_steps", 0),
            frames=data.get("frames", 0),
            frame_log=[tuple(entry) for entry in data.get("frame_log", [])],
            latency_log=[(t, ms / 1000) for t, ms in data.get("latency_log", [])],
            errors=data.get("errors", []),
            client_errors=data.get("client_errors", []),
            scenes=data.get("scenes", []),
            completion_code=data.get("completion_code"),
            cookie=data.get("cookie"),
            waitroom=data.get("waitroom", []),
            matches=data.get("matches", []),
            pauses=data.get("pauses", []),
            notices=data.get("notices", []),
            visibility=data.get("visibility", []),
            dropped_messages=data.get("dropped_messages", 0),
            reconnects=data.get("reconnects", 0),
            ended=data.get("ended"),
        )

    @property
    def latencies(self) -> list[float]:
        """Seconds from each act to the frame that answered it."""
        return [latency for _, latency in self.latency_log]

    @property
    def frame_times(self) -> list[float]:
        """When each frame arrived."""
        return [entry[3] for entry in self.frame_log]

    @property
    def steps(self) -> list[tuple[int, int]]:
        """``(episode, step)`` of each frame, in arrival order."""
        return [(entry[0], entry[1]) for entry in self.frame_log]

    @property
    def gaps(self) -> list[float]:
        """Seconds between consecutive frames of one episode (the pause between episodes or scenes is not a gap)."""
        log = self.frame_log
        return [b[3] - a[3] for a, b in pairwise(log) if b[0] == a[0] and b[1] > a[1]]

    def during(self, start: float, end: float) -> ParticipantStats:
        """These stats with only the frames and latency samples from ``start`` to ``end`` (epoch seconds)."""
        return replace(
            self,
            frame_log=[e for e in self.frame_log if start <= e[3] <= end],
            latency_log=[e for e in self.latency_log if start <= e[0] <= end],
        )

    @property
    def waited_s(self) -> float | None:
        """Seconds from the first waitroom message to the first match message (``None`` if either is missing)."""
        if not self.waitroom or not self.matches:
            return None
        return self.matches[0]["t"] - self.waitroom[0]["t"]


async def join(base_url: str, participant_id: str) -> str:
    """Open the participant page once (as a browser would); returns the browser-token cookie (``name=value``).

    For tests and tools that speak to the participant WebSocket with a client of their own.
    """
    response = await AsyncHTTPClient().fetch(f"{base_url}?participant={participant_id}", follow_redirects=False)
    cookie = response.headers.get("Set-Cookie", "")
    return cookie.split(";", 1)[0]


class SimulatedParticipant:
    """One simulated participant of the study at ``base_url`` (see the module docstring).

    Args:
        base_url: the study's URL (``Deployment.url``).
        participant_id: the id it joins with; ``None``: a new one from the study's redirect, as a browser
            without one gets (read it from the stats).
        keys: pressed in turn, one a frame; ``None``: the scene's own keys. Keys a scene does not use are
            never pressed (as on the page).
        answers: survey answers by question id.
        cookie: the browser-token cookie of an earlier visit (``stats.cookie``): it comes back as the same
            browser.
        hidden: ``(after_s, for_s)`` spans, from when it connects, in which it reports its tab hidden
            (``visibility`` messages) and presses nothing.
        disconnect: ``(after_s, for_s)`` spans, from when it joins, in which its WebSocket is closed (a
            closed tab, a dropped network); it then connects again as the same browser (``reconnects``).
        arrive_after_s: seconds to wait before opening the study page.
    """

    def __init__(
        self,
        base_url: str,
        participant_id: str | None = None,
        *,
        keys: Sequence[str] | None = None,
        answers: dict[str, Any] | None = None,
        cookie: str | None = None,
        hidden: Sequence[tuple[float, float]] = (),
        disconnect: Sequence[tuple[float, float]] = (),
        arrive_after_s: float = 0.0,
    ) -> None:
        self.base_url, self.participant_id = base_url, participant_id
        self.keys = None if keys is None else list(keys)
        self.answers = dict(answers or {})
        self.cookie = cookie
        self.hidden = [(float(a), float(b)) for a, b in hidden]
        self.disconnect = [(float(a), float(b)) for a, b in disconnect]
        self.arrive_after_s = float(arrive_after_s)
        self.stats: ParticipantStats | None = None

    def spec(self, stop_after_acks: int | None = None) -> dict[str, Any]:
        """This participant as the runner's input."""
        return {
            "participant_id": self.participant_id,
            "cookie": self.cookie,
            "keys": self.keys,
            "answers": self.answers,
            "hidden": self.hidden,
            "disconnect": self.disconnect,
            "stop_after_acks": stop_after_acks,
            "arrive_after_s": self.arrive_after_s,
        }

    async def run(
        self, *, stop_after_acks: int | None = None, timeout: float = 120, hooks: str | Path | None = None
    ) -> ParticipantStats:
        """Go through the study (or stop after ``stop_after_acks`` acknowledged steps, or ``timeout`` seconds).

        ``hooks``: an ES module for tests that send what a page never would (see ``simulate``).
        """
        (stats,) = await simulate(self.base_url, [self], stop_after_acks=stop_after_acks, timeout=timeout, hooks=hooks)
        return stats


def _node() -> str:
    node = shutil.which("node")
    if node is None or not RUNNER.is_file():
        missing = "Node.js (>= 20) on PATH" if node is None else f"the built runner {RUNNER} (run `make setup`)"
        raise MugError(f"simulated participants run the participant page's code under Node and need {missing}")
    return node


async def simulate(
    base_url: str,
    participants: int | Sequence[SimulatedParticipant] = 1,
    *,
    stop_after_acks: int | None = None,
    timeout: float = 120,
    hooks: str | Path | None = None,
    cpus: str | None = None,
    **options: Any,
) -> list[ParticipantStats]:
    """Run many simulated participants at once in one Node process; their stats, in the order given.

    Args:
        base_url: the study's URL (``Deployment.url``).
        participants: ``SimulatedParticipant``s, or a number of new ones (new participant ids, made with
            ``options``: any keyword argument of ``SimulatedParticipant`` but the id).
        stop_after_acks: each stops after this many acknowledged steps (``None``: at the end page).
        timeout: seconds for all of them, arrivals included; who is not done by then stops (``ended``
            ``"timeout"``).
        hooks: path of an ES module that may export ``act(message, buffers, n)`` returning a replacement
            ``{message, buffers}`` for the n-th act a participant would send (for tests of what a server
            must refuse).
        cpus: run Node on these CPUs only (``taskset -c``; e.g. ``"1"`` for load tests that pin the
            server elsewhere).

    Each ``SimulatedParticipant`` given gets its ``stats`` set, and its ``participant_id`` and
    ``cookie`` filled in from the run (so a second run comes back as the same browser).
    """
    if isinstance(participants, int):
        bots = [SimulatedParticipant(base_url, **options) for _ in range(participants)]
    else:
        if options:
            raise TypeError(f"options {sorted(options)} only apply when participants is a number")
        bots = list(participants)
    command = [_node(), str(RUNNER)]
    if cpus is not None:
        taskset = shutil.which("taskset")
        if taskset is None:
            raise MugError("cpus= needs the taskset command (util-linux)")
        command = [taskset, "-c", cpus, *command]
    spec = {
        "url": base_url,
        "timeout_s": timeout,
        "hooks": None if hooks is None else str(hooks),
        "bots": [b.spec(stop_after_acks) for b in bots],
    }
    with tempfile.TemporaryFile() as stderr:
        process = await asyncio.create_subprocess_exec(*command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr)
        out, _ = await process.communicate(json.dumps(spec).encode())
        stderr.seek(0)
        problems = stderr.read().decode(errors="replace")
    lines = [json.loads(line) for line in out.decode().splitlines() if line.strip()]
    if process.returncode != 0 or len(lines) != len(bots):
        raise MugError(
            f"the simulated participants' runner failed (exit {process.returncode}, {len(lines)} of {len(bots)} "
            f"participants reported):\n{problems[-4000:]}"
        )
    results: list[ParticipantStats | None] = [None] * len(bots)
    for line in lines:
        results[line["bot"]] = stats = ParticipantStats.from_json(line)
        bot = bots[line["bot"]]
        bot.stats, bot.participant_id, bot.cookie = stats, stats.participant_id, stats.cookie
    return results  # type: ignore[return-value]
