"""The admin page's live view of the matches in Chromium: it appears, follows the status provider every 2 s
without a reload, and ``/admin/live`` is the admin's only (403 without the token or cookie)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from mug.server.admin_live import no_matches
from mug.server.app import MugServer
from tests.e2e.live_server import serving
from tests.e2e.studies import cartpole_realtime

TOKEN = "live-admin-token"


class Status:
    """The matches' status the server reports; a test sets ``value`` (or ``error``) to drive the live view."""

    def __init__(self) -> None:
        self.value = {"duo": no_matches()}
        self.error: Exception | None = None

    def __call__(self) -> dict:
        if self.error is not None:
            raise self.error
        return self.value


@pytest.fixture()
def live(tmp_path) -> Iterator[tuple[str, Status]]:
    """A real MUG server whose status provider is a ``Status``."""
    status = Status()
    server = MugServer(cartpole_realtime, tmp_path / "data", TOKEN)
    server.matches.status = status  # the provider the route calls: the matches room, here driven by the test
    with serving(server) as serve:
        yield serve.url, status


def get(url: str, headers: dict | None = None) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_the_live_view_follows_the_matches_without_reloading(browser, live):
    url, status = live
    page = browser.new_context().new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    loads: list[str] = []
    page.on("load", lambda p: loads.append(p.url))
    page.goto(f"{url}admin?token={TOKEN}")
    scene = page.locator("#mug-live .mug-live-scene[data-scene=duo]")
    expect(scene.locator(".mug-live-summary")).to_have_text("0 waiting · longest wait 0:00 · 0 running · 0 finished")
    assert loads == [f"{url}admin"]  # the token was swapped for the cookie by one redirect

    now = time.time()
    status.value = {
        "duo": {
            "waiting": 1,
            "longest_wait_s": 12.4,
            "running": [
                {"match_id": "m1", "members": {"agent_0": "alice", "agent_1": "bob"}, "episode": 0, "step": 42, "started": now}
            ],
            "finished": [
                {"match_id": "m0", "members": {"agent_0": "carol", "agent_1": "dan"}, "ended": now, "reason": "partner_lost"}
            ],
        }
    }
    expect(scene.locator(".mug-live-summary")).to_have_text("1 waiting · longest wait 0:13 · 1 running · 1 finished")
    running = scene.locator(".mug-live-running tbody tr")
    expect(running).to_have_count(1)
    expect(running.locator("td").nth(1)).to_have_text("agent_0: alice, agent_1: bob")
    expect(running.locator("td").nth(3)).to_have_text("42")
    expect(scene.locator(".mug-live-finished tbody td").nth(3)).to_have_text("partner_lost")

    status.value["duo"]["running"][0]["step"] = 43  # the match goes on: the next refresh shows it
    expect(running.locator("td").nth(3)).to_have_text("43")

    status.error = RuntimeError("the provider broke")  # a failing provider: the view says so and keeps trying
    expect(page.locator(".mug-live-status")).to_contain_text("live view not updated: 500")
    status.error = None
    status.value["duo"]["running"] = []
    expect(scene.locator(".mug-live-summary")).to_have_text("1 waiting · longest wait 0:13 · 0 running · 1 finished")
    expect(page.locator(".mug-live-status")).to_contain_text("updated")
    assert loads == [f"{url}admin"]  # all of it without reloading the page
    assert errors == []


def test_live_status_is_the_admins_only(browser, live):
    url, status = live
    assert get(f"{url}admin/live")[0] == 403
    assert get(f"{url}admin/live", {"X-MUG-Admin-Token": "wrong-token"})[0] == 403
    code, body = get(f"{url}admin/live", {"X-MUG-Admin-Token": TOKEN})
    assert code == 200 and json.loads(body) == status.value

    stranger = browser.new_context().new_page()  # a browser without the admin cookie
    response = stranger.goto(f"{url}admin/live")
    assert response.status == 403
    admin = browser.new_context().new_page()
    admin.goto(f"{url}admin?token={TOKEN}")  # the cookie set here opens the live route too
    assert admin.goto(f"{url}admin/live").status == 200
    assert json.loads(admin.inner_text("body")) == {"duo": no_matches()}
