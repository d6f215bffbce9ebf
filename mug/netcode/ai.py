"""``PolicyDriver``: answers a peer's AI requests with :class:`mug.inference.PolicyRuntime` (CPython, NumPy).

The rollback core runs AI seats on the confirmed timeline (see
:mod:`mug.netcode.peer`): the driver steps the runtime once per request, in
the order given, and hands back the action, a digest of the seat's hidden
state and sampling stream after the step, and (for state transfer) that
state as plain data. A request of a new episode first tells the runtime
(``boundary("episode")``, which resets hidden state as the model's
``reset_state`` says); a request with ``restore`` first loads the designated
peer's state. Not imported by ``mug.netcode`` itself (it needs NumPy).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mug.session.snapshots import value_hash

if TYPE_CHECKING:
    from mug.inference.runtime import PolicyRuntime
    from mug.netcode.peer import RollbackPeer

__all__ = ["PolicyDriver"]


class PolicyDriver:
    """Serves the AI requests of one peer with one runtime (every AI seat is an agent of it).

    Args:
        runtime: the seeded runtime; every peer builds its own with the same model and seed.
        observe: env observation -> the model's observation (default: unchanged).
        act: the model's action -> the env's action (default: unchanged).
    """

    def __init__(
        self,
        runtime: PolicyRuntime,
        *,
        observe: Callable[[Any], Any] | None = None,
        act: Callable[[int], Any] | None = None,
    ) -> None:
        self.runtime = runtime
        self.observe = observe or (lambda obs: obs)
        self.act = act or (lambda action: action)
        self._episodes: dict[str, int] = {}
        self.steps = 0

    def serve(self, peer: RollbackPeer) -> int:
        """Answer every due request of ``peer`` (new ones appear as answers confirm more frames); how many."""
        served = 0
        while requests := peer.ai_requests():
            for request in requests:
                if request.restore is not None:
                    self._load(request.seat, request.restore["state"])
                if self._episodes.get(request.seat, request.episode) != request.episode:
                    self.runtime.boundary("episode", request.seat)
                self._episodes[request.seat] = request.episode
                step = self.runtime.step(self.observe(request.observation), request.seat)
                blob = self._blob(request.seat)
                peer.provide_ai(request.seat, request.frame, self.act(step.action), value_hash(blob), blob, epoch=request.epoch)
                served += 1
        self.steps += served
        return served

    def _blob(self, seat: str) -> dict[str, Any]:
        agent = self.runtime.snapshot()["agents"][seat]
        return {
            "states": [s.tolist() for s in agent["states"]],
            "rng": int(agent["rng"]),
            "steps": int(agent["steps"]),
            "episode": self._episodes[seat],
        }

    def _load(self, seat: str, blob: dict[str, Any] | None) -> None:
        snapshot = self.runtime.snapshot()
        if blob is None:
            snapshot["agents"].pop(seat, None)  # the seat starts afresh: zero state, its initial sampling stream
            self._episodes.pop(seat, None)
        else:
            snapshot["agents"][seat] = {"states": blob["states"], "rng": blob["rng"], "steps": blob["steps"]}
            self._episodes[seat] = int(blob["episode"])
        self.runtime.restore(snapshot)
