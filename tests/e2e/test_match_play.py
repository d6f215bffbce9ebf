"""Several people in one game, each in a real Chromium context on one server: they play with the keyboard, all
receive the same frames, every stored step has each seat's input from the right participant; the waitroom a lone
participant sees; what a partner's loss shows the others (a notice and an end page, or a pause until they are back).

Frames are observed as the pages receive them (Playwright's WebSocket events: no test hook in the page)."""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass, field

import pytest
from playwright.sync_api import expect

import mug
from mug.session.messages import decode_envelope
from tests.servers import ServerProcess

STUDIES = "tests/e2e/match_studies.py"


@dataclass
class Seen:
    """What one page received: its scene messages and, per frame, (episode, step, hash of the frame's payload)."""

    scenes: list[dict] = field(default_factory=list)
    frames: list[tuple[int, int, str]] = field(default_factory=list)

    def receive(self, payload: str | bytes) -> None:
        message, buffers = (json.loads(payload), []) if isinstance(payload, str) else decode_envelope(payload)
        if message.get("type") == "scene":
            self.scenes.append(message)
        elif message.get("type") == "frame":
            self.frames.append((message["episode"], message["step"], frame_hash(message, buffers)))

    @property
    def match(self) -> dict:
        """The match block of the last game scene this page got."""
        games = [m for m in self.scenes if m["scene"].get("kind") == "gym"]
        assert games, "no game scene arrived"
        return games[-1].get("match") or games[-1]["scene"]["match"]


def frame_hash(message: dict, buffers: list[bytes]) -> str:
    """SHA-256 of what a frame shows (render payload, HUD, their buffers), not of the page's own observations."""
    own = set()
    for ref in (message.get("observations") or {}).values():
        own |= {r["buffer"] for r in ref["dict"].values()} if "dict" in ref else {ref["buffer"]}
    digest = hashlib.sha256(
        json.dumps([message["episode"], message["step"], message["render"], message.get("hud")], sort_keys=True).encode()
    )
    for i, buffer in enumerate(buffers):
        if i not in own:
            digest.update(bytes(buffer))
    return digest.hexdigest()


class Player:
    """One participant: a Chromium context of their own, its page, and what the page received."""

    def __init__(self, browser, url: str, pid: str) -> None:
        self.pid, self.url = pid, url
        self.context = browser.new_context()
        self.errors: list[str] = []
        self.seen = Seen()
        self.page = self.open()

    def open(self):
        page = self.context.new_page()
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("websocket", lambda ws: ws.on("framereceived", self.seen.receive))
        page.goto(f"{self.url}?PROLIFIC_PID={self.pid}")
        return page

    def close(self) -> None:
        self.context.close()


@pytest.fixture()
def deploy(tmp_path, browser):
    started: list[ServerProcess] = []
    players: list[Player] = []

    def start(name: str, pids: list[str]) -> tuple[ServerProcess, list[Player]]:
        server = ServerProcess(["deploy", f"{STUDIES}:{name}"], tmp_path / "data").start()
        started.append(server)
        joined = [Player(browser, server.url, pid) for pid in pids]
        players.extend(joined)
        return server, joined

    yield start
    for player in players:
        player.close()
    for server in started:
        server.stop()


def play_together(server: ServerProcess, players: list[Player], scene_id: str, agents: list[str]) -> None:
    """Each player holds one key of their own for the whole game; then check frames and data."""
    from tests.e2e.match_studies import KEYS

    for player in players:
        expect(player.page.locator("#mug-canvas")).to_be_visible(timeout=30_000)  # the match started for everyone
    seats = {p.pid: p.seen.match["seat"] for p in players}
    assert sorted(seats.values()) == sorted(agents)  # one seat each
    assert len({p.seen.match["match_id"] for p in players}) == 1
    for player in players:
        label = player.page.locator(".mug-seat")
        expect(label).to_have_text(re.compile(rf"You are player [1-{len(agents)}] of {len(agents)}"))
        assert label.get_attribute("data-seat") == seats[player.pid]
    key_of = dict(zip([p.pid for p in players], ["ArrowRight", "ArrowDown", "ArrowLeft"]))
    for player in players:
        player.page.locator("#mug-canvas").focus()
        player.page.keyboard.down(key_of[player.pid])
    for player in players:
        expect(player.page.locator(".mug-code")).to_be_visible(timeout=60_000)  # the game ended: the end page
    for player in players:
        player.page.keyboard.up(key_of[player.pid])

    first = players[0].seen.frames
    assert len(first) >= 20
    for player in players[1:]:
        assert player.seen.frames == first  # the same frames, step by step, payload by payload
    assert all(p.errors == [] for p in players)

    steps = mug.load(server.data_dir).steps
    steps = steps[steps["scene_id"] == scene_id].sort_values(["episode", "step"])
    assert len(steps) >= 20
    assert list(steps["step"]) == list(range(len(steps)))  # each step stored once for the match
    assert set(steps["match_id"]) == {players[0].seen.match["match_id"]}
    human = steps[[all(str(row[f"source_{a}"]).startswith("human") for a in agents) for _, row in steps.iterrows()]]
    assert len(human) >= 10
    playing = steps[steps["step"] >= human["step"].min()]  # once every key was down, every step has every input
    for pid, agent in seats.items():
        others = [p for p in seats if p != pid]
        sources = set(playing[f"source_{agent}"])
        assert all(pid in s and not any(o in s for o in others) for s in sources), (agent, sources)
        assert set(playing[f"action_{agent}"]) == {KEYS[key_of[pid]]}, agent


