"""``EnvSimulation``: the engine's env adapter, snapshots and episode seeds under the rollback core."""

from __future__ import annotations

import json

import pytest

from mug.browser.scene import PortableSpace
from mug.examples.browser_grid import PyCoinGrid
from mug.examples.coop_grid import CoopGrid
from mug.netcode import EnvSimulation
from mug.session.engine import episode_seed
from mug.session.envs import EnvAdapter
from mug.session.snapshots import observation_hash

MOVES = [{"agent_0": (i * 7) % 5, "agent_1": (i * 3) % 5} for i in range(40)]


def test_episodes_reset_with_the_scenes_episode_seeds_in_the_step_after_the_last_one():
    sim = EnvSimulation(lambda: PyCoinGrid(max_steps=10), 42, num_episodes=2)
    results = [sim.step(m) for m in MOVES[:23]]
    assert [r.kind for r in results] == ["step"] * 10 + ["reset"] + ["step"] * 10 + ["over", "over"]
    assert results[9].ended and all(results[9].truncated.values()) and not results[8].ended
    assert (results[10].episode, results[10].step, results[11].step) == (1, 0, 0)
    fresh = EnvAdapter(PyCoinGrid(max_steps=10))
    assert results[10].obs_hash == observation_hash(fresh.reset(episode_seed(42, 1))[0])
    assert sim.over and sim.observation("agent_0") is None


def test_a_snapshot_restores_what_the_env_does_next_also_after_a_trip_through_json():
    sim = EnvSimulation(lambda: PyCoinGrid(max_steps=15), 3)
    for m in MOVES[:7]:
        sim.step(m)
    state = sim.snapshot()
    ahead = [sim.step(m) for m in MOVES[7:20]]
    final = sim.state_hash()
    sim.restore(json.loads(json.dumps(state)))
    assert sim.state_hash() == sim.state_hash(state)
    assert [sim.step(m) for m in MOVES[7:20]] == ahead and sim.state_hash() == final


def test_an_env_without_the_state_protocol_is_snapshotted_by_deep_copy_with_a_warning_about_hashes():
    with pytest.warns(UserWarning, match="comparable within one process only"):
        sim = EnvSimulation(lambda: CoopGrid(agents=2, size=4, coins=3, max_steps=12), 5)
    state = sim.snapshot()
    first = [sim.step(m) for m in MOVES[:15]]
    sim.restore(state)
    assert [sim.step(m) for m in MOVES[:15]] == first
    assert first[12].kind == "reset" and sim.state_hash(state) != sim.state_hash()
    assert isinstance(sim.observation("agent_0"), list)  # NumPy observations are kept as plain data


def test_an_action_outside_the_seats_space_is_not_valid():
    sim = EnvSimulation(lambda: PyCoinGrid(max_steps=10), 1)
    assert sim.valid_action("agent_0", 4) and not sim.valid_action("agent_0", 5)
    assert not sim.valid_action("agent_0", "garbage") and not sim.valid_action("agent_0", None)
    assert sim.valid_action("nobody", "anything")  # not an agent of the env: nothing to check against


def test_given_portable_action_spaces_are_used_where_gymnasium_is_not_loaded():
    space = PortableSpace({"kind": "discrete", "n": 3})
    sim = EnvSimulation(lambda: PyCoinGrid(max_steps=10), 1, action_spaces={"agent_0": space, "agent_1": space})
    assert sim.valid_action("agent_1", 2) and not sim.valid_action("agent_1", 3)  # the env's own space has 5
