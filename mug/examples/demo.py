"""The demo study of ``mug demo``: start page, a gridworld with a trained AI partner, a short survey, an end page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mug.examples.gridworld import CoinGrid
from mug.inference.config import ModelConfig
from mug.scenes import EndScene, FreeText, GymScene, Human, Likert, MultipleChoice, Stager, StartScene, SurveyScene

__all__ = ["demo_study", "PARTNER_MODEL", "DEMO_KEYS"]

PARTNER_MODEL = Path(__file__).with_name("coin_partner.onnx")
DEMO_KEYS = {"ArrowUp": 1, "ArrowDown": 2, "ArrowLeft": 3, "ArrowRight": 4, "w": 1, "s": 2, "a": 3, "d": 4}


def _hud(env: Any, info: dict[str, Any]) -> str:
    return f"Episode {info['episode'] + 1} · coins left: {int(env.coins.sum())} · team score: {info['rewards'].get('agent_0', 0):.0f}"


def demo_study(episodes: int = 2, max_steps: int = 25) -> Stager:
    """The demo study; ``episodes`` and ``max_steps`` size the game."""
    partner = ModelConfig.from_onnx(PARTNER_MODEL, temperature=0.3)
    game = (
        GymScene("coins")
        .environment(CoinGrid, {"max_steps": max_steps, "coins": 5}, seed=11)
        .policies({"agent_0": Human, "agent_1": partner})
        .gameplay(action_mapping=DEMO_KEYS, num_episodes=episodes, input_mode="single_keystroke", mode="lockstep", hud=_hud)
        .rendering(mode="surface", draw=lambda env, surface: env.draw(surface), width=160, height=160, fps=15)
        .content(
            header="Collect the coins together",
            body="You are the <b>blue</b> square; your AI partner is the <b>red</b> one. Every coin either of you picks up counts for the team.",
            controls="Arrow keys or W/A/S/D: one press, one move. Click the game first.",
        )
    )
    survey = SurveyScene(
        "survey",
        [
            Likert("helpful", "How helpful was your partner?", points=7, labels=("not at all", "very")),
            MultipleChoice("human_like", "Did your partner seem like a person?", ["yes", "no", "not sure"]),
            FreeText("comments", "Anything else you noticed?", required=False, max_length=1000),
        ],
        header="A few questions",
    )
    return Stager(
        [
            StartScene(body="In this short demo you play a grid game with an AI partner, then answer three questions."),
            game,
            survey,
            EndScene(body="Thanks for trying MUG.", completion_code="MUGDEMO"),
        ]
    )
