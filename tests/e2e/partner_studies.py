"""Studies with a recurrent, sampling AI partner in CoinGrid, deployed by the latency and reconnect tests
(``mug deploy tests/e2e/partner_studies.py:NAME``)."""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import numpy as np

import mug
from mug.examples import CoinGrid
from tests.synthetic import recurrent_model

__all__ = [
    "KEYS",
    "PARTNER",
    "browser_partner",
    "browser_partner_lockstep",
    "browser_partner_strict",
    "python_rerun",
    "server_partner",
]

KEYS = {"ArrowUp": 1, "ArrowDown": 2, "ArrowLeft": 3, "ArrowRight": 4}
#: A GRU-like policy (hidden state ``h_out``) that samples its actions: a lost state or stream shows in every step.
PARTNER = mug.ModelConfig.from_onnx(
    recurrent_model(Path(tempfile.mkdtemp(prefix="mug-partner-")) / "partner.onnx", obs=29, actions=5)
)


def _study(inference: str, mode: str = "realtime", steps: int = 30, **runtime) -> mug.Stager:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the build-time warning about a browser-side realtime policy is the point here
        game = (
            mug.GymScene("grid")
            .environment(CoinGrid, {"max_steps": steps}, seed=3)
            .policies({"agent_0": mug.Human, "agent_1": PARTNER}, inference=inference)
            .gameplay(action_mapping=KEYS, mode=mode, input_mode="single_keystroke" if mode == "lockstep" else "pressed_keys")
            .rendering(mode="surface", draw=lambda env, surface: env.draw(surface), width=160, height=160, fps=10)
            .runtime(policy_seed=4, **runtime)
            .data(record_observations=True)
        )
    return mug.Stager([game, mug.EndScene(completion_code="DONE")])


#: Realtime; ``inference="auto"``: the partner runs on the server.
server_partner = _study("auto")
#: Realtime; the partner runs in the participant's browser and each step waits for its result.
browser_partner = _study("browser", act_timeout_s=3.0)  # far above the 100 ms round trip, even on a busy test machine
#: As ``browser_partner`` with a deadline shorter than the test proxy's round trip: steps go ``late``.
browser_partner_strict = _study("browser", steps=12, act_timeout_s=0.15)
#: Lockstep (as the demo); the partner runs in the browser.
browser_partner_lockstep = _study("auto", mode="lockstep", steps=40)


def python_rerun(steps: list[dict]) -> tuple[list[int], list[list[float]]]:
    """The partner's actions and logits, recomputed by the Python runtime on the recorded observations."""
    runtime = mug.PolicyRuntime(PARTNER, seed=4)
    actions, logits = [], []
    for st in steps:
        if st["step"] == 0:
            runtime.boundary("episode", "agent_1")
        out = runtime.step(np.asarray(st["observations"]["agent_1"], np.float32), "agent_1")
        actions.append(out.action)
        logits.append(out.logits.tolist())
    return actions, logits
