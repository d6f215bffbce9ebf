"""Environments nobody here wrote: a real PettingZoo ParallelEnv with int agent ids and no declared
observation spaces, Gymnasium envs without an observation space, a short TimeLimit, a reset that ignores its seed."""

from __future__ import annotations

import re
import warnings

import gymnasium
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.wrappers import TimeLimit
from pettingzoo import ParallelEnv

import mug
from mug.session import GameSession, MemoryRecorder, MemoryTransport
from tests.synthetic import recurrent_model


class IntIdWalk(ParallelEnv):
    """Two agents, ``0`` and ``1``, on a line of 8 cells. Only ``action_spaces`` is declared: PettingZoo's base
    ``observation_space(agent)`` raises AttributeError, as in published envs that never defined it."""

    metadata = {"name": "int_id_walk_v0"}  # noqa: RUF012 (PettingZoo's convention)

    def __init__(self, seeded: bool = True) -> None:
        self.possible_agents = [0, 1]
        self.action_spaces = {a: spaces.Discrete(3) for a in self.possible_agents}
        self.seeded = seeded
        self.rng = np.random.default_rng(12345)  # an unseeded reset keeps drawing from this stream
        self.positions: dict[int, int] = {}

    def _obs(self, agent):
        return np.array([self.positions[agent] / 7, self.positions[1 - agent] / 7, self.t / 10], dtype=np.float32)

    def reset(self, seed=None, options=None):
        if self.seeded:
            self.rng = np.random.default_rng(seed)
        self.agents = list(self.possible_agents)
        self.positions = {a: int(self.rng.integers(0, 8)) for a in self.agents}
        self.t = 0
        return {a: self._obs(a) for a in self.agents}, {a: {} for a in self.agents}

    def step(self, actions):
        for agent, action in actions.items():
            self.positions[agent] = min(7, max(0, self.positions[agent] + int(action) - 1))
        self.t += 1
        done = self.t >= 10
        rewards = {a: float(self.positions[a] == 7) for a in self.agents}
        observations = {a: self._obs(a) for a in self.agents}
        agents = list(self.agents)
        if done:
            self.agents = []
        return observations, rewards, dict.fromkeys(agents, False), dict.fromkeys(agents, done), {a: {} for a in agents}


class ClashingIds(IntIdWalk):
    def __init__(self) -> None:
        super().__init__()
        self.possible_agents = [0, "0"]


class NoObservationSpace(gymnasium.Env):
    """A Gymnasium env that declares its action space only; observations are dicts."""

    action_space = spaces.Discrete(2)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.x = float(self.np_random.uniform())
        return {"x": np.array([self.x], dtype=np.float64), "steps": np.int64(0)}, {}

    def step(self, action):
        self.x += 0.1 if action else -0.1
        return {"x": np.array([self.x]), "steps": np.int64(1)}, 0.0, False, False, {}


class UnseededReset(gymnasium.Env):
    """Ignores the seed it is given: every reset draws a new start."""

    action_space = spaces.Discrete(2)
    observation_space = spaces.Box(-1.0, 1.0, (3,), np.float32)

    def reset(self, seed=None, options=None):
        return np.random.default_rng().uniform(-1, 1, 3).astype(np.float32), {}

    def step(self, action):
        return np.zeros(3, np.float32), 0.0, True, False, {}


def int_scene(**environment):
    with pytest.warns(UserWarning, match="inferred from a reset observation") as caught:
        scene = mug.GymScene("walk").environment(IntIdWalk, **environment)
    return scene, caught


def test_a_pettingzoo_env_with_int_ids_and_no_observation_spaces_builds_with_one_warning():
    scene, caught = int_scene()
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and "\n" not in messages[0], messages  # one line, and PettingZoo's own warnings stay quiet
    assert "observation_space(0) raised AttributeError" in messages[0]
    assert "0: Box(-inf, inf, (3,), float32), 1: Box(-inf, inf, (3,), float32)" in messages[0]
    assert scene.observation_space("1") == spaces.Box(-np.inf, np.inf, (3,), np.float32)
    assert scene.agent_ids == {"0": 0, "1": 1}


def test_int_agent_ids_are_used_as_the_env_spells_them_and_strings_only_on_the_wire():
    scene, _ = int_scene(seed=4)
    seen = []

    def partner(observation, agent_id):
        seen.append(agent_id)
        return 2

    hud_rewards = []

    def hud(env, info):
        hud_rewards.append(info["rewards"])
        return "score"

    scene.policies({0: mug.Human, 1: partner}).gameplay(action_mapping={"ArrowRight": 2}, hud=hud)
    transport, recorder = MemoryTransport(), MemoryRecorder()
    session = GameSession(scene, ["c"], transport, recorder, clock=lambda: 0.0, render=False)
    session.start()
    session.receive("c", {"type": "act", "step": 0, "keys": ["ArrowRight"]})
    for _ in range(3):
        session.tick()
    assert seen == [1, 1, 1] and all(type(a) is int for a in seen)
    assert set(hud_rewards[-1]) == {0, 1}
    steps = recorder.of_kind("step")
    assert steps[0]["actions"] == {"0": 2, "1": 2} and steps[0]["sources"] == {"0": "human", "1": "server_policy"}
    scene_msg = transport.take("c")[0][0]
    assert scene_msg["scene"]["agents"] == ["0", "1"] and scene_msg["scene"]["you"]["humans"] == ["0"]


def test_a_model_partner_and_an_inference_mapping_take_int_ids(tmp_path):
    scene, _ = int_scene()
    partner = mug.ModelConfig.from_onnx(recurrent_model(tmp_path / "p.onnx", obs=3, actions=3))
    scene.policies({0: mug.Human, 1: partner}, inference={1: "server"})
    assert scene.policy_specs["1"].where == "server"


