"""The session engine driven headless by test clients over the in-memory transport."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

import mug
from mug.examples import CoinGrid
from mug.session import GameSession, MemoryRecorder, MemoryTransport
from tests.synthetic import browser_act, recurrent_model

KEYS = {"ArrowLeft": 0, "ArrowRight": 1}


def cartpole(**gameplay):
    return (
        mug.GymScene("cartpole")
        .environment("CartPole-v1", seed=3)
        .policies({"agent_0": mug.Human})
        .gameplay(action_mapping=KEYS, **{"num_episodes": 2, "max_steps": 30, **gameplay})
    )


def session(scene, clients=("c1",), clock=lambda: 0.0):
    transport, recorder = MemoryTransport(), MemoryRecorder()
    s = GameSession(scene, list(clients), transport, recorder, clock=clock)
    s.start()
    return s, transport, recorder


def test_cartpole_with_a_human_plays_episodes_from_keys():
    s, transport, recorder = session(cartpole())
    scene_msg, frame = transport.take("c1")
    assert scene_msg[0]["type"] == "scene" and scene_msg[0]["scene"]["you"]["humans"] == ["agent_0"]
    assert frame[0]["type"] == "frame" and frame[0]["render"]["kind"] == "rgb"
    image = np.asarray(Image.open(io.BytesIO(frame[1][frame[0]["render"]["buffer"]])))
    assert image.shape == (400, 600, 3)
    pressed = ["ArrowRight"]
    while not s.done:
        s.receive("c1", {"type": "act", "step": s.decision, "keys": pressed})
        s.tick()
    steps = recorder.of_kind("step")
    assert {st["actions"]["agent_0"] for st in steps} == {1}
    assert {st["sources"]["agent_0"] for st in steps} == {"human"}
    ends = recorder.of_kind("episode_end")
    assert [e["episode"] for e in ends] == [0, 1]
    assert all(e["rewards"]["agent_0"] == e["steps"] for e in ends)
    types = [m["type"] for m, _ in transport.take("c1")]
    assert types.count("episode_end") == 2 and types[-1] == "scene_end"


def test_realtime_fills_missing_human_input_with_the_default_action():
    s, _, recorder = session(cartpole(default_action=1))
    s.tick()
    s.tick()
    assert [st["sources"]["agent_0"] for st in recorder.of_kind("step")] == ["default", "default"]
    assert [st["actions"]["agent_0"] for st in recorder.of_kind("step")] == [1, 1]


def test_held_keys_persist_between_acts_in_realtime():
    s, _, recorder = session(cartpole())
    s.receive("c1", {"type": "act", "step": 0, "keys": ["ArrowRight"]})
    s.tick()
    s.tick()  # no new act: the key is still held
    assert [st["actions"]["agent_0"] for st in recorder.of_kind("step")] == [1, 1]


def test_single_keystroke_mode_uses_each_press_once():
    s, _, recorder = session(cartpole(input_mode="single_keystroke", default_action=0))
    s.receive("c1", {"type": "act", "step": 0, "keys": ["ArrowRight"]})
    s.tick()
    s.tick()
    assert [st["sources"]["agent_0"] for st in recorder.of_kind("step")] == ["human", "default"]


def test_composite_keys_beat_their_parts():
    scene = (
        mug.GymScene("grid")
        .environment(CoinGrid, seed=1)
        .policies({"agent_0": mug.Human, "agent_1": mug.Random})
        .gameplay(action_mapping={"ArrowUp": 1, "ArrowDown": 2, "ArrowUp+ArrowDown": 0}, default_action=4)
    )
    s, _, recorder = session(scene)
    for keys in (["ArrowUp"], ["ArrowDown", "ArrowUp"], ["x"]):
        s.receive("c1", {"type": "act", "step": s.decision, "keys": keys})
        s.tick()
    assert [st["actions"]["agent_0"] for st in recorder.of_kind("step")] == [1, 0, 4]


def test_lockstep_waits_for_the_act_and_honours_the_timeout():
    now = [0.0]
    scene = cartpole(mode="lockstep").runtime(act_timeout_s=2.0)
    s, _, recorder = session(scene, clock=lambda: now[0])
    assert s.tick() is False
    s.receive("c1", {"type": "act", "step": 0, "keys": ["ArrowLeft"]})
    assert s.decision == 1 and len(recorder.of_kind("step")) == 1
    now[0] = 1.0
    assert s.tick() is False
    now[0] = 3.5
    assert s.tick() is True
    assert recorder.of_kind("step")[-1]["sources"]["agent_0"] == "default"


@pytest.fixture(scope="module")
def grid_policy(tmp_path_factory):
    path = recurrent_model(tmp_path_factory.mktemp("grid") / "grid_policy.onnx", obs=29, actions=5)
    return mug.ModelConfig.from_onnx(path)


def grid_scene(policy, inference):
    return (
        mug.GymScene("grid")
        .environment(CoinGrid, {"max_steps": 40}, seed=5)
        .policies({"agent_0": mug.Human, "agent_1": policy}, inference=inference)
        .gameplay(action_mapping={"ArrowUp": 1, "ArrowDown": 2, "ArrowLeft": 3, "ArrowRight": 4}, num_episodes=2)
        .rendering(mode="surface", draw=lambda env, surface: env.draw(surface), width=160, height=160)
        .data(record_observations=True)
    )


def test_gridworld_human_with_a_client_side_onnx_policy(grid_policy):
    s, transport, recorder = session(grid_scene(grid_policy, "browser"))
    browser = mug.PolicyRuntime(grid_policy, seed=0)  # the test client runs the policy as a browser would
    scene_msg = transport.sent["c1"][0][0]
    assert scene_msg["scene"]["you"]["runs_policies"] == ["agent_1"]
    assert scene_msg["scene"]["policies"]["agent_1"]["config"]["obs_input"] == "obs"
    frames, sent = 0, []
    while not s.done:
        frame, buffers = transport.last("c1", "frame") or (None, None)
        transport.take("c1")
        if frame is None:
            s.tick()
            continue
        frames += 1
        if frame["step"] == 0:
            browser.reset()
        message, obs = browser_act(frame, buffers, browser, "agent_1", ["ArrowDown"])
        sent.append(obs.copy())
        s.receive("c1", message)
        s.tick()
    steps = recorder.of_kind("step")
    assert frames == len(steps)  # one frame per decision
    assert {st["sources"]["agent_1"] for st in steps} == {"policy"}
    assert "h_out" in steps[0]["policy_outputs"]["agent_1"]["states"]
    # the browser-side policy saw exactly the observation each step was recorded with
    np.testing.assert_array_equal(np.asarray([st["observations"]["agent_1"] for st in steps], np.float32), np.stack(sent))
    assert len(recorder.of_kind("episode_end")) == 2


def test_gridworld_human_with_a_server_side_onnx_policy(grid_policy):
    s, transport, recorder = session(grid_scene(grid_policy, "server"))
    assert transport.take("c1")[1][0]["observations"] == {}  # nothing for the browser to run
    while not s.done:
        s.receive("c1", {"type": "act", "step": s.decision, "keys": ["ArrowRight"]})
        s.tick()
    steps = recorder.of_kind("step")
    assert {st["sources"]["agent_1"] for st in steps} == {"server_policy"}
    replay = mug.PolicyRuntime(grid_policy, seed=0)
    first_episode = [st for st in steps if st["episode"] == 0]
    for st in first_episode:
        assert replay.step(np.asarray(st["observations"]["agent_1"], np.float32), "agent_1").action == st["actions"]["agent_1"]


def test_random_agents_need_no_input():
    scene = (
        mug.GymScene("grid")
        .environment(CoinGrid, {"max_steps": 25}, seed=2)
        .policies({"agent_0": mug.Random, "agent_1": mug.Random})
    )
    s, _, recorder = session(scene.gameplay(num_episodes=3))
    while not s.done:
        s.tick()
    steps = recorder.of_kind("step")
    assert {st["sources"]["agent_0"] for st in steps} == {"random"}
    assert len({st["actions"]["agent_0"] for st in steps}) > 1
    assert len(recorder.of_kind("episode_end")) == 3


def test_the_default_hud_shows_each_agents_return_so_far():
    """Every frame's HUD: episode, step and each agent's return so far (which changes only on the steps that reward)."""
    scene = (
        mug.GymScene("grid")
        .environment(CoinGrid, {"max_steps": 60}, seed=2)
        .policies({"agent_0": mug.Random, "agent_1": mug.Random})
        .gameplay(num_episodes=2)
    )
    s, transport, recorder = session(scene)
    while not s.done:
        s.tick()
    expected, rewarded = [], 0
    for kind, data in recorder.events:
        if kind == "episode_start":
            episode, step, totals = data["episode"], 0, {"agent_0": 0.0, "agent_1": 0.0}
        elif kind == "step":
            totals = {a: totals[a] + r for a, r in data["rewards"].items()}
            step, rewarded = data["step"] + 1, rewarded + any(data["rewards"].values())
            if any(data["terminated"].values()) or any(data["truncated"].values()):
                continue  # the episode ends: no frame
        else:
            continue
        expected.append(
            f"Episode {episode + 1} of 2 · step {step} · return agent_0 {totals['agent_0']:g}, agent_1 {totals['agent_1']:g}"
        )
    assert [m["hud"] for m, _ in transport.take("c1") if m["type"] == "frame"] == expected
    assert rewarded > 1  # the returns changed during the run


def run_recorded(seed, keys_per_step):
    scene = (
        mug.GymScene("grid")
        .environment(CoinGrid, {"max_steps": 30}, seed=seed)
        .policies({"agent_0": mug.Human, "agent_1": mug.Random})
        .gameplay(action_mapping={"ArrowUp": 1, "ArrowDown": 2, "ArrowLeft": 3, "ArrowRight": 4}, num_episodes=2)
        .data(record_observations=True)
    )
    s, _, recorder = session(scene)
    i = 0
    while not s.done:
        s.receive("c1", {"type": "act", "step": s.decision, "keys": keys_per_step[i % len(keys_per_step)]})
        s.tick()
        i += 1
    return recorder.to_jsonl()


def test_same_seed_and_inputs_give_byte_identical_records():
    keys = [["ArrowUp"], [], ["ArrowLeft"], ["ArrowRight"], ["ArrowDown"]]
    first, second = run_recorded(9, keys), run_recorded(9, keys)
    assert first == second
    assert len(first) > 1000
    assert run_recorded(10, keys) != first


def test_episode_seeds_are_recorded_and_derived_from_the_scene_seed():
    _, _, recorder = session(cartpole())
    assert recorder.of_kind("episode_start")[0]["seed"] == mug.session.episode_seed(3, 0)


def test_surface_frames_send_only_changes():
    scene = (
        mug.GymScene("grid")
        .environment(CoinGrid, seed=4)
        .policies({"agent_0": mug.Human, "agent_1": mug.Random})
        .gameplay(action_mapping={"ArrowRight": 4})
        .rendering(mode="surface", draw=lambda env, surface: env.draw(surface))
    )
    s, transport, _ = session(scene)
    first = transport.take("c1")[1][0]["render"]
    assert first["kind"] == "surface" and first["full"] is True
    assert {o["id"] for o in first["set"]} >= {"agent_0", "agent_1", "h0", "v5"}
    s.receive("c1", {"type": "act", "step": 0, "keys": ["ArrowRight"]})
    s.tick()
    second = transport.take("c1")[0][0]["render"]
    assert second["full"] is False
    assert {o["id"] for o in second["set"]} <= {"agent_0", "agent_1"}
    s.receive("c1", {"type": "ready"})  # a reconnect gets everything again
    again = transport.take("c1")
    assert again[0][0]["type"] == "scene" and again[1][0]["render"]["full"] is True


def test_two_humans_on_two_clients():
    scene = (
        mug.GymScene("grid")
        .environment(CoinGrid, {"max_steps": 10}, seed=1)
        .policies({"agent_0": mug.Human, "agent_1": mug.Human})
        .gameplay(action_mapping={"ArrowUp": 1, "ArrowDown": 2}, mode="lockstep")
    )
    s, transport, recorder = session(scene, clients=("alice", "bob"))
    assert transport.take("bob")[0][0]["scene"]["you"]["humans"] == ["agent_1"]
    s.receive("alice", {"type": "act", "step": 0, "keys": ["ArrowUp"]})
    assert s.decision == 0  # lockstep waits for bob
    s.receive("bob", {"type": "act", "step": 0, "keys": ["ArrowDown"]})
    assert recorder.of_kind("step")[0]["actions"] == {"agent_0": 1, "agent_1": 2}


def test_frame_skip_repeats_the_action():
    s, _, recorder = session(cartpole(frame_skip=3))
    s.receive("c1", {"type": "act", "step": 0, "keys": ["ArrowLeft"]})
    s.tick()
    steps = recorder.of_kind("step")
    assert [st["step"] for st in steps] == [0, 1, 2] and {st["decision"] for st in steps} == {0}
    assert {st["actions"]["agent_0"] for st in steps} == {0}


def test_a_failing_server_policy_stops_the_scene_with_a_reported_error():
    def broken(obs, agent):
        raise RuntimeError("policy bug")

    scene = mug.GymScene("grid").environment(CoinGrid, seed=1).policies({"agent_0": broken, "agent_1": mug.Random})
    s, transport, recorder = session(scene.gameplay())
    s.tick()
    assert s.done and "RuntimeError: policy bug" in s.failure
    error = transport.last("c1", "error")[0]
    assert error["fatal"] is True and error["code"] == "policy_error"
    assert recorder.of_kind("error")[0]["message"] == s.failure


def test_realtime_act_from_the_previous_episode_is_late_not_future():
    s, transport, recorder = session(cartpole(max_steps=3, num_episodes=2))
    for _ in range(3):
        s.tick()
    assert s.episode == 1 and s.decision == 0
    transport.take("c1")
    s.receive("c1", {"type": "act", "step": 2, "episode": 0, "keys": ["ArrowRight"]})
    assert transport.take("c1") == []  # no error: normal lag
    s.tick()
    assert recorder.of_kind("step")[-1]["actions"]["agent_0"] == 1  # its keys still count
    s.receive("c1", {"type": "act", "step": 0, "episode": 5, "keys": []})
    assert transport.last("c1", "error")[0]["code"] == "future_step"
