"""The participant page shows what the server tells it about a match (issue 11's messages, sent through a real
server to real Chromium): the waitroom with its local countdown, notices above the next page, the paused overlay
that holds keys back, the seat label, and the visibility reports the page sends."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from mug.server.app import MugServer
from mug.session.messages import decode_envelope
from tests.e2e.live_server import Serving, serving
from tests.e2e.studies import cartpole_realtime


class Tab:
    """A participant's page in a context of its own, with every message it received and sent (decoded)."""

    def __init__(self, browser, url: str, pid: str, hidden: bool = False) -> None:
        self.pid = pid
        self.received: list[dict] = []
        self.sent: list[dict] = []
        self.errors: list[str] = []
        context = browser.new_context()
        if hidden:  # the tab is in the background from the start
            context.add_init_script("Object.defineProperty(document, 'hidden', {get: () => true, configurable: true})")
        self.page = context.new_page()
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("websocket", self._watch)
        self.page.goto(f"{url}?PROLIFIC_PID={pid}")

    def _watch(self, ws) -> None:
        ws.on("framereceived", lambda payload: self.received.append(self._decode(payload)))
        ws.on("framesent", lambda payload: self.sent.append(self._decode(payload)))

    @staticmethod
    def _decode(payload: str | bytes) -> dict:
        return json.loads(payload) if isinstance(payload, str) else decode_envelope(payload)[0]

    def sent_of(self, kind: str, since: int = 0) -> list[dict]:
        return [m for m in self.sent[since:] if m["type"] == kind]


@pytest.fixture()
def live(tmp_path) -> Iterator[Serving]:
    with serving(MugServer(cartpole_realtime, tmp_path / "data", "page-admin-token")) as serve:
        yield serve


def tell(serve: Serving, pid: str, *messages: dict) -> None:
    """The server sends ``messages`` to participant ``pid`` (through its outbox, as every message leaves)."""

    def send() -> None:
        participant = serve.server.registry.participants[pid]
        for message in messages:
            participant.send(message)
        serve.server.registry.flush()

    serve.call(send)


def seconds_left(text: str) -> int:
    m = re.search(r"(\d+):(\d\d)$", text)
    assert m, text
    return 60 * int(m.group(1)) + int(m.group(2))


def counts_down(locator, page) -> None:
    before = seconds_left(locator.inner_text())
    deadline = time.monotonic() + 10
    while seconds_left(locator.inner_text()) >= before and time.monotonic() < deadline:
        page.wait_for_timeout(200)
    assert seconds_left(locator.inner_text()) < before


def test_the_waitroom_counts_down_between_updates_and_a_notice_stays_above_the_next_page(browser, live):
    tab = Tab(browser, live.url, "waiter")
    page = tab.page
    expect(page.locator("#mug-canvas")).to_be_visible(timeout=30_000)
    room = {"type": "waitroom", "scene_id": "duo", "waiting": 1, "needed": 2, "time_left_s": 75.0, "message": "Hold on…"}
    tell(live, "waiter", room)
    expect(page.locator(".mug-waitroom-message")).to_have_text("Hold on…")
    expect(page.locator(".mug-waitroom-count")).to_have_text("1 of 2 participants waiting")
    time_left = page.locator(".mug-waitroom-time")
    expect(time_left).to_have_text(re.compile(r"Time left: 1:1[45]"))
    assert page.locator("#mug-canvas").count() == 0  # the waitroom replaced the game
    counts_down(time_left, page)

    tell(live, "waiter", {**room, "waiting": 2, "needed": 3, "time_left_s": 20.0})
    expect(page.locator(".mug-waitroom-count")).to_have_text("2 of 3 participants waiting")
    expect(time_left).to_have_text(re.compile(r"Time left: 0:(20|19)"))  # the server's time, not the old countdown
    tell(live, "waiter", {**room, "waiting": None, "needed": None})
    expect(page.locator(".mug-waitroom-count")).to_be_hidden()  # the scene hides the count
    expect(page.locator(".mug-waitroom")).to_have_count(1)

    tell(
        live,
        "waiter",
        {"type": "notice", "code": "waitroom_timeout", "message": "Nobody else came in time."},
        {"type": "scene", "scene": {"scene_id": "end", "kind": "end", "body": "Thanks.", "completion_code": "C0DE42"}},
    )
    expect(page.locator(".mug-code")).to_have_text("C0DE42")
    first = page.locator("#mug-root > :first-child")
    expect(first).to_have_attribute("data-code", "waitroom_timeout")  # above the end page
    expect(first).to_have_text("Nobody else came in time.")
    assert tab.errors == []


def test_a_pause_holds_keys_back_until_resumed_and_the_seat_shows(browser, live):
    tab = Tab(browser, live.url, "player")
    page = tab.page
    expect(page.locator("#mug-canvas")).to_be_visible(timeout=30_000)
    scene = next(m for m in tab.received if m["type"] == "scene")
    tell(live, "player", {**scene, "match": {"match_id": "m1", "seat": "agent_0", "seats": 2}})
    expect(page.locator(".mug-seat")).to_have_text("You are player 1 of 2")

    tell(
        live,
        "player",
        {
            "type": "paused",
            "scene_id": "cartpole",
            "reason": "partner_lost",
            "message": "Your partner lost the connection.",
            "time_left_s": 30.0,
        },
    )
    overlay = page.locator(".mug-paused")
    expect(overlay.locator(".mug-paused-message")).to_have_text("Your partner lost the connection.")
    expect(overlay.locator(".mug-paused-time")).to_have_text(re.compile(r"Waiting at most 0:(30|29)"))
    counts_down(overlay.locator(".mug-paused-time"), page)
    mark = len(tab.sent)
    page.keyboard.down("ArrowRight")
    page.wait_for_timeout(700)
    paused_acts = tab.sent_of("act", mark)
    page.keyboard.up("ArrowRight")
    assert len(paused_acts) >= 5 and all(a["keys"] == [] for a in paused_acts)  # the press never reached the game

    tell(live, "player", {"type": "resumed", "scene_id": "cartpole"})
    expect(overlay).to_have_count(0)
    mark = len(tab.sent)
    page.keyboard.down("ArrowRight")
    page.wait_for_timeout(700)
    page.keyboard.up("ArrowRight")
    assert any(a["keys"] == ["ArrowRight"] for a in tab.sent_of("act", mark))
    assert tab.errors == []


def test_visibility_is_reported_and_a_hidden_tab_warning_passes(browser, live):
    tab = Tab(browser, live.url, "hider", hidden=True)
    page = tab.page
    expect(page.locator("#mug-canvas")).to_be_visible(timeout=30_000)
    assert [m["type"] for m in tab.sent[:2]] == ["ready", "visibility"] and tab.sent[1]["hidden"] is True
    page.evaluate("Object.defineProperty(document, 'hidden', {get: () => false, configurable: true})")
    page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")
    deadline = time.monotonic() + 10
    while len(tab.sent_of("visibility")) < 2 and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    assert [m["hidden"] for m in tab.sent_of("visibility")] == [True, False]

    tell(live, "hider", {"type": "notice", "code": "hidden_warning", "message": "Please keep this tab in front."})
    banner = page.locator(".mug-notice[data-code=hidden_warning]")
    expect(banner).to_have_text("Please keep this tab in front.")
    expect(page.locator("#mug-canvas")).to_be_visible()  # the game goes on under the banner
    expect(banner).to_have_count(0, timeout=20_000)  # and the banner goes by itself
    assert tab.errors == []
