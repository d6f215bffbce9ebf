"""A client that cannot keep up with realtime frames (headless Chromium, the participant's GameView) draws the newest,
counts the ones it skipped, and still answers every frame whose policy result the engine waits for."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

import mug
from mug.examples import CoinGrid
from mug.scenes.policies import file_sha256
from mug.session import GameSession, MemoryTransport
from mug.session.messages import tensor_from_ref
from tests.e2e.partner_studies import KEYS, PARTNER

PAGE = """<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,"></head>
<body style="margin:0"><div id="root"></div>
<script type="module">
import { CanvasRenderer, GameView, configureOrt } from "./client.js";
configureOrt({ wasmUrl: new URL("./ort-wasm-simd-threaded.wasm", location.href).href });
window.errors = [];
window.start = (meta) => {
  window.acts = [];
  window.game = new GameView(document.getElementById("root"), meta, {
    send: (message) => window.acts.push(message),
    fetchAsset: async (path) => new Uint8Array(await (await fetch(path)).arrayBuffer()),
    onError: (text) => window.errors.push(text),
  });
  return window.game.ready;
};
window.feed = async (frames) => {  // all in one task: as if they had piled up while the device was busy
  let done;
  for (const [message, buffers] of frames) done = window.game.frame(message, buffers.map((b) => Uint8Array.from(b)));
  await done;
  return window.acts.filter((m) => m.type === "act");
};
const pixels = (canvas) => canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data.join();
window.drawnAsIf = async (frames, meta) => {  // the game canvas vs every frame drawn in turn on a canvas of its own
  const reference = new CanvasRenderer(document.createElement("canvas"), meta);
  const after = [];
  for (const [message, buffers] of frames) {
    await reference.draw(message.render, buffers.map((b) => Uint8Array.from(b)));
    after.push(pixels(reference.canvas));
  }
  const shown = pixels(document.getElementById("mug-canvas"));
  return { last: shown === after.at(-1), first: shown === after[0] };
};
window.ready = true;
</script></body></html>"""


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def page(browser, asset_server):
    base, root = asset_server
    (root / "game.html").write_text(PAGE)
    model = root / "models" / "grid" / "agent_1" / f"{file_sha256(PARTNER.onnx_path)[:16]}.onnx"  # GymScene.model_path
    model.parent.mkdir(parents=True, exist_ok=True)
    model.write_bytes(Path(PARTNER.onnx_path).read_bytes())
    page = browser.new_page(viewport={"width": 400, "height": 400}, device_scale_factor=1)
    page.goto(f"{base}/game.html")
    page.wait_for_function("window.ready === true")
    yield page
    assert page.evaluate("window.errors") == []
    page.close()


def session(partner):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scene = (
            mug.GymScene("grid")
            .environment(CoinGrid, {"max_steps": 100}, seed=2)
            .policies({"agent_0": mug.Human, "agent_1": PARTNER if partner else mug.Random}, inference="browser")
            .gameplay(action_mapping=KEYS)
            .rendering(mode="surface", draw=lambda env, s: env.draw(s), width=160, height=160, background="#ffffff")
        )
    transport, clock = MemoryTransport(), Clock()
    s = GameSession(scene, ["c"], transport, clock=clock)
    s.start()
    return s, transport, clock


def frames_piling_up(s, transport, clock, n):
    """``n`` frames the engine sends while the client sends nothing (past each deadline for a browser-side policy)."""
    for _ in range(n - 1):
        clock.now += 200.0
        assert s.tick()
    sent = transport.take("c")
    meta = next(m for m, _ in sent if m["type"] == "scene")["scene"]
    frames = [(m, [list(b) for b in bufs]) for m, bufs in sent if m["type"] == "frame"]
    assert len(frames) == n
    return meta, frames


def test_a_slow_client_draws_the_newest_frame_and_counts_the_rest(page):
    s, transport, clock = session(partner=False)
    meta, frames = frames_piling_up(s, transport, clock, 30)
    page.evaluate("(meta) => window.start(meta)", meta)
    acts = page.evaluate("(frames) => window.feed(frames)", frames)
    assert [(a["step"], a.get("dropped")) for a in acts] == [(29, 29)]  # one act, for the newest; 29 frames not drawn
    drawn = page.evaluate("([frames, meta]) => window.drawnAsIf(frames, meta)", [frames, meta])
    assert drawn == {"last": True, "first": False}  # the newest frame, with the skipped frames' Surface changes applied


def test_frames_carrying_policy_observations_are_all_acted_on_in_order(page):
    s, transport, clock = session(partner=True)
    meta, frames = frames_piling_up(s, transport, clock, 12)
    page.evaluate("(meta) => window.start(meta)", meta)
    acts = page.evaluate("(frames) => window.feed(frames)", frames)
    assert [a["step"] for a in acts] == list(range(12))  # none skipped: the engine waits for each
    assert sum(a.get("dropped", 0) for a in acts) == 11  # but only the newest was drawn
    runtime = mug.PolicyRuntime(PARTNER, seed=0)
    expected = [
        runtime.step(tensor_from_ref(m["observations"]["agent_1"], [bytes(b) for b in bufs], "obs"), "agent_1").action
        for m, bufs in frames
    ]
    assert [a["policies"]["agent_1"]["action"] for a in acts] == expected
