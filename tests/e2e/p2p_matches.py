"""Whole peer-to-peer matches played by participants in real Chromium pages (helpers of the P2P e2e tests).

* :func:`p2p_scene`: a two-human P2P scene of the browser coin grid (short episodes at 30 fps, input delay 2,
  prediction window 8), with the env of one's choice; :func:`duo_study`: one such scene, then the end;
* :class:`Member`: one participant's page in a Chromium context of their own;
* :func:`play`: hold keys on every page (changing now and then, so predictions miss and pages roll back) until
  every page's match is done;
* :func:`played`: what a finished match left on the pages and on the server (:class:`Played`), once the
  server has verified its episodes;
* :func:`unresolved`, :func:`frame_rate`: a page's desyncs left open, and how many frame slots its netcode lost.

A page's ``window.mugP2P`` is its running or last match (``js/src/pyworker/p2p-match.js``): every confirmed record
it sent the server, its netcode events, its seat. An init script (:data:`WATCH`) keeps the page's mesh
(``window.__mesh``, from the ``mug-p2p`` event) so that tests can read its pairs' states and round trips.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import mug
from mug.examples.browser_grid import PyCoinGrid, draw

KEYS = {"ArrowUp": 1, "ArrowDown": 2, "ArrowLeft": 3, "ArrowRight": 4}
#: Keeps the page's mesh (a listener only: the mesh's callbacks stay the page's).
WATCH = 'window.addEventListener("mug-p2p", (event) => { window.__mesh = event.detail.mesh; });'
#: Keys each page holds in turn (a different one every 0.4 s).
CYCLE = (("ArrowRight", "ArrowDown", "ArrowLeft", "ArrowUp"), ("ArrowDown", "ArrowLeft", "ArrowUp", "ArrowRight"))


#: Episodes of a :func:`p2p_scene` unless told.
EPISODES = 2


def p2p_scene(scene_id: str, env: type = PyCoinGrid, episodes: int = EPISODES, steps: int = 45) -> mug.GymScene:
    """A P2P scene of two humans in ``env`` (a :class:`PyCoinGrid` or subclass): ``episodes`` of at most ``steps``."""
    return (
        mug.GymScene(scene_id)
        .environment(env, {"max_steps": steps, "coins": 4}, seed=3)
        .policies({"agent_0": mug.Human, "agent_1": mug.Human})
        .gameplay(action_mapping=KEYS, num_episodes=episodes)
        .rendering(mode="surface", draw=draw, width=120, height=120, fps=30)
        .waitroom(timeout_s=120, on_timeout="end")
        .multiplayer(mode="p2p", input_delay=2, max_prediction=8, on_partner_loss="end")
        .runtime(environment="browser")
    )


def duo_study(episodes: int = EPISODES) -> mug.Stager:
    """One P2P scene ``duo`` of :func:`p2p_scene`, then the end (completion code ``DONE``)."""
    return mug.Stager([p2p_scene("duo", episodes=episodes), mug.EndScene(completion_code="DONE")])


class Member:
    """One participant in a Chromium context of their own (microphone and camera granted: loopback candidates)."""

    def __init__(self, browser, url: str, pid: str, init: str = WATCH) -> None:
        self.pid = pid
        self.context = browser.new_context(permissions=["microphone", "camera"])
        self.context.add_init_script(init)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(f"{url}?PROLIFIC_PID={pid}")

    def js(self, expression: str, arg: Any = None) -> Any:
        return self.page.evaluate(expression, arg)

    @property
    def match_id(self) -> str | None:
        """The page's running or last P2P match."""
        return self.js("window.mugP2P?.match_id ?? null")

    @property
    def done(self) -> bool:
        """Whether the page's current match is over (every episode's end agreed)."""
        return bool(self.js("window.mugP2P?.done === true"))

    def wait_match(self, after: str | None = None, timeout_ms: float = 120_000) -> str:
        """Until a P2P match other than ``after`` runs on the page; its id."""
        self.page.wait_for_function("id => window.mugP2P && window.mugP2P.match_id !== id", arg=after, timeout=timeout_ms)
        return self.match_id  # type: ignore[return-value]

    def link(self) -> dict | None:
        """The page's pair with its (one) peer now, or None: its round trips as the mesh measures them (``path``,
        ``last_ms``, ``median_ms``, ``samples``) and, with a shim, the inputs messages it ``passed`` and
        ``dropped``."""
        return self.js(
            """() => {
              const mesh = window.__mesh, pair = mesh && !mesh.closed && mesh.pairs.get(mesh.peers[0]);
              return pair ? { ...pair.rtt(), ...(pair.shims?.inputs.counts ?? {}) } : null;
            }"""
        )


