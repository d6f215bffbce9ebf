"""The HUD line shown above a game's frame: the scene's own ``hud(env, info)``, or episode, step and return so far.

One definition for every host of the engine: :class:`mug.session.engine.GameSession` (server, browser worker,
notebook preview) and the peer-to-peer game of :mod:`mug.browser.p2p_game`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["hud_line", "returns_text"]


def returns_text(totals: Mapping[Any, float]) -> str:
    """The return so far: the number alone for one agent, ``"<agent> <return>"`` per agent for several."""
    if len(totals) == 1:
        return f"{next(iter(totals.values())):g}"
    return ", ".join([f"{a} {r:g}" for a, r in totals.items()]) or "0"


def hud_line(
    scene: Any, env: Any, episode: int, step: int, totals: Mapping[Any, float], ids: Mapping[Any, Any], returns: str | None = None
) -> str:
    """The HUD text of a frame of ``scene`` (its ``hud`` and ``num_episodes``): the scene's ``hud(env, info)``
    (``info``: ``episode``, ``step``, ``rewards`` each agent's return by its env id, ``ids`` mapping mug's agent
    names to them), else ``"Episode e of n · step s · return r"``; ``returns``: :func:`returns_text` of ``totals``
    when the caller has it already."""
    if scene.hud is not None:
        rewards = {ids.get(a, a): r for a, r in totals.items()}
        return str(scene.hud(env, {"episode": episode, "step": step, "rewards": rewards}))
    text = returns_text(totals) if returns is None else returns
    return f"Episode {episode + 1} of {scene.num_episodes} · step {step} · return {text}"
