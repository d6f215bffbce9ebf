"""Peer-to-peer rollback netcode core: pure Python, no I/O, importable in Pyodide (no NumPy, ONNX or Tornado).

- :class:`Simulation` / :class:`EnvSimulation`: the deterministic game a peer steps, snapshots and restores.
- :class:`RollbackPeer`: one peer, Sans-I/O (inputs, prediction, rollback, confirmation, AI seats on the
  confirmed timeline, hash exchange, desync repair by state transfer); its wire messages are documented in
  :mod:`mug.netcode.peer`.
- :mod:`mug.netcode.simnet`: a simulated network and a multi-peer harness (tests, ``benchmarks/rollback.py``).
- :mod:`mug.netcode.ai`: ``PolicyDriver``, AI seats served by :class:`mug.inference.PolicyRuntime` (CPython).
"""

from mug.netcode.peer import Outgoing, RollbackPeer
from mug.netcode.records import AIRequest, FrameRecord, PeerStats
from mug.netcode.simulation import EnvSimulation, FrameResult, Simulation

__all__ = ["AIRequest", "EnvSimulation", "FrameRecord", "FrameResult", "Outgoing", "PeerStats", "RollbackPeer", "Simulation"]