@pytest.mark.parametrize(
    ("mapping", "text"),
    [
        (
            {"0": mug.Human, 1: mug.Random},
            "the environment has no agent '0'. Did you mean 0? Agents are named by the environment's own ids. Agents: [0, 1]",
        ),
        ({0: mug.Human, 2: mug.Random}, "the environment has no agent 2. Agents: [0, 1]"),
        ({0: mug.Human}, "no policy for agent(s) [1]"),
        ({0: mug.Human, 1: "smart"}, "policies[1]: expected mug.Human"),
    ],
)
def test_errors_name_agents_as_the_env_spells_them(mapping, text):
    scene, _ = int_scene()
    with pytest.raises(mug.ConfigError, match=re.escape(text)):
        scene.policies(mapping)


def test_an_inference_mapping_keyed_by_the_string_form_is_refused(tmp_path):
    scene, _ = int_scene()
    partner = mug.ModelConfig.from_onnx(recurrent_model(tmp_path / "p.onnx", obs=3, actions=3))
    with pytest.raises(mug.ConfigError, match=re.escape("inference: the environment has no agent '1'. Did you mean 1?")):
        scene.policies({0: mug.Human, 1: partner}, inference={"1": "server"})


def test_a_wrong_action_names_the_int_agent():
    scene, _ = int_scene()
    scene.policies({0: mug.Human, 1: mug.Random})
    with pytest.raises(mug.ConfigError, match=re.escape("7 is not an action of agent 0 (Discrete(3): 0..2)")):
        scene.gameplay(action_mapping={"ArrowUp": 7})


def test_agent_ids_equal_as_strings_are_refused():
    with pytest.raises(mug.ConfigError, match=re.escape("agents 0 and '0' are both '0' as text")) as info:
        mug.GymScene("clash").environment(ClashingIds)
    assert info.value.field == "env_creator"


def test_a_gymnasium_env_without_an_observation_space_gets_a_dict_space_inferred():
    with pytest.warns(UserWarning, match=re.escape("env.observation_space is not set")) as caught:
        scene = mug.GymScene("noobs").environment(NoObservationSpace, seed=2)
    assert len(caught) == 1
    space = scene.observation_space("agent_0")
    assert isinstance(space, spaces.Dict) and space["x"].shape == (1,) and space["steps"].dtype == np.int64
    scene.policies({"agent_0": mug.Random})


def test_an_env_without_an_action_space_is_a_config_error():
    class NoActionSpace(NoObservationSpace):
        action_space = None

    with pytest.raises(mug.ConfigError, match=re.escape("gives no action space for agent 'agent_0'")):
        mug.GymScene("noact").environment(NoActionSpace)


def test_a_reset_that_ignores_its_seed_fails_the_determinism_check_and_can_be_accepted():
    with pytest.raises(mug.ConfigError) as info:
        mug.GymScene("u").environment(UnseededReset, seed=3)
    assert info.value.field == "check_determinism"
    message = str(info.value)
    assert "not deterministic: two resets with seed=" in message
    assert "agent 'agent_0' different first observations (value 0 (C order) is" in message
    assert "check_determinism=False" in message
    scene = mug.GymScene("u").environment(UnseededReset, seed=3, check_determinism=False)
    assert scene.agents == ["agent_0"]


def test_a_pettingzoo_env_whose_reset_ignores_its_seed_is_named():
    with pytest.raises(mug.ConfigError, match=r"gave agent 0 different first observations"):
        mug.GymScene("u").environment(IntIdWalk, {"seeded": False})


def test_check_determinism_must_be_a_bool():
    with pytest.raises(mug.ConfigError, match="check_determinism: expected True or False"):
        mug.GymScene("u").environment(UnseededReset, check_determinism="no")


def short_cartpole():
    return TimeLimit(gymnasium.make("CartPole-v1").unwrapped, max_episode_steps=50)


def test_a_time_limit_shorter_than_max_steps_warns_in_gameplay():
    scene = mug.GymScene("c").environment(short_cartpole).policies({"agent_0": mug.Random})
    with pytest.warns(UserWarning, match=re.escape("TimeLimit truncates every episode after 50 steps, before max_steps=80")):
        scene.gameplay(max_steps=80)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scene.gameplay(max_steps=50)


def test_a_time_limit_shorter_than_max_steps_warns_in_environment_too():
    scene = mug.GymScene("c").environment("CartPole-v1").policies({"agent_0": mug.Random}).gameplay(max_steps=80)
    with pytest.warns(UserWarning, match=re.escape("after 50 steps, before max_steps=80")):
        scene.environment(short_cartpole)


def test_a_registered_id_with_its_own_limit_warns():
    scene = mug.GymScene("c").environment("CartPole-v1").policies({"agent_0": mug.Random})
    with pytest.warns(UserWarning, match=re.escape("after 500 steps, before max_steps=1000; pass max_episode_steps=1000")):
        scene.gameplay(max_steps=1000)


def test_preview_action_names_are_keyed_by_the_env_ids():
    scene = int_scene()[0].policies({0: mug.Human, 1: mug.Random}).gameplay(action_mapping={"ArrowUp": 1})
    names = {1: ["stay", "up", "down"]}
    assert scene.preview(action_names=names)._action_names[str(1)] == ["stay", "up", "down"]
    with pytest.raises(mug.ConfigError, match=r"no agent '1'\. Did you mean 1\?"):
        scene.preview(action_names={"1": ["stay", "up", "down"]})
