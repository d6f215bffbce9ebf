"""A participant completes the demo study in headless Chromium with the keyboard; the data matches what they did."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest
from playwright.sync_api import expect

from mug.examples.demo import DEMO_KEYS
from mug.server.store import Store
from tests.servers import ServerProcess


@pytest.fixture()
def demo(tmp_path):
    server = ServerProcess(["demo"], tmp_path / "data").start()
    yield server
    server.stop()


def open_study(browser, url, pid):
    page = browser.new_context().new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{url}?PROLIFIC_PID={pid}")
    return page, errors


def model_loaded(page):
    """Wait until the browser-side policy has loaded (a locator, not a JS predicate: the page's CSP forbids eval)."""
    expect(page.locator(".mug-loading")).to_have_text("", timeout=30_000)


def play(page, keys, until_survey=True):
    """Press keys one by one (each press is one move); stop when the survey shows."""
    pressed = []
    for key in keys:
        if until_survey and page.locator("fieldset[data-qid=helpful]").count():
            break
        page.keyboard.press(key)
        pressed.append(key)
        page.wait_for_timeout(40)
    return pressed


def test_participant_completes_the_demo_with_the_keyboard(browser, demo, tmp_path):
    page, errors = open_study(browser, demo.url, "e2e_p1")
    page.get_by_role("button", name="Start").click()
    page.wait_for_selector("#mug-canvas")
    model_loaded(page)  # the AI partner's model has loaded
    cycle = ["ArrowRight", "ArrowDown", "ArrowLeft", "ArrowUp", "d", "s"]
    pressed = play(page, cycle * 20)
    page.wait_for_selector("fieldset[data-qid=helpful]", timeout=15000)
    page.locator("fieldset[data-qid=helpful] input[value='6']").check()
    page.get_by_label("not sure").check()
    page.locator("textarea[name=comments]").fill("the red one was quick")
    page.get_by_role("button", name="Submit").click()
    page.wait_for_selector(".mug-code")
    assert page.inner_text(".mug-code") == "MUGDEMO"
    assert errors == []

    store = Store(demo.data_dir)
    steps = store.steps("coins")
    assert len({s["episode"] for s in steps}) >= 2 and len(steps) >= 10
    human = [s["actions"]["agent_0"] for s in steps]
    assert human == [DEMO_KEYS[k] for k in pressed[: len(human)]]  # every press became exactly one move, in order
    assert {s["sources"]["agent_0"] for s in steps} == {"human"}
    assert {s["sources"]["agent_1"] for s in steps} == {"policy"}  # the browser ran the partner
    assert all("output" not in s["policy_outputs"]["agent_1"] for s in steps)
    assert len(steps[0]["policy_outputs"]["agent_1"]["logits"]) == 5
    responses = store.responses("survey")
    assert [r["answers"] for r in responses] == [{"helpful": 6, "human_like": "not sure", "comments": "the red one was quick"}]
    participant = store.participant("e2e_p1")
    assert participant["completed"] and participant["scene_id"] == "end"

    for fmt in ("csv", "parquet"):
        out = tmp_path / f"export-{fmt}"
        subprocess.run(
            [sys.executable, "-m", "mug", "export", str(demo.data_dir), "--format", fmt, "--out", str(out)], check=True
        )
        if fmt == "csv":
            with open(out / "steps.csv") as f:
                rows = list(csv.DictReader(f))
            actions = [json.loads(r["actions"]) for r in rows if r["scene_id"] == "coins"]
        else:
            import pyarrow.parquet as pq

            rows = pq.read_table(out / "steps.parquet").to_pylist()  # typed: one action column per agent
            actions = [{a: r[f"action_{a}"] for a in ("agent_0", "agent_1")} for r in rows if r["scene_id"] == "coins"]
        exported = [r for r in rows if r["scene_id"] == "coins"]
        assert len(exported) == len(steps)
        assert actions == [s["actions"] for s in steps]
        assert [int(r["step"]) for r in exported] == [s["step"] for s in steps]
    store.close()


def test_reload_mid_episode_continues_the_game(browser, demo):
    page, _ = open_study(browser, demo.url, "e2e_reload")
    page.get_by_role("button", name="Start").click()
    model_loaded(page)
    play(page, ["ArrowRight", "ArrowDown"] * 3, until_survey=False)
    page.wait_for_timeout(300)
    store = Store(demo.data_dir)
    before = store.steps("coins")
    page.reload()
    model_loaded(page)
    play(page, ["ArrowLeft"] * 2, until_survey=False)
    page.wait_for_timeout(300)
    after = store.steps("coins")
    assert len({s["session_id"] for s in after}) == 1  # the same game went on
    assert [s["step"] for s in after] == list(range(len(after)))  # no step lost or repeated
    assert len(after) == len(before) + 2
    store.close()


def test_reload_mid_survey_shows_the_survey_again(browser, tmp_path):
    server = ServerProcess(["deploy", "tests/e2e/studies.py:survey_only"], tmp_path / "data").start()
    try:
        page, _ = open_study(browser, server.url, "e2e_survey")
        page.wait_for_selector("fieldset[data-qid=helpful]")
        page.locator("fieldset[data-qid=helpful] input[value='3']").check()
        page.reload()
        page.wait_for_selector("fieldset[data-qid=helpful]")
        assert page.locator("fieldset[data-qid=helpful] input:checked").count() == 0  # unsent answers start empty
        page.get_by_role("button", name="Submit").click()
        assert "Please answer" in page.inner_text(".mug-error")
        page.locator("fieldset[data-qid=helpful] input[value='2']").check()
        page.get_by_role("button", name="Submit").click()
        page.wait_for_selector(".mug-code")
    finally:
        server.stop()
    store = Store(tmp_path / "data")
    assert [r["answers"]["helpful"] for r in store.responses()] == [2]
    store.close()


def test_second_tab_takes_over(browser, demo):
    first, _ = open_study(browser, demo.url, "e2e_tabs")
    first.get_by_role("button", name="Start").click()
    first.wait_for_selector("#mug-canvas")
    context = first.context
    second = context.new_page()
    second.goto(f"{demo.url}?PROLIFIC_PID=e2e_tabs")
    second.wait_for_selector("#mug-canvas")
    first.wait_for_selector(".mug-error")
    assert "opened in another tab" in first.inner_text(".mug-error")


def test_another_browser_cannot_use_a_taken_participant_id(browser, demo):
    page, _ = open_study(browser, demo.url, "e2e_owner")
    page.get_by_role("button", name="Start").wait_for()
    other = browser.new_context().new_page()
    response = other.goto(f"{demo.url}?PROLIFIC_PID=e2e_owner")
    assert response.status == 403
    assert "already in use in another browser" in other.inner_text("body")