def play(members: list[Member], timeout_s: float = 180) -> list[dict]:
    """Hold a key on each page, a different one every 0.4 s, until every page's match is done (the pages must
    be in the match already); returns the pages' :meth:`Member.link` readings taken meanwhile (with ``page``:
    the member's index), those with round trips measured."""
    deadline, turn, rtts = time.monotonic() + timeout_s, 0, []
    while not all(m.done for m in members):
        assert time.monotonic() < deadline, "the match did not end"
        for member, keys in zip(members, CYCLE):
            member.page.keyboard.down(keys[turn % 4])
        members[0].page.wait_for_timeout(400)
        for member, keys in zip(members, CYCLE):
            member.page.keyboard.up(keys[turn % 4])
        rtts.extend({**r, "page": i} for i, r in enumerate(m.link() for m in members) if r and r["samples"])
        turn += 1
    return rtts


def unresolved(events: list[dict]) -> list[dict]:
    """A page's ``desync`` events with no ``desync_resolved`` of the same peer after them."""
    open_: dict[str, dict] = {}
    for event in events:
        if event["type"] == "desync":
            open_[event["peer"]] = event
        elif event["type"] == "desync_resolved":
            open_.pop(event["peer"], None)
    return list(open_.values())


def frame_rate(events: list[dict], episodes: range | None = None) -> dict[str, float]:
    """What a page's netcode produced in ``episodes`` (default: all), from the ``episode_end`` statistics of its
    events: ``frames`` produced, ``stalls`` (frame slots lost to a full prediction window), ``held`` (slots given
    up by time synchronisation: this page was ahead) and ``lost``, the share of the slots of produced, stalled
    and held frames that were not produced (the page's display ticks kept their pace, the game did not)."""
    stats = [e["stats"] for e in events if e["type"] == "episode_end" and (episodes is None or e["episode"] in episodes)]
    frames, stalls, held = (sum(s[k] for s in stats) for k in ("frames", "stalls", "held"))
    return {"frames": frames, "stalls": stalls, "held": held, "lost": (stalls + held) / max(1, frames + stalls + held)}


@dataclass
class Played:
    """A finished match as its pages and the server hold it."""

    match_id: str
    #: Per page (in the order of the members): its seat, confirmed step records, netcode events, errors.
    seats: list[str]
    records: list[list[dict]]
    events: list[list[dict]]
    errors: list[str]
    #: The server's stored steps of the scene, and its events of the scene (store rows: kind, data, ...).
    steps: list[dict]
    stored: list[dict]

    def of(self, kind: str) -> list[dict]:
        """The data of the server's events of ``kind`` in this match."""
        return [e["data"] for e in self.stored if e["kind"] == kind and e["data"].get("match_id", self.match_id) == self.match_id]

    @property
    def reference(self) -> int:
        """Index of the page whose records the server stores (the first human seat's)."""
        return self.seats.index("agent_0")


def played(serve, members: list[Member], scene_id: str, episodes: int, timeout_s: float = 60) -> Played:
    """What the pages' last match and the server hold, once the server has verified ``episodes`` episodes of
    ``scene_id`` (or ``timeout_s`` passed: the caller's assertions then say what is missing)."""
    match_ids = {m.match_id for m in members}
    assert len(match_ids) == 1, f"the pages are in different matches: {match_ids}"
    records = [[r for r in m.js("window.mugP2P.records") if r["result"]["kind"] == "step"] for m in members]

    def read() -> tuple[list[dict], list[dict]]:
        serve.server.store.commit()
        return serve.server.store.steps(scene_id), [e for e in serve.server.store.events() if e["scene_id"] == scene_id]

    deadline = time.monotonic() + timeout_s
    while True:
        steps, stored = serve.call(read)
        if sum(e["kind"] == "verification" for e in stored) >= episodes or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    return Played(
        match_id=match_ids.pop(),
        seats=[m.js("window.mugP2P.seat") for m in members],
        records=records,
        events=[m.js("window.mugP2P.events") for m in members],
        errors=[e for m in members for e in m.errors],
        steps=steps,
        stored=stored,
    )


def assert_stored_as_confirmed(match: Played, episodes: int) -> None:
    """The server's record equals the reference page's confirmed history, step by step with zero tolerance
    (frame, inputs, rewards, flags, observation hash and chain), every step verified, every episode played to
    its end."""
    confirmed = match.records[match.reference]
    seats = match.seats
    ends = [r["result"] for r in confirmed if all(r["result"]["terminated"][a] or r["result"]["truncated"][a] for a in seats)]
    assert [e["episode"] for e in ends] == list(range(episodes))  # every episode played to its end (coins or steps)
    assert [(s["episode"], s["step"]) for s in match.steps] == [(r["result"]["episode"], r["result"]["step"]) for r in confirmed]
    for step, record in zip(match.steps, confirmed):
        result = record["result"]
        assert step["actions"] == record["inputs"]
        assert (step["rewards"], step["terminated"], step["truncated"]) == (
            result["rewards"],
            result["terminated"],
            result["truncated"],
        )
        assert step["obs_hash"] == result["obs_hash"]
        assert (step["frame"], step["chain"]) == (record["frame"], record["chain"])
    assert all(s["verified"] is True for s in match.steps)
    assert len(match.of("verification")) == episodes
