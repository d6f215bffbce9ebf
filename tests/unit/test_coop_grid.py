"""``CoopGrid``, the N-agent env of multi-human scenes: PettingZoo's Parallel API, determinism, the rules, and
a run through MUG's engine with Surface frames."""

from __future__ import annotations

import numpy as np
import pytest
from pettingzoo.test import parallel_api_test, parallel_seed_test

import mug
from mug.examples.coop_grid import COLORS, CoopGrid
from mug.rendering.surface import Surface
from mug.session import GameSession, MemoryRecorder, MemoryTransport


def test_pettingzoo_parallel_api_and_seeding():
    parallel_api_test(CoopGrid(agents=3), num_cycles=200)
    parallel_seed_test(lambda: CoopGrid(agents=3, max_steps=30))


def test_the_same_seed_and_actions_give_the_same_episode_and_another_seed_another():
    def rollout(seed: int) -> list:
        env = CoopGrid(agents=3, size=5, coins=4, max_steps=40)
        obs, _ = env.reset(seed=seed)
        rng = np.random.default_rng(0)
        trace = [np.concatenate([obs[a] for a in env.possible_agents])]
        while env.agents:
            obs, *_ = env.step({a: int(rng.integers(5)) for a in env.agents})
            trace.append(np.concatenate([obs[a] for a in obs]))
        return trace

    first, again, other = rollout(7), rollout(7), rollout(8)
    assert len(first) == len(again) and all(np.array_equal(x, y) for x, y in zip(first, again))
    assert not np.array_equal(first[0], other[0])


def test_observations_put_each_agent_first_then_the_others_then_the_coins():
    env = CoopGrid(agents=3, size=4, coins=2)
    obs, _ = env.reset(seed=1)
    p = {a: np.asarray(env.positions[a], np.float32) / 3 for a in env.possible_agents}
    assert obs["agent_1"].shape == (2 * 3 + 16,) and obs["agent_1"].dtype == np.float32
    np.testing.assert_allclose(obs["agent_1"][:6], np.concatenate([p["agent_1"], p["agent_0"], p["agent_2"]]))
    np.testing.assert_array_equal(obs["agent_1"][6:], env.coins.ravel())
    assert env.coins.sum() == 2 and len(set(env.positions.values())) == 3  # start cells and coins all differ
    assert all(env.observation_space(a).contains(o) for a, o in obs.items())


def test_a_coin_rewards_the_whole_team_and_the_last_coin_ends_the_episode():
    env = CoopGrid(agents=3, size=3, coins=1, max_steps=50)
    env.reset(seed=0)
    env.positions = {"agent_0": (0, 0), "agent_1": (2, 2), "agent_2": (2, 0)}
    env.coins[:] = False
    env.coins[0, 1] = True
    _, rewards, terminated, truncated, infos = env.step({"agent_0": 4, "agent_1": 1, "agent_2": 0})  # agent_0 right
    assert env.positions == {"agent_0": (0, 1), "agent_1": (1, 2), "agent_2": (2, 0)}
    assert rewards == dict.fromkeys(env.possible_agents, 1.0)
    assert all(terminated.values()) and not any(truncated.values())
    assert infos["agent_2"] == {"coins_left": 0} and env.agents == []


def test_walls_stop_moves_and_max_steps_truncates():
    env = CoopGrid(agents=2, size=3, coins=1, max_steps=2)
    env.reset(seed=0)
    env.positions = {"agent_0": (0, 0), "agent_1": (0, 0)}
    env.coins[:] = False
    env.coins[2, 2] = True
    _, _, _, truncated, _ = env.step({"agent_0": 1, "agent_1": 3})  # up and left into the walls
    assert env.positions == {"agent_0": (0, 0), "agent_1": (0, 0)} and not any(truncated.values())
    _, rewards, terminated, truncated, _ = env.step({"agent_0": 0})  # a missing action: the agent stays
    assert all(truncated.values()) and not any(terminated.values()) and rewards["agent_1"] == 0.0
    assert env.agents == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"agents": 0}, "agents must be 1 to 8"),
        ({"agents": 9}, "agents must be 1 to 8"),
        ({"size": 2, "coins": 2, "agents": 3}, "coins <= size\\*size - agents"),
        ({"max_steps": 0}, "max_steps must be >= 1"),
        ({"render_mode": "human"}, "render_mode must be None or 'rgb_array'"),
    ],
)
def test_bad_arguments_say_what_was_expected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CoopGrid(**kwargs)


def test_rendering_as_an_image_and_as_surface_objects():
    env = CoopGrid(agents=3, size=4, coins=3, render_mode="rgb_array", cell=10)
    env.reset(seed=2)
    image = env.render()
    r, c = env.positions["agent_2"]
    assert image.shape == (40, 40, 3) and tuple(image[r * 10 + 5, c * 10 + 5]) == (0x2C, 0xA0, 0x2C)
    surface = Surface(40, 40)
    env.draw(surface)
    frame = surface.commit()
    rects = {o["id"]: o for o in frame["set"] if o["id"].startswith("agent_")}
    assert [rects[a]["color"] for a in env.possible_agents] == list(COLORS[:3])
    assert sum(o["id"].startswith("coin") for o in frame["set"]) == 3


def test_three_agents_run_through_the_engine_with_surface_frames():
    scene = (
        mug.GymScene("trio")
        .environment(CoopGrid, {"agents": 3, "max_steps": 6}, seed=5)
        .policies({"agent_0": mug.Random, "agent_1": mug.Random, "agent_2": mug.Random})
        .gameplay(num_episodes=1)
        .rendering(mode="surface", draw=lambda env, surface: env.draw(surface), width=192, height=192)
    )
    transport, recorder = MemoryTransport(), MemoryRecorder()
    session = GameSession(scene, ["c"], transport, recorder, clock=lambda: 0.0)
    session.start()
    for _ in range(10):
        session.tick()
    steps = recorder.of_kind("step")
    assert len(steps) == 6 and all(set(s["actions"]) == {"agent_0", "agent_1", "agent_2"} for s in steps)
    frames = [m for m, _ in transport.take("c") if m["type"] == "frame"]
    assert frames[0]["render"]["kind"] == "surface" and frames[0]["render"]["full"] is True
