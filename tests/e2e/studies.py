"""Small studies the server tests deploy with ``mug deploy tests/e2e/studies.py:NAME``."""

from __future__ import annotations

from pathlib import Path

import mug
from mug.examples.cartpole import draw_cartpole

survey_only = mug.Stager(
    [
        mug.SurveyScene("survey", [mug.Likert("helpful", "How helpful?", points=5)]),
        mug.EndScene(completion_code="DONE"),
    ]
)

#: CartPole drawn as a two-object Surface, played in real time at 30 fps (the load benchmark's study).
cartpole_realtime = mug.Stager(
    [
        mug.GymScene("cartpole")
        .environment("CartPole-v1", seed=1)
        .policies({"agent_0": mug.Human})
        .gameplay(action_mapping={"ArrowLeft": 0, "ArrowRight": 1}, num_episodes=1000, max_steps=500)
        .rendering(mode="surface", draw=draw_cartpole, fps=30),
        mug.EndScene(completion_code="DONE"),
    ]
)

#: The same game played by the trained CartPole LSTM (realtime, ``inference="auto"``: the server runs it).
cartpole_server_ai = mug.Stager(
    [
        mug.GymScene("cartpole")
        .environment("CartPole-v1", seed=1)
        .policies({"agent_0": mug.ModelConfig.from_onnx(Path(mug.__file__).parent / "examples" / "cartpole_lstm.onnx")})
        .gameplay(num_episodes=1000, max_steps=500)
        .rendering(mode="surface", draw=draw_cartpole, fps=30),
        mug.EndScene(completion_code="DONE"),
    ]
)

ASSETS = Path(__file__).with_name("assets")

#: A scene with a researcher's asset directory (a sprite drawn with surface.image).
with_assets = mug.Stager(
    [
        mug.GymScene("sprites")
        .environment("CartPole-v1", seed=1)
        .policies({"agent_0": mug.Random})
        .rendering(mode="surface", draw=lambda env, s: s.image(10, 10, 32, 32, "cart", id="cart"))
        .assets(directory=ASSETS, images={"cart": "cart.png"}),
    ]
)
