"""CoinGrid: its observations, and its draw, which draws only what changed since its last draw on a surface (the frames stay those of a full redraw)."""

from __future__ import annotations

import numpy as np

from mug.examples import CoinGrid
from mug.examples.gridworld import COLORS
from mug.rendering.surface import Surface


def redraw_everything(env: CoinGrid, surface: Surface) -> None:
    """The reference: every grid line, every cell's coin (or its removal) and both agents, each step."""
    c = env.cell
    for i in range(env.size + 1):
        surface.line([(0, i * c), (env.size * c, i * c)], color="#c8c8c8", id=f"h{i}")
        surface.line([(i * c, 0), (i * c, env.size * c)], color="#c8c8c8", id=f"v{i}")
    for r in range(env.size):
        for col in range(env.size):
            if env.coins[r, col]:
                surface.circle(col * c + c / 2, r * c + c / 2, c / 6, color="#e6b400", id=f"coin{r}_{col}")
            else:
                surface.remove(f"coin{r}_{col}")
    for agent, (r, col) in env.positions.items():
        surface.rect(col * c + 4, r * c + 4, c - 8, c - 8, color=COLORS[agent], id=agent, depth=1)


def test_every_frame_equals_a_full_redraw_across_episodes_resends_and_surfaces():
    env, reference = CoinGrid(size=6, coins=8, max_steps=40), CoinGrid(size=6, coins=8, max_steps=40)
    fast, full = Surface(192, 192), Surface(192, 192)
    rng = np.random.default_rng(0)
    frames = 0
    for episode in range(4):
        if episode == 2:  # a new surface mid-run (e.g. another session): drawn from scratch
            fast, full = Surface(192, 192), Surface(192, 192)
        env.reset(seed=episode)
        reference.reset(seed=episode)
        while env.agents:
            env.draw(fast)
            redraw_everything(reference, full)
            assert fast.commit() == full.commit()
            frames += 1
            if frames % 17 == 0:  # a reconnecting client gets the whole scene
                fast.resend()
                full.resend()
            actions = {a: int(rng.integers(5)) for a in env.agents}
            env.step(actions)
            reference.step(actions)
    assert frames > 60


def test_another_env_drawing_on_the_same_surface_removes_the_coins_it_does_not_have():
    first, second = CoinGrid(size=5, coins=4), CoinGrid(size=5, coins=4)
    surface = Surface(160, 160)
    first.reset(seed=1)
    first.draw(surface)
    second.reset(seed=2)
    second.draw(surface)
    surface.resend()
    coins = {o["id"] for o in surface.commit()["set"] if o["id"].startswith("coin")}
    assert coins == {f"coin{r}_{c}" for r, c in zip(*np.nonzero(second.coins))}


def test_observations_and_infos_are_positions_scaled_then_the_coin_map():
    env = CoinGrid(size=5, coins=6, max_steps=60)
    rng = np.random.default_rng(1)
    obs, _ = env.reset(seed=4)
    while True:
        for agent, other in (("agent_0", "agent_1"), ("agent_1", "agent_0")):
            head = np.asarray([*env.positions[agent], *env.positions[other]], np.float32) / 4
            expected = np.concatenate([head, env.coins.ravel().astype(np.float32)])
            assert obs[agent].dtype == np.float32 and np.array_equal(obs[agent], expected)
        if not env.agents:
            break
        obs, _, _, _, infos = env.step({a: int(rng.integers(5)) for a in env.agents})
        assert infos == {a: {"coins_left": int(env.coins.sum())} for a in ("agent_0", "agent_1")}
