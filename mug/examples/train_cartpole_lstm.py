"""Train a small LSTM policy for CartPole-v1 and export it to ONNX (RLlib names).

    python -m mug.examples.train_cartpole_lstm [OUT.onnx]

The policy is an ONNX ``LSTM`` (8 units) followed by a linear layer to two
logits. Training is the cross-entropy method in NumPy: each generation samples
weight vectors around a mean, plays them greedily (argmax) on seeded
episodes, and moves the mean to the best fifth. The NumPy forward pass follows
ONNX's LSTM equations (gate order i, o, f, c), and the script checks the
exported graph against it with ONNX Runtime or ``onnx.reference``. The committed
``cartpole_lstm.onnx`` was made by this script with its defaults.

Graph: inputs ``obs`` [b, 4], ``state_in_0`` (h) and ``state_in_1`` (c) [b, 8],
``seq_lens`` [b]; outputs ``output`` [b, 2], ``state_out_0``, ``state_out_1`` [b, 8].
"""

from __future__ import annotations

import sys
from pathlib import Path

import gymnasium
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HIDDEN, OBS, ACTIONS = 8, 4, 2
DEFAULT_OUT = Path(__file__).with_name("cartpole_lstm.onnx")
SHAPES = {"W": (4 * HIDDEN, OBS), "R": (4 * HIDDEN, HIDDEN), "B": (8 * HIDDEN,), "V": (HIDDEN, ACTIONS), "b": (ACTIONS,)}
SIZE = sum(int(np.prod(s)) for s in SHAPES.values())


