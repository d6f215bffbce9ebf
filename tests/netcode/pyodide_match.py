"""A two-peer PyCoinGrid match on a lossy simulated network, run the same way in CPython and in Pyodide.

Shipped into Pyodide as a top-level module by ``test_pyodide.py``; plain Python only.
"""

from __future__ import annotations

import sys
from typing import Any

from mug.examples.browser_grid import PyCoinGrid
from mug.netcode import EnvSimulation, RollbackPeer
from mug.netcode.simnet import Link, SimNet, held_inputs, run_peers


def play(args: dict[str, Any]) -> dict[str, Any]:
    """Every peer's confirmed chain values and stats, and which of NumPy/ONNX/Tornado got imported."""
    owners = {"agent_0": "p0", "agent_1": "p1"}
    peers = [RollbackPeer(EnvSimulation(lambda: PyCoinGrid(max_steps=25), 3), pid, owners) for pid in owners.values()]
    net = SimNet(default=Link(0.08, 0.03, 0.1, 0.05, 0.1), seed=int(args["seed"]))
    result = run_peers(peers, net, float(args["seconds"]), held_inputs(int(args["seed"])))
    heavy = sorted(m for m in ("numpy", "onnx", "onnxruntime", "tornado", "gymnasium") if m in sys.modules)
    return {
        "chains": {pid: [r.chain for r in history] for pid, history in result.histories.items()},
        "rollbacks": {pid: stats["rollbacks"] for pid, stats in result.stats.items()},
        "heavy_modules": heavy,
    }
