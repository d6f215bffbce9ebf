"""Studies of the match tests; ``duo_kill`` is deployed with ``mug deploy tests/match_studies.py:duo_kill``."""

from __future__ import annotations

from typing import Any

import mug
from mug.examples import CoinGrid

KEYS = {"ArrowUp": 1, "ArrowDown": 2, "ArrowLeft": 3, "ArrowRight": 4}


def duo_scene(
    scene_id: str = "duo",
    *,
    mode: str = "lockstep",
    max_steps: int = 30,
    waitroom: dict[str, Any] | None = None,
    matchmaking: dict[str, Any] | None = None,
    multiplayer: dict[str, Any] | None = None,
    monitoring: dict[str, Any] | None = None,
    fps: int = 30,
) -> mug.GymScene:
    """CoinGrid with both agents played by participants."""
    scene = (
        mug.GymScene(scene_id)
        .environment(CoinGrid, {"max_steps": 1000, "coins": 1, "size": 12}, seed=3)
        .policies({"agent_0": mug.Human, "agent_1": mug.Human})
        .gameplay(action_mapping=KEYS, mode=mode, max_steps=max_steps)
        .rendering(fps=fps, width=96, height=96)
        .waitroom(**(waitroom or {}))
        .matchmaking(**(matchmaking or {}))
        .multiplayer(**(multiplayer or {}))
        .monitoring(**(monitoring or {}))
    )
    return scene


def duo(*scenes: Any, **kwargs: Any) -> mug.Stager:
    """``duo_scene(**kwargs)`` (or the given scenes), then a text page and an end page with a code per participant."""
    return mug.Stager(
        [
            *(scenes or [duo_scene(**kwargs)]),
            mug.TextScene("after", body="The game is over."),
            mug.EndScene(unique_code=True),
        ],
        seed=11,
    )


#: A long realtime match (for the SIGKILL test).
duo_kill = duo(duo_scene(mode="realtime", max_steps=100_000, multiplayer={"reconnect_timeout_s": 60}))
