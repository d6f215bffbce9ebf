"""Small ONNX graphs built in the tests, for cases the real fixtures do not cover
(int32 fixed inputs, a static batch, an unknown logit count, mismatched state dtypes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def recurrent_model(
    path: Path,
    *,
    obs: int = 4,
    hidden: int = 8,
    actions: int = 3,
    batch: int | str = "batch",
    seq_lens_dtype: int = TensorProto.INT32,
    state_out_dtype: int = TensorProto.FLOAT,
    logits_dim: int | str | None = None,
) -> Path:
    """``h_out = tanh(obs @ W + h_in @ U)``, ``logits = h_out @ V``; ``seq_lens`` is read but unused.

    Inputs ``obs [batch, obs]``, ``h_in [batch, hidden]``, ``seq_lens [batch]``;
    outputs ``logits [batch, actions]``, ``h_out [batch, hidden]``.
    """
    rng = np.random.default_rng(7)
    w = numpy_helper.from_array(rng.standard_normal((obs, hidden)).astype(np.float32), "W")
    u = numpy_helper.from_array(rng.standard_normal((hidden, hidden)).astype(np.float32) * 0.5, "U")
    v = numpy_helper.from_array(rng.standard_normal((hidden, actions)).astype(np.float32), "V")
    nodes = [
        helper.make_node("MatMul", ["obs", "W"], ["a"]),
        helper.make_node("MatMul", ["h_in", "U"], ["b"]),
        helper.make_node("Add", ["a", "b"], ["c"]),
        helper.make_node("Tanh", ["c"], ["h"]),
        helper.make_node("MatMul", ["h", "V"], ["logits"]),
        helper.make_node("Cast", ["h"], ["h_out"], to=state_out_dtype),
        helper.make_node("Shape", ["seq_lens"], ["unused"]),
    ]
    graph = helper.make_graph(
        nodes,
        "synthetic_recurrent",
        [
            helper.make_tensor_value_info("obs", TensorProto.FLOAT, [batch, obs]),
            helper.make_tensor_value_info("h_in", TensorProto.FLOAT, [batch, hidden]),
            helper.make_tensor_value_info("seq_lens", seq_lens_dtype, [batch]),
        ],
        [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, actions if logits_dim is None else logits_dim]),
            helper.make_tensor_value_info("h_out", state_out_dtype, [batch, hidden]),
        ],
        [w, u, v],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    if logits_dim is not None:
        # An output whose size no shape inference can find: logits reshaped by a runtime value.
        model = _opaque_logits(model)
    onnx.save(model, path)
    return path


def _opaque_logits(model: onnx.ModelProto) -> onnx.ModelProto:
    graph = model.graph
    for node in graph.node:
        if "logits" in node.output:
            node.output[0] = "logits_raw"
    graph.node.extend(
        [
            helper.make_node("Shape", ["logits_raw"], ["logits_shape"]),
            helper.make_node("Reshape", ["logits_raw", "logits_shape"], ["logits"]),
        ]
    )
    return model


def lstm_model(path: Path, *, obs: int = 4, hidden: int = 32, actions: int = 2, seed: int = 0) -> Path:
    """An RLlib-style LSTM policy (``mug.examples.train_cartpole_lstm.lstm_policy``) with random weights."""
    from mug.examples.train_cartpole_lstm import lstm_policy

    rng = np.random.default_rng(seed)
    shapes = {"W": (4 * hidden, obs), "R": (4 * hidden, hidden), "B": (8 * hidden,), "V": (hidden, actions), "b": (actions,)}
    onnx.save(lstm_policy({k: rng.standard_normal(v) * 0.3 for k, v in shapes.items()}), path)
    return path


def browser_act(frame: dict, buffers: list[bytes], runtime, agent: str, keys: list[str]) -> tuple[bytes, np.ndarray]:
    """The ``act`` a browser sends for ``frame``: ``runtime`` (standing in for the JS one) run on the frame's
    observation for ``agent``, with its logits and states; returns the encoded message and that observation."""
    from mug.session import encode_envelope
    from mug.session.messages import tensor_from_ref, tensor_ref

    obs = tensor_from_ref(frame["observations"][agent], buffers, "obs")
    out = runtime.step(obs)
    bufs: list[bytes] = []
    result = {
        "action": out.action,
        "logits": tensor_ref(out.logits, bufs),
        "states": {name: tensor_ref(t, bufs) for name, t in out.states.items()},
    }
    message = {"type": "act", "step": frame["step"], "episode": frame["episode"], "keys": keys, "policies": {agent: result}}
    return encode_envelope(message, bufs), obs
