"""A participant page reloaded mid-episode: the browser-side partner goes on with its hidden state and sampling stream."""

from __future__ import annotations

import time

import numpy as np
import pytest
from playwright.sync_api import expect

from mug.server.store import Store
from tests.e2e.partner_studies import python_rerun
from tests.servers import ServerProcess


@pytest.fixture()
def study(tmp_path):
    server = ServerProcess(["deploy", "tests/e2e/partner_studies.py:browser_partner_lockstep"], tmp_path / "data").start()
    yield server
    server.stop()


def steps_when(store: Store, count: int, timeout: float = 20) -> list[dict]:
    """The recorded steps, once there are ``count`` (or ``timeout`` seconds passed)."""
    deadline = time.monotonic() + timeout
    steps = store.steps("grid")
    while len(steps) < count and time.monotonic() < deadline:
        time.sleep(0.05)
        steps = store.steps("grid")
    return steps


def press(page, keys: list[str]) -> None:
    for key in keys:
        page.keyboard.press(key)
        page.wait_for_timeout(60)


def test_a_reload_mid_episode_resumes_the_partner_where_it_was(browser, study):
    page = browser.new_context().new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{study.url}?PROLIFIC_PID=reloader")
    loaded = expect(page.locator(".mug-loading"))  # the page's CSP allows no eval: no wait_for_function
    loaded.to_have_text("", timeout=30_000)
    store = Store(study.data_dir)
    press(page, ["ArrowRight", "ArrowDown"] * 4)
    assert len(steps_when(store, 8)) == 8
    page.reload()
    loaded.to_have_text("", timeout=30_000)
    press(page, ["ArrowLeft", "ArrowUp", "ArrowRight"] * 4)
    steps = steps_when(store, 20)
    restored = store.events("policy_restored")
    store.close()
    assert errors == []
    assert [st["step"] for st in steps] == list(range(20)) and len({st["session_id"] for st in steps}) == 1
    assert {st["sources"]["agent_1"] for st in steps} == {"policy"}
    actions, logits = python_rerun(steps)  # one uninterrupted Python runtime on the same observations
    np.testing.assert_allclose([st["policy_outputs"]["agent_1"]["logits"] for st in steps], logits, rtol=1e-5, atol=1e-5)
    assert [st["actions"]["agent_1"] for st in steps] == actions
    assert [(e["data"]["step"], e["data"]["agents"]) for e in restored] == [(8, {"agent_1": {"episode": 0, "step": 7}})]
