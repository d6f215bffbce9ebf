"""Shared parts of the netcode tests: a deterministic N-agent env with plain-data state, peers, the LSTM driver."""

from __future__ import annotations

from typing import Any

import numpy as np

import mug
from mug.examples.browser_grid import PyCoinGrid
from mug.examples.coop_grid import CoopGrid
from mug.inference.runtime import PolicyRuntime
from mug.netcode import EnvSimulation, FrameRecord, RollbackPeer
from mug.netcode.ai import PolicyDriver
from tests.conftest import LSTM

SEED = 11
LSTM_OBS = 116  # the Overcooked LSTM's observation size


class PlainCoopGrid(CoopGrid):
    """``CoopGrid`` with the env state protocol in plain data, so that a state transfer can travel as JSON."""

    def get_state(self) -> dict[str, Any]:
        return {
            "positions": {a: list(p) for a, p in self.positions.items()},
            "coins": self.coins.astype(int).tolist(),
            "steps": self.steps,
            "agents": list(self.agents),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        self.positions = {a: (int(p[0]), int(p[1])) for a, p in state["positions"].items()}
        self.coins = np.asarray(state["coins"], dtype=bool)
        self.steps, self.agents = int(state["steps"]), list(state["agents"])


def lstm_observation(obs: Any) -> np.ndarray:
    """The env's observation (``2 * agents + size**2`` floats) as the LSTM's 116 floats: repeated, then cut.

    The model was trained on Overcooked, not on this grid; what matters here is that it is a real recurrent
    ONNX policy whose actions depend on every observation and on its hidden state."""
    flat = np.asarray(obs, dtype=np.float32).ravel()
    return np.resize(flat, LSTM_OBS)


def coop_peers(
    n: int,
    *,
    ai: bool = True,
    input_delay: int = 2,
    max_prediction: int = 8,
    max_steps: int = 40,
    envs: dict[str, type] | None = None,
    **options: Any,
) -> list[RollbackPeer]:
    """``n`` peers, one human seat each (``agent_0`` .. ``agent_{n-1}``), plus one AI seat when ``ai``; ``envs``
    gives some peers another env class than ``PlainCoopGrid``."""
    agents = n + (1 if ai else 0)
    owners = {f"agent_{i}": f"p{i}" for i in range(n)}
    ai_seats = [f"agent_{n}"] if ai else []
    peers = []
    for i in range(n):
        env = (envs or {}).get(f"p{i}", PlainCoopGrid)
        sim = EnvSimulation(lambda env=env: env(agents=agents, size=5, coins=5, max_steps=max_steps), SEED)
        peers.append(
            RollbackPeer(sim, f"p{i}", owners, ai_seats, input_delay=input_delay, max_prediction=max_prediction, **options)
        )
    return peers


def coin_peers(**options: Any) -> list[RollbackPeer]:
    """Two peers of ``PyCoinGrid`` (pure Python, as in Pyodide)."""
    owners = {"agent_0": "p0", "agent_1": "p1"}
    return [RollbackPeer(EnvSimulation(lambda: PyCoinGrid(max_steps=30), SEED), pid, owners, **options) for pid in ("p0", "p1")]


def lstm_drivers(peers: list[RollbackPeer]) -> dict[str, PolicyDriver]:
    """Every peer's own runtime of the LSTM fixture, same seed: the AI seats' actions must agree everywhere."""
    config = mug.ModelConfig.from_onnx(LSTM)
    return {
        p.peer_id: PolicyDriver(PolicyRuntime(config, seed=5), observe=lstm_observation, act=lambda a: int(a) % 5) for p in peers
    }


def plain(history: list[FrameRecord]) -> list[dict[str, Any]]:
    return [r.to_dict() for r in history]


def assert_same_histories(histories: dict[str, list[FrameRecord]], minimum: int) -> None:
    """Every peer's confirmed history is the same, frame by frame, over the frames all of them confirmed."""
    lengths = {p: len(h) for p, h in histories.items()}
    common = min(lengths.values())
    assert common >= minimum, lengths
    first, *rest = histories.values()
    for frame, record in enumerate(first[:common]):
        assert record.frame == frame
    for other in rest:
        assert plain(other[:common]) == plain(first[:common])
