"""A multi-human scene in the notebook preview: one seat per Human agent, each view plays one, others by policy.

Driven through the widget's own message handler, without a front end (the comm replaced by a list).
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest

import mug
from mug.examples import CoinGrid
from mug.widgets.preview import CLIENT, ScenePreview

KEYS = {"ArrowUp": 1, "ArrowDown": 2, "ArrowLeft": 3, "ArrowRight": 4}


def two_humans(mode: str = "lockstep") -> mug.GymScene:
    scene = mug.GymScene("duo").environment(CoinGrid, {"max_steps": 6}, seed=3)
    if "group_size" in inspect.signature(scene.multiplayer).parameters:
        scene.multiplayer(group_size=2)  # before matches: several humans needed the group size
    return (
        scene.policies({"agent_0": mug.Human, "agent_1": mug.Human})
        .gameplay(action_mapping=KEYS, input_mode="single_keystroke", mode=mode)
        .rendering(mode="surface", draw=lambda env, s: env.draw(s), width=80, height=80)
    )


class Comm:
    """What the preview sends its views, by seat."""

    def __init__(self, preview: ScenePreview) -> None:
        self.sent: list[dict[str, Any]] = []
        preview.send = lambda content, buffers=None: self.sent.append(content)

    def engine(self, seat: str, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.sent if m.get("channel") == "engine" and m["seat"] == seat and m["type"] == kind]


def act(preview: ScenePreview, comm: Comm, view: str, seat: str, key: str) -> None:
    frame = comm.engine(seat, "frame")[-1]
    generation = comm.engine(seat, "scene")[-1]["generation"]
    message = {"type": "act", "view": view, "step": frame["step"], "episode": frame["episode"], "keys": [key]}
    preview._on_front_end(None, {**message, "policies": {}, "generation": generation}, [])


def test_two_views_play_the_two_seats_of_one_session_and_each_input_is_its_seats():
    preview = two_humans().preview()
    comm = Comm(preview)
    assert preview.seats == ["agent_0", "agent_1"] and preview._seats == ["agent_0", "agent_1"]
    preview._on_front_end(None, {"type": "ready", "view": "left"}, [])
    preview._on_front_end(None, {"type": "ready", "view": "right"}, [])
    assert preview._view_seats == {"left": "agent_0", "right": "agent_1"}  # a new view takes the free seat
    assert preview._drivers == {"agent_0": "left", "agent_1": "right"}
    scenes = {seat: comm.engine(seat, "scene")[-1]["scene"]["you"] for seat in ("agent_0", "agent_1")}
    assert scenes["agent_0"]["humans"] == ["agent_0"] and scenes["agent_1"]["humans"] == ["agent_1"]
    for left, right in [("ArrowRight", "ArrowDown"), ("ArrowDown", "ArrowLeft"), ("ArrowLeft", "ArrowUp")]:
        before = preview.session.decision
        act(preview, comm, "left", "agent_0", left)
        assert preview.session.decision == before  # lockstep: the step waits for both seats
        act(preview, comm, "right", "agent_1", right)
        assert preview.session.decision == before + 1
    actions = preview.trace.actions
    assert list(actions["agent_0"]) == [4, 2, 3] and list(actions["agent_1"]) == [2, 3, 1]
    assert preview.errors == []


def test_one_view_switches_seats_and_plays_both():
    preview = two_humans().preview()
    comm = Comm(preview)
    preview._on_front_end(None, {"type": "ready", "view": "only"}, [])
    act(preview, comm, "only", "agent_0", "ArrowRight")
    preview._on_front_end(None, {"type": "ready", "view": "only", "seat": "agent_1"}, [])  # the seat menu
    assert preview._view_seats == {"only": "agent_1"}
    assert comm.engine("agent_1", "scene")[-1]["scene"]["you"]["humans"] == ["agent_1"]  # its seat's scene again
    act(preview, comm, "only", "agent_1", "ArrowDown")
    assert list(preview.trace.actions["agent_0"]) == [4] and list(preview.trace.actions["agent_1"]) == [2]


def test_a_view_cannot_act_for_a_seat_another_view_drives():
    preview = two_humans().preview()
    comm = Comm(preview)
    preview._on_front_end(None, {"type": "ready", "view": "a"}, [])
    preview._on_front_end(None, {"type": "ready", "view": "b"}, [])
    preview._on_front_end(None, {"type": "ready", "view": "c", "seat": "agent_1"}, [])  # c takes seat agent_1 over
    act(preview, comm, "b", "agent_1", "ArrowUp")  # b no longer drives it: dropped
    act(preview, comm, "a", "agent_0", "ArrowUp")
    assert preview.session.decision == 0  # still waiting for seat agent_1
    act(preview, comm, "c", "agent_1", "ArrowLeft")
    assert list(preview.trace.actions["agent_1"]) == [3]


def test_seats_left_out_are_played_by_others():
    preview = two_humans().preview(seats=["agent_1"], others=mug.Random)
    comm = Comm(preview)
    assert preview.seats == ["agent_1"] and preview.scene.humans == ["agent_1"]
    preview._on_front_end(None, {"type": "ready", "view": "v"}, [])
    for key in ["ArrowUp", "ArrowDown", "ArrowLeft"]:
        act(preview, comm, "v", "agent_1", key)
    assert list(preview.trace.actions["agent_1"]) == [1, 2, 3]
    assert set(preview.trace.sources["agent_0"]) == {"random"}
    assert comm.engine("agent_1", "scene")[-1]["scene"]["you"]["client_id"] == CLIENT


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"seats": ["agent_1"]}, r"others: nobody plays seat\(s\) \['agent_0'\]"),
        ({"others": mug.Random}, "others: give seats="),
        ({"seats": ["agent_9"], "others": mug.Random}, "seats: the environment has no agent 'agent_9'"),
        ({"seats": "agent_0", "others": mug.Random}, "seats: expected a non-empty list"),
        ({"seats": ["agent_0"], "others": mug.Human}, r"others\['agent_1'\]: mug.Human is a seat"),
        ({"seats": ["agent_0"], "others": {"agent_0": mug.Random}}, "others: no policy for seat 'agent_1'"),
    ],
)
def test_bad_seats_and_others_are_refused_naming_the_field(options, message):
    with pytest.raises(mug.ConfigError, match=message):
        two_humans().preview(**options)


def test_a_one_human_scene_keeps_one_seat():
    scene = (
        mug.GymScene("solo")
        .environment(CoinGrid, {"max_steps": 4}, seed=1)
        .policies({"agent_0": mug.Human, "agent_1": mug.Random})
        .gameplay(action_mapping=KEYS, input_mode="single_keystroke", mode="lockstep")
        .rendering(mode="surface", draw=lambda env, s: env.draw(s), width=80, height=80)
    )
    preview = scene.preview()
    comm = Comm(preview)
    preview._on_front_end(None, {"type": "ready", "view": "first"}, [])
    preview._on_front_end(None, {"type": "ready", "view": "second"}, [])
    assert preview._seats == ["agent_0"] and preview._drivers == {"agent_0": "second"}  # the newest view drives
    act(preview, comm, "first", "agent_0", "ArrowUp")  # passive: dropped
    act(preview, comm, "second", "agent_0", "ArrowDown")
    assert list(preview.trace.actions["agent_0"]) == [2]
