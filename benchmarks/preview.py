"""The notebook preview in a real JupyterLab: live fps with an LSTM policy, and rollout + JS re-evaluation time.

    python benchmarks/preview.py [--seconds 60] [--steps 1000] [--screenshot PATH] [--only with|without]

1. Live: CartPole-v1 at 30 fps with the trained LSTM (mug/examples/cartpole_lstm.onnx)
   running in the browser (JS runtime); the kernel ticks at 30 fps and every step
   waits for the browser's result for that step's observation. Prints the achieved
   fps per 10 s window and the share of steps acted on by their own result
   (source ``policy``; anything else would be ``late``/``default``). Run twice:
   JupyterLab with mug's server extension (kernel WebSockets with TCP_NODELAY) and
   without it (Jupyter Server's stock sockets: Nagle + delayed ACK, about 21
   exchanges/s). Target: 100 % own-result, >= 20 fps sustained, 30 where the comm allows.
2. Rollout: ``preview.rollout(N)`` with the Python runtime, then the browser
   recomputes all N steps; prints both times. Target: rollout + JS <= 2 s.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from playwright.sync_api import sync_playwright

from tests.e2e.conftest import CHROMIUM_FLAGS, chromium_path
from tests.e2e.jupyter import JupyterServer, cell_output, open_notebook, run_cells, write_notebook

SETUP = """
import json, time
import numpy as np
import mug
from mug.examples.train_cartpole_lstm import DEFAULT_OUT
policy = mug.ModelConfig.from_onnx(DEFAULT_OUT, action="argmax")
scene = mug.GymScene("cartpole").environment("CartPole-v1", seed=0).policies({"agent_0": policy}).gameplay(num_episodes=10_000, max_steps=500).rendering(fps=30)
preview = scene.preview()
preview
"""
PLAY = "preview.play(); started = time.time()"
LIVE = """
preview.pause()
rows = preview.trace._rows
times = np.array([r["time"] for r in rows])
windows = [int(((times >= t) & (times < t + 10)).sum()) / 10 for t in np.arange(times[0], times[-1] - 9.99, 10)]
sources = [r["sources"]["agent_0"] for r in rows]
print("LIVE" + json.dumps({"steps": len(rows), "seconds": float(times[-1] - times[0]), "windows": windows,
      "own": sources.count("policy"), "other": {s: sources.count(s) for s in set(sources) - {"policy"}},
      "errors": preview.errors}))
"""
ROLL = "t0 = time.perf_counter(); rolled = preview.rollout({steps}, seed=1); python_s = time.perf_counter() - t0"
PARITY = """
print("PARITY" + json.dumps({"ran": preview.parity["ran"], "python_s": python_s, "max_delta": preview.parity.get("max_delta"),
      "differing": preview.parity.get("differing_actions")}))
"""


def wait_marker(page, index: int, marker: str, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = cell_output(page, index)
        if marker in text:
            return text[text.index(marker) + len(marker) :].strip()
        time.sleep(0.05)
    raise TimeoutError(f"no {marker} in cell {index}")


def run(args, extension: bool) -> tuple[dict, dict, float]:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        write_notebook(workdir / "bench.ipynb", [SETUP, PLAY, LIVE, ROLL.format(steps=args.steps), PARITY])
        server = JupyterServer(workdir, mug_extension=extension).start()
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)
                page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
                open_notebook(page, server, "bench.ipynb")
                run_cells(page, [0])
                page.locator(".mug-preview .mug-prob").first.wait_for(timeout=60_000)
                run_cells(page, [1])
                time.sleep(args.seconds)
                page.locator(".mug-preview").first.screenshot(path=args.screenshot)
                run_cells(page, [2])
                live = json.loads(wait_marker(page, 2, "LIVE"))
                t0 = time.perf_counter()
                run_cells(page, [3, 4])
                while True:
                    parity = json.loads(wait_marker(page, 4, "PARITY"))
                    if parity["ran"]:
                        break
                    time.sleep(0.05)
                    run_cells(page, [4])
                total = time.perf_counter() - t0
                browser.close()
        finally:
            server.stop()
    return live, parity, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--screenshot", default=str(Path(tempfile.gettempdir()) / "mug-preview.png"))
    parser.add_argument("--only", choices=["with", "without"], help="run one configuration only")
    args = parser.parse_args()
    configs = [("with", True), ("without", False)]
    for label, extension in [c for c in configs if args.only in (None, c[0])]:
        load_before = os.getloadavg()[0]
        live, parity, total = run(args, extension)
        rate = live["steps"] / live["seconds"]
        share = 100 * live["own"] / max(1, live["steps"])
        print(
            f"live preview, JupyterLab {label} mug's server extension (kernel WebSockets {'TCP_NODELAY' if extension else 'stock: Nagle on'}),"
        )
        print(
            f"  CartPole-v1 at 30 fps, LSTM in the browser, {live['seconds']:.0f} s"
            f" (machine load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after, {os.cpu_count()} cores):"
        )
        print(f"  fps overall {rate:.1f} (scene 30); per 10 s window: {', '.join(f'{w:.1f}' for w in live['windows'])}")
        print(
            f"  steps acted on by their own result: {live['own']} of {live['steps']} ({share:.1f} %); other sources: {live['other'] or 'none'}; errors: {live['errors'] or 'none'}"
        )
        print(
            f"  rollout of {args.steps} steps: Python {parity['python_s']:.2f} s; Python + JS re-evaluation {total:.2f} s (target <= 2 s)"
        )
        print(f"  JS vs Python: max |Δ logits| {parity['max_delta']:.2e}, differing actions {parity['differing']}")
    print(f"screenshot: {args.screenshot}")


if __name__ == "__main__":
    main()
