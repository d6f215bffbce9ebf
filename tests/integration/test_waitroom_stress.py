"""Waitroom stress: 200 simulated participants arrive at random times over 60 s into a two-seat scene.

Every one is matched within the waitroom's timeout or handled by its ``on_timeout`` (here "end": the end page
with a completion code); nobody is in two matches; no match starts with an empty seat; every wait is recorded.
The participants are ``mug.simulate``'s bots (the participant page's own code, all in one Node process).
"""

from __future__ import annotations

import json
import random
from typing import Any

import mug
from mug.examples import CoinGrid
from mug.server.simulate import SimulatedParticipant, simulate
from tests.bots import run_async

ARRIVALS = 200
SPREAD_S = 60.0
TIMEOUT_S = 20.0
KEYS = {"ArrowUp": 1, "ArrowDown": 2, "ArrowLeft": 3, "ArrowRight": 4}


def duo_study() -> mug.Stager:
    duo = (
        mug.GymScene("duo")
        .environment(CoinGrid, {"max_steps": 10}, seed=7)
        .policies({"agent_0": mug.Human, "agent_1": mug.Human})
        .gameplay(action_mapping=KEYS, input_mode="single_keystroke", mode="realtime")
        .rendering(mode="surface", draw=lambda env, s: env.draw(s), width=80, height=80, fps=30)
        .waitroom(timeout_s=TIMEOUT_S, on_timeout="end", timeout_message="Nobody else came: thank you!")
    )
    return mug.Stager([mug.StartScene("start"), duo, mug.EndScene("end", completion_code="DUO-DONE")])


def _events(events: Any, kind: str) -> list[dict[str, Any]]:
    rows = events[events["kind"] == kind]
    return [{"participant_id": r.participant_id, "data": json.loads(r.data)} for r in rows.itertuples()]


def _seats(value: Any) -> dict[str, Any]:
    return json.loads(value) if isinstance(value, str) else dict(value)


def test_two_hundred_arrivals_are_each_matched_once_or_handled_by_on_timeout(tmp_path):
    rng = random.Random(11)
    arrivals = sorted(rng.uniform(0, SPREAD_S) for _ in range(ARRIVALS))

    async def main():
        deployment = mug.deploy(duo_study(), port=0, data_dir=tmp_path, participants_per_address=0)
        bots = [SimulatedParticipant(deployment.url, f"w{i:03d}", arrive_after_s=t) for i, t in enumerate(arrivals)]
        try:
            return await simulate(deployment.url, bots, timeout=SPREAD_S + TIMEOUT_S + 60)
        finally:
            deployment.stop()

    results = run_async(main())
    by_id = {r.participant_id: r for r in results}
    assert len(by_id) == ARRIVALS
    assert all(r.dropped_messages == 0 and r.errors == [] for r in results)  # every message fit the page's vocabulary
    assert all(r.ended == "end" for r in results), [(r.participant_id, r.ended, r.scenes) for r in results if r.ended != "end"]
    matched = [r for r in results if r.matches]
    timed_out = [r for r in results if not r.matches]
    assert all(len(r.matches) == 1 for r in matched)  # nobody was put in two matches
    assert all(r.completion_code == "DUO-DONE" and r.frames > 0 for r in matched)  # they played, then went on
    assert all(r.completion_code for r in timed_out)  # on_timeout="end": the end page with a code, paid all the same
    assert all(r.waitroom for r in results)  # everyone saw the waitroom (its counts and time left)
    assert all(0 <= r.waited_s <= TIMEOUT_S + 1 for r in matched)  # as the bots saw it (their clock)

    # both members of a match saw the same frames (step numbers and payload hashes)
    members: dict[str, list[Any]] = {}
    for r in matched:
        members.setdefault(r.matches[0]["match_id"], []).append(r)
    assert all(len(group) == 2 for group in members.values())
    for a, b in members.values():
        assert {a.matches[0]["seat"], b.matches[0]["seat"]} == {"agent_0", "agent_1"}
        shown = [[(e, s, h) for e, s, h, _ in r.frame_log] for r in (a, b)]
        assert shown[0] == shown[1], f"{a.participant_id} and {b.participant_id} saw different frames"

    data = mug.load(tmp_path)
    matches = data.matches[data.matches["scene_id"] == "duo"]
    seated = [pid for seats in matches["seats"] for pid in _seats(seats).values()]
    assert all(isinstance(pid, str) and pid for pid in seated)  # no match started with an empty seat
    assert all(len(_seats(seats)) == 2 for seats in matches["seats"])
    assert len(seated) == len(set(seated))  # nobody in two matches
    assert set(seated) == {r.participant_id for r in matched}
    assert set(matches["match_id"]) == set(members)

    waits = {e["participant_id"]: e["data"]["waited_s"] for e in _events(data.events, "matched")}
    assert set(waits) == set(seated)  # every wait is recorded
    assert all(0 <= w <= TIMEOUT_S for w in waits.values())
    assert {e["participant_id"] for e in _events(data.events, "waitroom_joined")} == set(by_id)
    assert {e["participant_id"] for e in _events(data.events, "waitroom_timeout")} == {r.participant_id for r in timed_out}
    steps = data.steps[data.steps["scene_id"] == "duo"]
    assert set(steps["match_id"].dropna()) == set(members)  # each match's steps carry its id
