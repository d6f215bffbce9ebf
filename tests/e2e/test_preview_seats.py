"""Every seat of a two-human scene played from the notebook, in a real JupyterLab: two views of one preview
(one seat each), and one view switching seats with its seat menu."""

from __future__ import annotations

import json

import pytest

from tests.e2e.jupyter import JupyterServer, open_notebook, run_cells, write_notebook
from tests.e2e.test_preview import wait_output

SETUP = """
import inspect, json, mug
from mug.examples import CoinGrid
scene = mug.GymScene("duo").environment(CoinGrid, {"max_steps": 20}, seed=5)
if "group_size" in inspect.signature(scene.multiplayer).parameters:
    scene.multiplayer(group_size=2)  # before matches: several humans needed the group size
scene = (scene.policies({"agent_0": mug.Human, "agent_1": mug.Human})
         .gameplay(action_mapping={"ArrowUp": 1, "ArrowDown": 2, "ArrowLeft": 3, "ArrowRight": 4},
                   input_mode="single_keystroke", mode="lockstep")
         .rendering(mode="surface", draw=lambda env, s: env.draw(s), width=160, height=160))
duo = scene.preview()
"""
TWO_VIEWS = "display(duo, duo)"
ONE_VIEW = "duo"
CHECK = """
print("SEATS" + json.dumps({"steps": len(duo.trace), "agent_0": duo.trace.actions["agent_0"].tolist(),
      "agent_1": duo.trace.actions["agent_1"].tolist(), "sources": sorted(set(duo.trace.sources["agent_1"])),
      "errors": duo.errors}))
"""
CODES = {"ArrowUp": 1, "ArrowDown": 2, "ArrowLeft": 3, "ArrowRight": 4}


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("seats")
    write_notebook(workdir / "two.ipynb", [SETUP, TWO_VIEWS, CHECK])
    write_notebook(workdir / "one.ipynb", [SETUP, ONE_VIEW, CHECK])
    server = JupyterServer(workdir, mug_extension=True).start()
    yield server
    server.stop()


def seat_of(view) -> str:
    return view.locator(".mug-seat").input_value()


def wait_canvas(page, index: int) -> None:
    page.wait_for_function(
        "(i) => Boolean(document.querySelectorAll('.mug-preview')[i]?.querySelector('canvas'))", arg=index, timeout=60_000
    )


def test_two_views_of_one_preview_play_the_two_seats(browser, lab):
    page = browser.new_context(viewport={"width": 1400, "height": 1600}).new_page()
    open_notebook(page, lab, "two.ipynb")
    run_cells(page, [0, 1])
    views = page.locator(".mug-preview")
    page.wait_for_function("() => document.querySelectorAll('.mug-preview canvas').length === 2", timeout=60_000)
    page.wait_for_function(
        "() => new Set([...document.querySelectorAll('.mug-preview .mug-seat')].map((s) => s.value)).size === 2",
        timeout=10_000,
    )  # the kernel gave each view its own seat
    assert all(views.nth(i).locator(".mug-seat").is_visible() for i in range(2))
    pressed: dict[str, list[str]] = {"agent_0": [], "agent_1": []}
    for first, second in [("ArrowRight", "ArrowDown"), ("ArrowDown", "ArrowLeft"), ("ArrowUp", "ArrowRight")]:
        for index, key in ((0, first), (1, second)):
            views.nth(index).locator("canvas").click()
            page.keyboard.press(key)
            pressed[seat_of(views.nth(index))].append(key)
            page.wait_for_timeout(300)
    run_cells(page, [2])
    result = json.loads(wait_output(page, 2, "SEATS"))
    assert result["steps"] == 3 and result["errors"] == []
    assert result["agent_0"] == [CODES[k] for k in pressed["agent_0"]]
    assert result["agent_1"] == [CODES[k] for k in pressed["agent_1"]]  # each view's keys played its own seat
    assert result["sources"] == ["human"]
    assert [views.nth(i).locator(".mug-errors").inner_text() for i in range(2)] == ["", ""]


def test_one_view_switches_seats_and_plays_both(browser, lab):
    page = browser.new_context(viewport={"width": 1400, "height": 1200}).new_page()
    open_notebook(page, lab, "one.ipynb")
    run_cells(page, [0, 1])
    view = page.locator(".mug-preview").first
    wait_canvas(page, 0)
    assert seat_of(view) == "agent_0"
    for _ in range(2):
        for seat, key in (("agent_0", "ArrowRight"), ("agent_1", "ArrowDown")):
            if seat_of(view) != seat:
                view.locator(".mug-seat").select_option(seat)
                page.wait_for_function(
                    "(s) => document.querySelector('.mug-preview .mug-seat').value === s", arg=seat, timeout=10_000
                )
                wait_canvas(page, 0)  # this seat's scene came
            view.locator("canvas").click()
            page.keyboard.press(key)
            page.wait_for_timeout(300)
    run_cells(page, [2])
    result = json.loads(wait_output(page, 2, "SEATS"))
    assert result == {"steps": 2, "agent_0": [4, 4], "agent_1": [2, 2], "sources": ["human"], "errors": []}
