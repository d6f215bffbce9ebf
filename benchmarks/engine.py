"""Session-engine overhead and frame sizes, measured side by side in one run.

    python benchmarks/engine.py [--steps N] [--rounds R]

1. Steps/s of the engine (CartPole-v1, a server-side LSTM policy, in-memory
   transport, recording every step) against a bare loop of gymnasium +
   PolicyRuntime doing the same stepping, in alternating rounds; once with the
   2-object Surface drawing and once with PNG rgb_array frames (the bare loop
   then renders and encodes too). Target: ratio <= 1.3.
2. Bytes and encode time per CartPole frame for each render encoding.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import gymnasium

import mug
from mug.examples.cartpole import draw_cartpole
from mug.rendering import Surface, encode_rgb
from mug.session import GameSession, MemoryRecorder
from tests.synthetic import lstm_model

TARGET = 1.3


class CountingTransport:
    """Drops messages, counting bytes of JSON and buffers (as a socket would carry them)."""

    def __init__(self) -> None:
        self.messages = 0

    def send(self, client_id, message, buffers) -> None:
        self.messages += 1


def engine_runner(config: mug.ModelConfig, mode: str):
    scene = mug.GymScene("cartpole").environment("CartPole-v1", seed=1).policies({"agent_0": config}, inference="server")
    scene.gameplay(num_episodes=100_000)
    if mode == "surface":
        scene.rendering(mode="surface", draw=draw_cartpole)
    session = GameSession(scene, ["observer"], CountingTransport(), MemoryRecorder())
    session.start()

    def run(steps: int) -> None:
        for _ in range(steps):
            session.tick()
        session.recorder.events.clear()  # keep memory flat between rounds

    return run


def bare_runner(config: mug.ModelConfig, mode: str):
    env = gymnasium.make("CartPole-v1", render_mode="rgb_array" if mode == "png" else None)
    runtime = mug.PolicyRuntime(config, seed=0)
    surface = Surface(600, 400)
    obs, _ = env.reset(seed=1)

    def run(steps: int) -> None:
        nonlocal obs
        for _ in range(steps):
            action = runtime.step(obs).action
            obs, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                obs, _ = env.reset()
                runtime.reset()
            if mode == "png":
                encode_rgb(env.render(), "png")
            else:
                draw_cartpole(env, surface)
                json.dumps(surface.commit())

    return run


def compare(config: mug.ModelConfig, mode: str, steps: int, rounds: int) -> tuple[float, float]:
    engine, bare = engine_runner(config, mode), bare_runner(config, mode)
    engine(200)
    bare(200)
    e, b = [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        bare(steps)
        t1 = time.perf_counter()
        engine(steps)
        t2 = time.perf_counter()
        b.append(steps / (t1 - t0))
        e.append(steps / (t2 - t1))
    return statistics.median(b), statistics.median(e)


def frame_sizes(frames: int = 200) -> list[tuple[str, float, float]]:
    env = gymnasium.make("CartPole-v1", render_mode="rgb_array")
    env.reset(seed=3)
    images, surface_payloads = [], []
    surface = Surface(600, 400)
    for _ in range(frames):
        _, _, term, trunc, _ = env.step(env.action_space.sample())
        if term or trunc:
            env.reset()
        images.append(env.render())
        draw_cartpole(env, surface)
        surface_payloads.append(surface.commit())
    rows = []
    for encoding in ("png", "zlib", "raw"):
        t0 = time.perf_counter()
        sizes = [len(encode_rgb(img, encoding)[1]) for img in images]
        rows.append((f"rgb {encoding}", statistics.mean(sizes), (time.perf_counter() - t0) / frames * 1e3))
    t0 = time.perf_counter()
    sizes = [len(json.dumps(p, separators=(",", ":"))) for p in surface_payloads]
    rows.append(("surface (JSON deltas)", statistics.mean(sizes), (time.perf_counter() - t0) / frames * 1e3))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300, help="steps per round")
    parser.add_argument("--rounds", type=int, default=9, help="alternating rounds")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        config = mug.ModelConfig.from_onnx(lstm_model(Path(tmp) / "cartpole_lstm.onnx", obs=4, hidden=64, actions=2))
        print(f"CartPole-v1, server-side LSTM (64 units), {args.rounds} alternating rounds of {args.steps} steps; median")
        print(f"{'rendering':<22} {'bare loop (steps/s)':>20} {'engine (steps/s)':>18} {'overhead':>9}  target <= {TARGET}")
        for mode in ("surface", "png"):
            bare, engine = compare(config, mode, args.steps, args.rounds)
            ratio = bare / engine
            print(f"{mode:<22} {bare:>20.0f} {engine:>18.0f} {ratio:>9.3f}  {'ok' if ratio <= TARGET else 'OVER'}")
    print()
    print(f"{'CartPole frame encoding':<24} {'bytes/frame':>12} {'encode ms/frame':>16}")
    for name, size, ms in frame_sizes():
        print(f"{name:<24} {size:>12.0f} {ms:>16.3f}")


if __name__ == "__main__":
    main()