def unpack(theta: np.ndarray) -> dict[str, np.ndarray]:
    out, i = {}, 0
    for name, shape in SHAPES.items():
        n = int(np.prod(shape))
        out[name] = theta[i : i + n].reshape(shape)
        i += n
    return out


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def step(p: dict[str, np.ndarray], x: np.ndarray, h: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One LSTM step as ONNX defines it (gates i, o, f, c), then the logits."""
    gates = p["W"] @ x + p["R"] @ h + p["B"][: 4 * HIDDEN] + p["B"][4 * HIDDEN :]
    i, o, f, g = (gates[k * HIDDEN : (k + 1) * HIDDEN] for k in range(4))
    c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
    h = sigmoid(o) * np.tanh(c)
    return h @ p["V"] + p["b"], h, c


def episode_return(theta: np.ndarray, seed: int, env: gymnasium.Env) -> float:
    p = unpack(theta)
    obs, _ = env.reset(seed=seed)
    h = c = np.zeros(HIDDEN)
    total = 0.0
    for _ in range(500):
        logits, h, c = step(p, obs.astype(np.float64), h, c)
        obs, reward, terminated, truncated, _ = env.step(int(np.argmax(logits)))
        total += reward
        if terminated or truncated:
            break
    return total


def train(generations: int = 40, population: int = 40, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    env = gymnasium.make("CartPole-v1")
    mean, std = np.zeros(SIZE), np.full(SIZE, 0.5)
    for generation in range(generations):
        samples = mean + std * rng.standard_normal((population, SIZE))
        seeds = rng.integers(0, 2**31, size=3)
        scores = np.array([np.mean([episode_return(t, int(s), env) for s in seeds]) for t in samples])
        elite = samples[np.argsort(scores)[-population // 5 :]]
        mean, std = elite.mean(0), elite.std(0) + 0.02
        print(f"generation {generation:2d}: best {scores.max():5.1f}, mean {scores.mean():5.1f}", flush=True)
        if scores.mean() >= 495:
            break
    return mean


def lstm_policy(weights: dict[str, np.ndarray], name: str = "lstm_policy") -> onnx.ModelProto:
    """An RLlib-style LSTM policy graph from ``W`` [4h, obs], ``R`` [4h, h], ``B`` [8h], ``V`` [h, actions], ``b`` [actions].

    Inputs ``obs`` [b, obs], ``state_in_0`` (h) and ``state_in_1`` (c) [b, h], ``seq_lens`` [b]
    (read, unused); outputs ``output`` [b, actions] and ``state_out_0``/``state_out_1`` [b, h].
    """
    p = {k: np.asarray(v, np.float32) for k, v in weights.items()}
    hidden, obs = p["W"].shape[0] // 4, p["W"].shape[1]
    actions, batch = p["V"].shape[1], "batch_size"
    graph = helper.make_graph(
        [
            helper.make_node("Unsqueeze", ["obs", "axis0"], ["x"]),  # a sequence of one step
            helper.make_node("Unsqueeze", ["state_in_0", "axis0"], ["h0"]),
            helper.make_node("Unsqueeze", ["state_in_1", "axis0"], ["c0"]),
            helper.make_node("LSTM", ["x", "W", "R", "B", "", "h0", "c0"], ["y", "h1", "c1"], hidden_size=hidden),
            helper.make_node("Squeeze", ["h1", "axis0"], ["state_out_0"]),
            helper.make_node("Squeeze", ["c1", "axis0"], ["state_out_1"]),
            helper.make_node("Gemm", ["state_out_0", "V", "bias"], ["output"]),
            helper.make_node("Shape", ["seq_lens"], ["seq_lens_shape"]),
        ],
        name,
        [
            helper.make_tensor_value_info("obs", TensorProto.FLOAT, [batch, obs]),
            helper.make_tensor_value_info("state_in_0", TensorProto.FLOAT, [batch, hidden]),
            helper.make_tensor_value_info("state_in_1", TensorProto.FLOAT, [batch, hidden]),
            helper.make_tensor_value_info("seq_lens", TensorProto.FLOAT, [batch]),
        ],
        [
            helper.make_tensor_value_info("output", TensorProto.FLOAT, [batch, actions]),
            helper.make_tensor_value_info("state_out_0", TensorProto.FLOAT, [batch, hidden]),
            helper.make_tensor_value_info("state_out_1", TensorProto.FLOAT, [batch, hidden]),
        ],
        [
            numpy_helper.from_array(np.array([0], np.int64), "axis0"),
            numpy_helper.from_array(p["W"][None], "W"),
            numpy_helper.from_array(p["R"][None], "R"),
            numpy_helper.from_array(p["B"][None], "B"),
            numpy_helper.from_array(p["V"], "V"),
            numpy_helper.from_array(p["b"], "bias"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="mug.examples")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def to_onnx(theta: np.ndarray, path: Path) -> None:
    onnx.save(lstm_policy(unpack(theta), "cartpole_lstm"), path)


def check(theta: np.ndarray, path: Path) -> float:
    """Largest |logit difference| between the exported graph and the NumPy forward pass over an episode."""
    import mug

    runtime = mug.PolicyRuntime(mug.ModelConfig.from_onnx(path, action="argmax"))
    p = unpack(theta.astype(np.float32).astype(np.float64))
    env = gymnasium.make("CartPole-v1")
    obs, _ = env.reset(seed=123)
    h = c = np.zeros(HIDDEN)
    worst = 0.0
    for _ in range(200):
        logits, h, c = step(p, obs.astype(np.float64), h, c)
        out = runtime.step(obs)
        worst = max(worst, float(np.abs(out.logits - logits).max()))
        obs, _, terminated, truncated, _ = env.step(out.action)
        if terminated or truncated:
            break
    return worst


def main(out: Path = DEFAULT_OUT) -> None:
    theta = train()
    env = gymnasium.make("CartPole-v1")
    score = np.mean([episode_return(theta, 10_000 + s, env) for s in range(20)])
    print(f"mean return of the trained policy over 20 held-out episodes: {score:.1f} (500 is the maximum)")
    to_onnx(theta, out)
    print(f"wrote {out}; graph vs NumPy max |Δ logits| = {check(theta, out):.2e}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUT)