def test_two_people_play_one_game_and_see_the_same_frames(deploy):
    server, players = deploy("duo", ["alice", "bob"])
    play_together(server, players, "duo", ["agent_0", "agent_1"])


def test_three_people_play_one_game_and_see_the_same_frames(deploy):
    server, players = deploy("trio", ["ann", "ben", "cat"])
    play_together(server, players, "trio", ["agent_0", "agent_1", "agent_2"])


def seconds_left(text: str) -> int:
    m = re.fullmatch(r"Time left: (\d+):(\d\d)", text)
    assert m, text
    return 60 * int(m.group(1)) + int(m.group(2))


def test_a_lone_participant_sees_the_count_and_the_time_left(deploy):
    from tests.e2e.match_studies import WAITING

    _, (lone,) = deploy("duo", ["lone"])
    page = lone.page
    expect(page.locator(".mug-waitroom-message")).to_have_text(WAITING, timeout=30_000)
    expect(page.locator(".mug-waitroom-count")).to_have_text("1 of 2 participants waiting")
    time_text = page.locator(".mug-waitroom-time")
    expect(time_text).to_have_text(re.compile(r"Time left: 1:[0-3]\d"))  # of the 90 s timeout
    before = seconds_left(time_text.inner_text())
    deadline = time.monotonic() + 10
    while seconds_left(time_text.inner_text()) >= before and time.monotonic() < deadline:
        page.wait_for_timeout(200)
    assert seconds_left(time_text.inner_text()) < before  # counted down on the page between the server's updates
    assert page.locator("#mug-canvas").count() == 0 and lone.errors == []


def test_a_partner_lost_ends_the_game_for_the_other_with_a_notice_and_a_completion_code(deploy):
    from tests.e2e.match_studies import PARTNER_LEFT

    _, (stays, leaves) = deploy("duo_partner_end", ["stays", "leaves"])
    for player in (stays, leaves):
        expect(player.page.locator("#mug-canvas")).to_be_visible(timeout=30_000)
    leaves.close()
    notice = stays.page.locator(".mug-notice[data-code=partner_lost]")
    expect(notice).to_have_text(PARTNER_LEFT, timeout=30_000)
    expect(stays.page.locator(".mug-code")).not_to_be_empty()  # the end page, with a code so they are paid
    expect(notice).to_be_visible()  # above the end page
    assert stays.errors == []


def test_a_partner_lost_pauses_the_game_until_they_are_back_in_their_seat(deploy):

    _, (stays, leaves) = deploy("duo_partner_wait", ["stays", "leaves"])
    for player in (stays, leaves):
        expect(player.page.locator("#mug-canvas")).to_be_visible(timeout=30_000)
    seat = leaves.seen.match["seat"]
    leaves.page.close()  # the tab closes; the browser (its cookie) stays
    overlay = stays.page.locator(".mug-paused")
    expect(overlay.locator(".mug-paused-message")).to_contain_text("Waiting for them to come back", timeout=30_000)
    expect(overlay.locator(".mug-paused-time")).to_have_text(re.compile(r"Waiting at most [01]:\d\d"))
    frames_paused = len(stays.seen.frames)
    stays.page.wait_for_timeout(1000)
    assert len(stays.seen.frames) == frames_paused  # paused: no frames
    leaves.page = leaves.open()  # back within the timeout
    expect(leaves.page.locator("#mug-canvas")).to_be_visible(timeout=30_000)
    expect(overlay).to_have_count(0, timeout=30_000)  # resumed
    assert leaves.seen.match["seat"] == seat  # the same seat in the same match
    deadline = time.monotonic() + 10
    while len(stays.seen.frames) <= frames_paused + 5 and time.monotonic() < deadline:
        stays.page.wait_for_timeout(100)
    assert len(stays.seen.frames) > frames_paused + 5  # the game goes on
    assert stays.errors == [] and leaves.errors == []
