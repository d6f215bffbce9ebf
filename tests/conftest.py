"""Shared test fixtures: the real RLlib ONNX exports and small synthetic graphs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mug.inference.parity import node_available
from tests.synthetic import recurrent_model

FIXTURES = Path(__file__).parent / "fixtures" / "onnx"
SLIME = FIXTURES / "slime_volleyball_mlp.onnx"
LSTM = FIXTURES / "overcooked_lstm_rllib.onnx"
CONV_LSTM = FIXTURES / "overcooked_conv_lstm_rllib.onnx"
COGRID = FIXTURES / "cogrid_lstm_batch4.onnx"

requires_node = pytest.mark.skipif(
    not node_available(), reason="needs Node.js and the built JS runtime (mug/static/policy-trace.mjs)"
)


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("synthetic")


@pytest.fixture(scope="session")
def recurrent(synthetic_dir) -> Path:
    """The synthetic recurrent graph with an int32 ``seq_lens``."""
    return recurrent_model(synthetic_dir / "recurrent.onnx")


def node_path() -> str:
    node = shutil.which("node")
    assert node, "Node.js is required"
    return node
