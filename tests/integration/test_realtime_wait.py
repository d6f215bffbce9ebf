"""The realtime rule: no AI agent acts on an observation older than the step it acts in.

A deployed realtime scene runs ``inference="auto"`` policies on the server; a
browser-side policy holds each step until that step's result has arrived,
up to a deadline (then the step goes ahead, recorded ``late``); the notebook
preview never steps without the browser's result.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import mug
from mug.examples import CoinGrid
from mug.session import GameSession, MemoryRecorder, MemoryTransport
from mug.session.engine import BROWSER_WAIT_S, LOAD_WAIT_S, PREVIEW_WAIT_S
from tests.synthetic import browser_act, recurrent_model

KEYS = {"ArrowUp": 1, "ArrowDown": 2, "ArrowLeft": 3, "ArrowRight": 4}


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    return mug.ModelConfig.from_onnx(recurrent_model(tmp_path_factory.mktemp("wait") / "p.onnx", obs=29, actions=5))


def scene(policy, inference="auto", mode="realtime", **runtime):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return (
            mug.GymScene("grid")
            .environment(CoinGrid, {"max_steps": 20}, seed=5)
            .policies({"agent_0": mug.Human, "agent_1": policy}, inference=inference)
            .gameplay(action_mapping=KEYS, mode=mode)
            .runtime(**runtime)
            .data(record_observations=True)
        )


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def start(s_scene, host="deployment"):
    transport, recorder, clock = MemoryTransport(), MemoryRecorder(), Clock()
    s = GameSession(s_scene, ["c1"], transport, recorder, clock=clock, host=host)
    s.start()
    return s, transport, recorder, clock


def act_for(s, transport, browser):
    """What the browser would send for the latest frame (its policy run on that frame's observation)."""
    frame, buffers = transport.last("c1", "frame")
    return browser_act(frame, buffers, browser, "agent_1", [])


def test_auto_runs_a_realtime_deployment_policy_on_the_server(policy):
    s, transport, recorder, _ = start(scene(policy))
    assert s.client_models == [] and transport.last("c1", "frame")[0]["observations"] == {}
    meta = transport.sent["c1"][0][0]["scene"]
    assert meta["you"]["runs_policies"] == [] and "config" not in meta["policies"]["agent_1"]
    for _ in range(5):
        assert s.tick() is True  # never waits: the server computes each step's action from its own observation
    assert {st["sources"]["agent_1"] for st in recorder.of_kind("step")} == {"server_policy"}


@pytest.mark.parametrize(
    ("inference", "mode", "host", "in_browser"),
    [
        ("auto", "lockstep", "deployment", True),
        ("auto", "realtime", "preview", True),
        ("browser", "realtime", "deployment", True),
        ("server", "realtime", "preview", False),
    ],
)
def test_where_a_policy_runs(policy, inference, mode, host, in_browser):
    assert scene(policy, inference, mode).browser_policies(host) == (["agent_1"] if in_browser else [])


def test_a_custom_inference_fn_runs_in_the_browser_and_realtime_warns_once(policy):
    custom = mug.ModelConfig.from_dict({**policy.to_dict(), "custom_inference_fn": "return 0;"})
    with pytest.warns(UserWarning, match=r"each step waits for its result .* bounded by the participant's network round trip"):
        built = mug.GymScene("g").environment(CoinGrid, seed=1).policies({"agent_0": mug.Human, "agent_1": custom})
    assert built.browser_policies() == ["agent_1"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # already said for this agent: no second warning
        built.gameplay(action_mapping=KEYS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # lockstep waits anyway: nothing to warn about
        mug.GymScene("l").environment(CoinGrid, seed=1).gameplay(action_mapping=KEYS, mode="lockstep").policies(
            {"agent_0": mug.Human, "agent_1": custom}
        )


def test_a_browser_policy_acts_on_every_step_however_slow_its_results(policy):
    s, transport, recorder, clock = start(scene(policy, "browser"))
    browser, sent = mug.PolicyRuntime(policy, seed=0), []
    while not s.done:
        for _ in range(3):  # ticks come and go while the result travels: the step waits
            clock.now += 1 / 30
            assert s.tick() is False
        if transport.last("c1", "frame")[0]["step"] == 0:
            browser.reset()
        message, obs = act_for(s, transport, browser)
        sent.append(obs.copy())
        decision = s.decision
        s.receive("c1", message)
        assert s.decision == decision + 1 or s.done  # taken as soon as its result arrived
    steps = recorder.of_kind("step")
    assert {st["sources"]["agent_1"] for st in steps} == {"policy"}
    np.testing.assert_array_equal(np.asarray([st["observations"]["agent_1"] for st in steps], np.float32), np.stack(sent))


def test_past_the_deadline_a_deployment_steps_late_and_records_the_late_result(policy):
    s, transport, recorder, clock = start(scene(policy, "browser", act_timeout_s=0.5))
    browser = mug.PolicyRuntime(policy, seed=0)
    clock.now = LOAD_WAIT_S - 1  # loading ONNX Runtime and the model: the first step waits longer
    assert s.tick() is False
    message, _ = act_for(s, transport, browser)
    s.receive("c1", message)  # first result: the client has loaded; the step is taken on arrival
    assert s.decision == 1
    late_message, _ = act_for(s, transport, browser)
    clock.now += 0.4
    assert s.tick() is False
    clock.now += 0.2
    assert s.tick() is True  # 0.6 s > act_timeout_s: the step goes ahead
    step = recorder.of_kind("step")[-1]
    assert (
        step["sources"]["agent_1"] == "late" and step["actions"]["agent_1"] == recorder.of_kind("step")[0]["actions"]["agent_1"]
    )
    s.receive("c1", late_message)  # the result for step 1 arrives during step 2: recorded, not acted on
    late = recorder.of_kind("late_act")
    assert [(e["agent"], e["step"]) for e in late] == [("agent_1", 1)]
    assert s.decision == 2 and transport.last("c1", "error") is None


def test_the_default_deadline_and_a_reconnect_reloading_its_policies(policy):
    s, transport, recorder, clock = start(scene(policy, "browser"))
    browser = mug.PolicyRuntime(policy, seed=0)
    s.receive("c1", act_for(s, transport, browser)[0])  # arrives before its tick
    assert s.tick() is True
    clock.now += BROWSER_WAIT_S * 0.9
    assert s.tick() is False
    s.receive("c1", {"type": "ready"})  # the tab reloaded: it loads its policies again
    clock.now += BROWSER_WAIT_S * 5
    assert s.tick() is False  # the load allowance applies again, not the step deadline
    s.receive("c1", act_for(s, transport, browser)[0])
    assert {st["sources"]["agent_1"] for st in recorder.of_kind("step")} == {"policy"}


def test_the_preview_never_steps_without_the_browser_result(policy):
    s, transport, recorder, clock = start(scene(policy, "auto"), host="preview")
    assert s.client_models == ["agent_1"]
    s.receive("c1", act_for(s, transport, mug.PolicyRuntime(policy, seed=0))[0])
    assert s.tick() is True
    clock.now += PREVIEW_WAIT_S - 1  # far past a deployment's deadline: a slow comm is no fault
    assert s.tick() is False and not s.done
    clock.now += 1000
    assert s.tick() is False and s.done
    error = transport.last("c1", "error")[0]
    assert error["code"] == "no_policy_result" and "agent_1" in error["message"] and error["fatal"] is True
    assert [st["sources"]["agent_1"] for st in recorder.of_kind("step")] == ["policy"]


def test_a_frame_held_back_by_its_host_starts_its_wait_when_it_leaves(policy):
    s, transport, recorder, clock = start(scene(policy, "browser", act_timeout_s=0.5))
    browser = mug.PolicyRuntime(policy, seed=0)
    s.receive("c1", act_for(s, transport, browser)[0])
    assert s.tick() is True  # step 0 on its result; the frame of step 1 is queued
    clock.now += 10  # the server's store could not commit: the frame did not leave
    s.restart_wait()  # delivered now (ParticipantRegistry.flush after the stall)
    assert s.tick() is False  # its wait starts now: no late step on a frame the client has only just got
    s.receive("c1", act_for(s, transport, browser)[0])
    assert [st["sources"]["agent_1"] for st in recorder.of_kind("step")] == ["policy", "policy"]
