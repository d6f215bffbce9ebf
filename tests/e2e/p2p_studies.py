"""Studies of the P2P transport tests: long match games (the mesh is opened on the running match by the test,
as a P2P scene will at its start), two and three seats."""

from __future__ import annotations

import mug
from mug.examples import CoinGrid
from mug.examples.coop_grid import CoopGrid

KEYS = {"ArrowUp": 1, "ArrowDown": 2, "ArrowLeft": 3, "ArrowRight": 4}


def _game(scene_id: str, env, config: dict, agents: int) -> mug.GymScene:
    return (
        mug.GymScene(scene_id)
        .environment(env, {**config, "max_steps": 100_000}, seed=3)
        .policies({f"agent_{i}": mug.Human for i in range(agents)})
        .gameplay(action_mapping=KEYS, num_episodes=1)
        .rendering(mode="surface", draw=lambda env, surface: env.draw(surface), width=96, height=96, fps=10)
        .waitroom(timeout_s=90, on_timeout="end")
    )


#: Two humans in CoinGrid.
duo = mug.Stager([_game("duo", CoinGrid, {"size": 6, "coins": 4}, 2), mug.EndScene(completion_code="DONE")])
#: Three humans in CoopGrid.
trio = mug.Stager([_game("trio", CoopGrid, {"agents": 3, "size": 6, "coins": 6}, 3), mug.EndScene(completion_code="DONE")])
