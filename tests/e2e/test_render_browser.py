"""Engine frames drawn by the JS canvas renderer in headless Chromium, checked pixel by pixel on a screenshot."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
from PIL import Image

import mug
from mug.examples import CoinGrid
from mug.examples.gridworld import COLORS
from mug.session import GameSession, MemoryTransport
from tests.servers import ServerProcess

PAGE = """<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,"></head>
<body style="margin:0;background:#000"><canvas id="scene"></canvas>
<script type="module">
import { CanvasRenderer } from "./client.js";
window.draw = async (render, buffers, options) => {
  window.renderer ??= new CanvasRenderer(document.getElementById("scene"), options);
  await window.renderer.draw(render, buffers.map((b) => Uint8Array.from(b)));
};
window.ready = true;
</script></body></html>"""


@pytest.fixture()
def page(browser, asset_server):
    base, root = asset_server
    (root / "render.html").write_text(PAGE)
    page = browser.new_page(viewport={"width": 400, "height": 300}, device_scale_factor=1)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{base}/render.html")
    page.wait_for_function("window.ready === true")
    yield page
    assert errors == []
    page.close()


def grid_session(mode, encoding="png"):
    scene = (
        mug.GymScene("grid")
        .environment(CoinGrid, seed=2)
        .policies({"agent_0": mug.Human, "agent_1": mug.Random})
        .gameplay(action_mapping={"ArrowRight": 4, "ArrowDown": 2})
    )
    if mode == "surface":
        scene.rendering(mode="surface", draw=lambda env, s: env.draw(s), width=160, height=160, background="#ffffff")
    else:
        scene.rendering(width=160, height=160, encoding=encoding)
    transport = MemoryTransport()
    session = GameSession(scene, ["c"], transport)
    session.start()
    return session, transport


def draw_latest_frame(page, transport, scene):
    frame, buffers = transport.last("c", "frame")
    transport.take("c")
    options = {"width": scene.width, "height": scene.height, "background": scene.background}
    page.evaluate("([r, b, o]) => window.draw(r, b, o)", [frame["render"], [list(x) for x in buffers], options])
    shot = page.locator("#scene").screenshot()
    return np.asarray(Image.open(io.BytesIO(shot)).convert("RGB"))


@pytest.mark.parametrize("encoding", ["png", "zlib", "raw"])
def test_rgb_frame_matches_env_render(page, encoding):
    session, transport = grid_session("rgb", encoding)
    expected = session.env.render()
    shown = draw_latest_frame(page, transport, session.scene)
    assert shown.shape == expected.shape
    (r0, c0), (r1, c1) = session.env.env.positions["agent_0"], session.env.env.positions["agent_1"]
    for y, x in [(5, 5), (r0 * 32 + 16, c0 * 32 + 16), (r1 * 32 + 16, c1 * 32 + 16), (159, 159), (80, 33)]:
        assert tuple(shown[y, x]) == tuple(expected[y, x]), (y, x)


def rgb(hex_color):
    return tuple(int(hex_color[i : i + 2], 16) for i in (1, 3, 5))


def test_surface_frames_draw_and_apply_deltas(page):
    session, transport = grid_session("surface")
    env = session.env.env
    before = env.positions["agent_0"]
    shown = draw_latest_frame(page, transport, session.scene)
    assert tuple(shown[before[0] * 32 + 16, before[1] * 32 + 16]) == rgb(COLORS["agent_0"])
    coin = tuple(int(v) for v in np.argwhere(env.coins)[0])
    assert tuple(shown[coin[0] * 32 + 16, coin[1] * 32 + 16]) == rgb("#e6b400")
    assert tuple(shown[1 * 32 + 2, 1 * 32 + 2]) == (255, 255, 255)  # inside a cell, off any object
    key = "ArrowRight" if before[1] < 4 else "ArrowDown"
    session.receive("c", {"type": "act", "step": 0, "keys": [key]})
    session.tick()
    after = env.positions["agent_0"]
    assert after != before
    shown = draw_latest_frame(page, transport, session.scene)
    assert tuple(shown[after[0] * 32 + 16, after[1] * 32 + 16]) == rgb(COLORS["agent_0"])
    if before != env.positions["agent_1"]:
        assert tuple(shown[before[0] * 32 + 16, before[1] * 32 + 16]) == (255, 255, 255)  # moved away: old square cleared


IMAGE_STUDY = """
import mug
study = mug.Stager([
    mug.GymScene("sprites")
    .environment("CartPole-v1", seed=1)
    .policies({"agent_0": mug.Random})
    .gameplay(num_episodes=1000)  # CartPole episodes are short: the scene outlasts the test
    .rendering(mode="surface", width=100, height=100, background="#ffffff",
               draw=lambda env, s: s.image(10, 20, 64, 64, "tiles", id="tiles"))
    .assets(directory=%r, images={"tiles": "art/quadrants.png"}),
    mug.EndScene(completion_code="DONE"),
])
"""


def test_surface_images_are_fetched_by_name_and_drawn(browser, tmp_path):
    quadrants = np.zeros((32, 32, 3), np.uint8)
    quadrants[:16, :16], quadrants[:16, 16:], quadrants[16:, :16], quadrants[16:, 16:] = (
        (220, 0, 0),
        (0, 200, 0),
        (0, 0, 210),
        (240, 240, 0),
    )
    (tmp_path / "study" / "art").mkdir(parents=True)  # the data dir may not sit inside the asset dir
    Image.fromarray(quadrants).save(tmp_path / "study" / "art" / "quadrants.png")
    (tmp_path / "image_study.py").write_text(IMAGE_STUDY % str(tmp_path / "study"))
    server = ServerProcess(["deploy", f"{tmp_path / 'image_study.py'}:study"], tmp_path / "data").start()
    try:
        page = browser.new_context().new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{server.url}?PROLIFIC_PID=painter")
        page.wait_for_selector("#mug-canvas")
        pixel = "([x, y]) => Array.from(document.querySelector('#mug-canvas').getContext('2d').getImageData(x, y, 1, 1).data.slice(0, 3))"
        deadline = time.monotonic() + 10  # polled from here: the page's CSP allows no eval (wait_for_function)
        while page.evaluate(pixel, [26, 36]) == [255, 255, 255] and time.monotonic() < deadline:
            page.wait_for_timeout(50)
        # the 32x32 image scaled into the 64x64 box at (10, 20): each quadrant is 32 px wide
        assert page.evaluate(pixel, [26, 36]) == [220, 0, 0]
        assert page.evaluate(pixel, [58, 36]) == [0, 200, 0]
        assert page.evaluate(pixel, [26, 68]) == [0, 0, 210]
        assert page.evaluate(pixel, [58, 68]) == [240, 240, 0]
        assert page.evaluate(pixel, [5, 5]) == [255, 255, 255]  # outside the box: the background
        assert errors == []
        page.context.close()
    finally:
        server.stop()
