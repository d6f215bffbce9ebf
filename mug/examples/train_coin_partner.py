"""Train the demo's AI partner for CoinGrid and export it to ONNX.

    python -m mug.examples.train_coin_partner [OUT.onnx]

Behaviour cloning: a greedy expert (step toward the nearest coin, ties broken
in a fixed order) plays many seeded episodes; a two-layer MLP (29 -> 64 -> 5,
tanh) learns its moves with softmax cross-entropy and Adam, in NumPy. The
result is written as an ONNX graph with one input ``obs`` [batch, 29] and
one output ``output`` [batch, 5] (logits). The committed
``coin_partner.onnx`` was made by this script with its defaults.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from mug.examples.gridworld import MOVES, CoinGrid

DEFAULT_OUT = Path(__file__).with_name("coin_partner.onnx")


def expert_action(env: CoinGrid, agent: str) -> int:
    """Move toward the nearest coin (Manhattan distance); stay when none is left."""
    r, c = env.positions[agent]
    coins = np.argwhere(env.coins)
    if len(coins) == 0:
        return 0
    target = min(coins.tolist(), key=lambda rc: (abs(rc[0] - r) + abs(rc[1] - c), rc[0], rc[1]))
    best = min(MOVES, key=lambda a: (abs(target[0] - (r + MOVES[a][0])) + abs(target[1] - (c + MOVES[a][1])), a))
    return best


def demonstrations(episodes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Observations of agent_1 and the expert's actions; agent_0 moves at random."""
    env, rng = CoinGrid(), np.random.default_rng(seed)
    xs, ys = [], []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed * 100_000 + episode)
        while env.agents:
            action = expert_action(env, "agent_1")
            xs.append(obs["agent_1"])
            ys.append(action)
            obs, *_ = env.step({"agent_0": int(rng.integers(5)), "agent_1": action})
    return np.asarray(xs, np.float32), np.asarray(ys, np.int64)


def train(x: np.ndarray, y: np.ndarray, hidden: int = 64, epochs: int = 40, seed: int = 0) -> list[np.ndarray]:
    """Fit W1, b1, W2, b2 with Adam on softmax cross-entropy; returns the weights."""
    rng = np.random.default_rng(seed)
    params = [
        rng.standard_normal((x.shape[1], hidden)) * 0.3,
        np.zeros(hidden),
        rng.standard_normal((hidden, 5)) * 0.3,
        np.zeros(5),
    ]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    t = 0
    for _ in range(epochs):
        order = rng.permutation(len(x))
        for start in range(0, len(x), 256):
            idx = order[start : start + 256]
            xb, yb = x[idx].astype(np.float64), y[idx]
            h = np.tanh(xb @ params[0] + params[1])
            logits = h @ params[2] + params[3]
            p = np.exp(logits - logits.max(1, keepdims=True))
            p /= p.sum(1, keepdims=True)
            d = p
            d[np.arange(len(yb)), yb] -= 1
            d /= len(yb)
            dh = (d @ params[2].T) * (1 - h**2)
            grads = [xb.T @ dh, dh.sum(0), h.T @ d, d.sum(0)]
            t += 1
            for i, g in enumerate(grads):
                m[i] = 0.9 * m[i] + 0.1 * g
                v[i] = 0.999 * v[i] + 0.001 * g * g
                params[i] -= 0.01 * (m[i] / (1 - 0.9**t)) / (np.sqrt(v[i] / (1 - 0.999**t)) + 1e-8)
    return params


def accuracy(params: list[np.ndarray], x: np.ndarray, y: np.ndarray) -> float:
    logits = np.tanh(x @ params[0] + params[1]) @ params[2] + params[3]
    return float((logits.argmax(1) == y).mean())


def to_onnx(params: list[np.ndarray], path: Path) -> None:
    w1, b1, w2, b2 = (numpy_helper.from_array(p.astype(np.float32), n) for p, n in zip(params, ("W1", "b1", "W2", "b2")))
    graph = helper.make_graph(
        [
            helper.make_node("Gemm", ["obs", "W1", "b1"], ["z"]),
            helper.make_node("Tanh", ["z"], ["h"]),
            helper.make_node("Gemm", ["h", "W2", "b2"], ["output"]),
        ],
        "coin_partner",
        [helper.make_tensor_value_info("obs", TensorProto.FLOAT, ["batch_size", params[0].shape[0]])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch_size", 5])],
        [w1, b1, w2, b2],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="mug.examples.train_coin_partner")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)


def main(out: Path = DEFAULT_OUT) -> None:
    x, y = demonstrations(episodes=3000, seed=1)
    x_test, y_test = demonstrations(episodes=200, seed=2)
    params = train(x, y)
    print(
        f"{len(x)} demonstration steps; imitation accuracy: train {accuracy(params, x, y):.3f}, held out {accuracy(params, x_test, y_test):.3f}"
    )
    to_onnx(params, out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUT)
