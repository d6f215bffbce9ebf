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


def assert_same_histories(
    histories: dict[str, list[FrameRecord]], minimum: int, *, reloaded: tuple[str, ...] = (), spread: int = 45
) -> None:
    """Every peer's confirmed history is the same, frame by frame, up to the least confirmed frame, and every peer
    got there: at least ``minimum`` frames, at most ``spread`` frames behind the furthest. Histories run from
    frame 0 without a gap (a ``reloaded`` peer's may have one: the frames its old page did not confirm before
    the state it got)."""
    last = {}
    for pid, history in histories.items():
        frames = [r.frame for r in history]
        if pid in reloaded:
            assert frames == sorted(set(frames)), pid
        else:
            assert frames == list(range(len(frames))), (pid, frames[:5], len(frames))
        last[pid] = frames[-1] if frames else -1
    assert min(last.values()) + 1 >= minimum, last
    assert max(last.values()) - min(last.values()) <= spread, last
    upto = min(last.values())
    reference = next(pid for pid in histories if pid not in reloaded)
    expected = {r.frame: r.to_dict() for r in histories[reference] if r.frame <= upto}
    for pid, history in histories.items():
        mine = {r.frame: r.to_dict() for r in history if r.frame <= upto}
        if pid not in reloaded:
            assert mine == expected, pid
        else:
            assert mine == {f: expected[f] for f in mine}, pid
