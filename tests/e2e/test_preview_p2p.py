"""A P2P scene tried in a real JupyterLab: ``scene.preview()`` shows one view per Human seat (each a rollback
peer in the kernel, over a simulated 150 ms link). The notebook is run with Run All; keys held in one seat's
view move its agent on both peers' screens, the idle peer rolls back, its statistics appear under its view,
episode ends agreed by both peers are shown, and the link control changes the latency in the kernel."""

from __future__ import annotations

import json

import pytest

from tests.e2e.jupyter import JupyterServer, open_notebook, run_all, run_cells, write_notebook
from tests.e2e.test_preview import wait_output

SETUP = """
import json, mug
from mug.examples.browser_grid import PyCoinGrid, draw
scene = (mug.GymScene("duo").environment(PyCoinGrid, {"max_steps": 60, "coins": 20}, seed=5)
         .policies({"agent_0": mug.Human, "agent_1": mug.Human})
         .gameplay(action_mapping={"ArrowUp": 1, "ArrowDown": 2, "ArrowLeft": 3, "ArrowRight": 4}, num_episodes=100)
         .rendering(mode="surface", draw=draw, width=150, height=150, fps=30)
         .runtime(environment="browser").multiplayer(mode="p2p", input_delay=2, max_prediction=8))
peers = scene.preview(latency_ms=150)
"""
SHOW = "display(peers, peers)"  # two views of one preview: only the focused one's keys count
CHECK = """
if peers.ticks == 0:
    print("not played yet")
else:
    a, b = peers.histories["agent_0"], peers.histories["agent_1"]
    n = min(len(a), len(b))
    net = peers.traces["agent_1"].netcode
    print("P2P" + json.dumps({"ticks": peers.ticks, "confirmed": n,
          "same": [r.to_dict() for r in a[:n]] == [r.to_dict() for r in b[:n]],
          "moves_0": sorted({r.inputs["agent_0"] for r in a[:n]}), "moves_1": sorted({r.inputs["agent_1"] for r in a[:n]}),
          "stats": {s: peers.stats(s) for s in peers.seats}, "traced_rollbacks": int(net["rollbacks"].sum()),
          "latency_ms": peers.latency_ms, "errors": peers.errors}))
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("p2p")
    write_notebook(workdir / "p2p.ipynb", [SETUP, SHOW, CHECK])
    server = JupyterServer(workdir, mug_extension=True).start()
    yield server
    server.stop()


def canvas_image(seat) -> str:
    return seat.locator("canvas").evaluate("(c) => c.toDataURL()")


def rollbacks_shown(page, seat: str) -> int:
    text = page.locator(f".mug-p2p-seat[data-seat='{seat}'] .mug-netstats").first.inner_text()
    return int(text.split("rollbacks ")[1].split()[0])


def test_keys_in_one_seat_of_a_p2p_preview_move_it_on_both_peers_and_the_other_peer_rolls_back(browser, lab):
    page = browser.new_context(viewport={"width": 1400, "height": 1200}).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    open_notebook(page, lab, "p2p.ipynb")
    run_all(page)  # the widget is created and shown in one go: both seats must still get their scene and frame
    page.wait_for_function("() => document.querySelectorAll('.mug-p2p-seat canvas').length === 4", timeout=60_000)
    first, second = page.locator(".mug-p2p").nth(0), page.locator(".mug-p2p").nth(1)
    player, idle = (first.locator(f".mug-p2p-seat[data-seat='{s}']") for s in ("agent_0", "agent_1"))
    mirror = second.locator(".mug-p2p-seat[data-seat='agent_0']")
    page.wait_for_function(
        "() => [...document.querySelectorAll('.mug-p2p-seat')].every((n) => n.querySelector('.mug-netstats').innerText"
        " .includes('frame 0 ') && n.querySelector('.mug-hud')?.innerText.includes('step 0'))",
        timeout=30_000,
    )
    before = {"player": canvas_image(player), "idle": canvas_image(idle), "mirror": canvas_image(mirror)}
    first.locator(".mug-toolbar button", has_text="Play").click()
    first.locator(".mug-status", has_text="Playing").wait_for(timeout=10_000)
    player.locator("canvas").click()  # the focus (and the keys) in agent_0's view; agent_1 idles
    for key in ["ArrowRight", "ArrowDown", "ArrowLeft", "ArrowDown", "ArrowRight", "ArrowUp"]:
        page.keyboard.down(key)
        page.wait_for_timeout(500)
        page.keyboard.up(key)
    page.wait_for_function(
        "() => /rollbacks [1-9]/.test(document.querySelector(\".mug-p2p-seat[data-seat='agent_1'] .mug-netstats\").innerText)",
        timeout=30_000,
    )  # the idle peer learnt of agent_0's keys 150 ms late, after predicting none: it rolled back, and shows it
    assert canvas_image(player) != before["player"] and canvas_image(idle) != before["idle"]  # agent_0 moved on both
    assert canvas_image(mirror) != before["mirror"]  # and in the other view
    for seat in (player, idle):  # 60-step episodes: each end is shown once both peers agreed on it
        seat.locator(".mug-episode", has_text="Episode 1 ended (all peers agreed)").wait_for(timeout=10_000)
    link = first.locator(".mug-link-latency_ms")
    link.fill("300")
    link.press("Enter")
    page.wait_for_timeout(1000)
    first.locator(".mug-toolbar button", has_text="Pause").click()
    first.locator(".mug-status", has_text="Paused").wait_for(timeout=10_000)
    shown = rollbacks_shown(page, "agent_1")
    run_cells(page, [2])
    result = json.loads(wait_output(page, 2, "P2P", timeout=60_000))
    assert result["errors"] == [] and errors == []
    assert result["same"] and result["confirmed"] > 30  # both peers confirmed the same frames
    # the keys drove agent_0 only (the other view's agent_0, without the focus, did not send its lack of keys)
    assert {4, 2, 3, 1} <= set(result["moves_0"]) and result["moves_1"] == [0]
    stats = result["stats"]["agent_1"]
    assert stats["rollbacks"] >= shown > 0 and result["traced_rollbacks"] == stats["rollbacks"]
    assert stats["desyncs"] == 0 and stats["resim_frames"] >= stats["rollbacks"]
    assert result["latency_ms"] == 300  # the widget's link control reached the kernel
    assert [v.locator(".mug-errors").inner_text() for v in (first, second)] == ["", ""]
    assert second.locator(".mug-link-latency_ms").input_value() == "300"  # the other view follows the link setting
