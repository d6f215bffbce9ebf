"""Per-step cost of PolicyRuntime.step against a bare ONNX Runtime call, in Python and in JS (Node).

    python benchmarks/inference.py [--steps N] [--rounds R]

Both sides run the same model (overcooked_lstm_rllib.onnx) on the same feeds,
measured in alternating rounds in one process so machine noise hits both
alike; the median round is reported. Target: overhead ratio <= 1.15.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import time
from pathlib import Path

import numpy as np
import onnxruntime

import mug

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "tests" / "fixtures" / "onnx" / "overcooked_lstm_rllib.onnx"
TARGET = 1.15


def python_rounds(steps: int, rounds: int) -> tuple[float, float]:
    config = mug.ModelConfig.from_onnx(MODEL)
    runtime = mug.PolicyRuntime(config, seed=0)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(MODEL), options, providers=["CPUExecutionProvider"])
    obs = np.random.default_rng(0).standard_normal(116).astype(np.float32)
    first = runtime.step(obs)
    feeds = {
        "obs": obs.reshape(1, 116),
        "state_in_0": np.asarray(first.states["state_out_0"]),
        "state_in_1": np.asarray(first.states["state_out_1"]),
        "seq_lens": np.ones(1, np.float32),
    }
    names = ["output", "state_out_0", "state_out_1"]
    for _ in range(2000):
        session.run(names, feeds)
        runtime.step(obs)
    bare, step = [], []
    for r in range(rounds):
        if r % 50 == 0:
            runtime.reset()
        t0 = time.perf_counter()
        for _ in range(steps):
            session.run(names, feeds)
        t1 = time.perf_counter()
        for _ in range(steps):
            runtime.step(obs)
        t2 = time.perf_counter()
        bare.append((t1 - t0) / steps)
        step.append((t2 - t1) / steps)
    return statistics.median(bare), statistics.median(step)


def js_rounds(steps: int, rounds: int) -> tuple[float, float] | None:
    node = shutil.which("node")
    if node is None:
        return None
    proc = subprocess.run(
        [node, str(Path(__file__).with_suffix(".mjs")), "--model", str(MODEL), "--steps", str(steps), "--rounds", str(rounds)],
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return result["bare"], result["step"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=500, help="steps per round")
    parser.add_argument("--rounds", type=int, default=40, help="alternating rounds")
    args = parser.parse_args()
    rows = [
        ("Python (onnxruntime)", python_rounds(args.steps, args.rounds)),
        ("JS (onnxruntime-web, Node)", js_rounds(args.steps, args.rounds)),
    ]
    print(f"model: {MODEL.name}; {args.rounds} alternating rounds of {args.steps} steps; median round")
    print(f"{'runtime':<28} {'bare run (us)':>14} {'PolicyRuntime.step (us)':>24} {'ratio':>7}  target <= {TARGET}")
    for name, result in rows:
        if result is None:
            print(f"{name:<28} {'skipped: Node.js not found':>47}")
            continue
        bare, step = result
        ratio = step / bare
        verdict = "ok" if ratio <= TARGET else "OVER"
        print(f"{name:<28} {bare * 1e6:>14.1f} {step * 1e6:>24.1f} {ratio:>7.3f}  {verdict}")


if __name__ == "__main__":
    main()
