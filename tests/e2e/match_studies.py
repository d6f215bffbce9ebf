"""Studies played by several people in one game, deployed by the match tests
(``mug deploy tests/e2e/match_studies.py:NAME``). Built with the builder of issue 11 (``waitroom``,
``multiplayer``): import this module only where the matches server is present."""

from __future__ import annotations

import mug
from mug.examples import CoinGrid
from mug.examples.coop_grid import CoopGrid

#: Keys of the match scenes; each test page holds one of them, so every recorded action shows whose it was.
KEYS = {"ArrowUp": 1, "ArrowDown": 2, "ArrowLeft": 3, "ArrowRight": 4}
WAITING = "Waiting for the other players…"
PARTNER_LEFT = "Your partner left the game."


def _game(scene_id: str, env, config: dict, agents: int, steps: int) -> mug.GymScene:
    return (
        mug.GymScene(scene_id)
        .environment(env, {**config, "max_steps": steps}, seed=3)
        .policies({f"agent_{i}": mug.Human for i in range(agents)})
        .gameplay(action_mapping=KEYS, num_episodes=1)
        .rendering(mode="surface", draw=lambda env, surface: env.draw(surface), width=192, height=192, fps=10)
        .waitroom(timeout_s=90, on_timeout="end", message=WAITING)
    )


def _study(game: mug.GymScene) -> mug.Stager:
    return mug.Stager([game, mug.EndScene(completion_code="DONE")])


#: Two humans in CoinGrid, realtime at 10 fps, 40 steps.
duo = _study(_game("duo", CoinGrid, {"size": 6, "coins": 4}, 2, 40))
#: Three humans in CoopGrid, realtime at 10 fps, 40 steps.
trio = _study(_game("trio", CoopGrid, {"agents": 3, "size": 6, "coins": 6}, 3, 40))
#: Two humans; a partner gone for a second ends the game for the other, with a message and a completion code.
duo_partner_end = _study(
    _game("duo", CoinGrid, {"size": 6, "coins": 4}, 2, 100_000).multiplayer(
        on_partner_loss="end", reconnect_timeout_s=1, after_partner_loss="end", partner_loss_message=PARTNER_LEFT
    )
)
#: Two humans; a partner gone pauses the game for up to 60 s, and a partner back in time takes their seat again.
duo_partner_wait = _study(
    _game("duo", CoinGrid, {"size": 6, "coins": 4}, 2, 100_000).multiplayer(
        on_partner_loss="wait", reconnect_timeout_s=60, partner_loss_message=PARTNER_LEFT
    )
)
