"""``P2PGame`` (the worker's side of a P2P match) in CPython: two games whose peer messages reach each other
through the simulated network, driven by a fake clock and held keys as the worker drives them."""

from __future__ import annotations

import random
from typing import Any

import mug
from mug.browser.p2p_game import P2PGame
from mug.examples.browser_grid import PyCoinGrid, draw
from mug.examples.demo import PARTNER_MODEL
from mug.netcode import EnvSimulation
from mug.netcode.simnet import Link, SimNet

KEYS = {"ArrowUp": 1, "ArrowDown": 2, "ArrowLeft": 3, "ArrowRight": 4}
FPS = 30


def _spec(policies: dict[str, Any], *, episodes: int = 2, steps: int = 30) -> dict[str, Any]:
    scene = (
        mug.GymScene("duo")
        .environment(PyCoinGrid, {"max_steps": steps, "coins": 4}, seed=5)
        .policies(policies)
        .gameplay(action_mapping=KEYS, num_episodes=episodes)
        .rendering(mode="surface", draw=draw, width=90, height=90, fps=FPS)
        .runtime(environment="browser")
    )
    return scene.browser_spec() | {"session_id": "m1"}


def _p2p(spec: dict[str, Any], seat: str, humans: list[str], ai: list[str]) -> dict[str, Any]:
    block = {"match_id": "m1", "seat": seat, "owners": {h: h for h in humans}, "ai_seats": ai}
    return spec | {"p2p": block | {"input_delay": 2, "max_prediction": 8, "hash_interval": 4}}


class Member:
    """One page: its game and what it posted."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.posted: list[dict[str, Any]] = []
        self.game = P2PGame(spec, lambda message, buffers: self.posted.append(message))

    def take(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.posted if m["type"] == kind]

    @property
    def records(self) -> list[dict[str, Any]]:
        return [r for m in self.take("p2p_frames") for r in m["records"]]


def _play(members: dict[str, Member], net: SimNet, seconds: float, ai=None, page=None) -> None:
    """Tick every member at FPS with keys drawn per member; peer messages go through ``net``; ``page``:
    ``[(time, seat, message)]`` page messages for a member's game, each given at its first tick from ``time`` on."""
    rng, now, sent = random.Random(4), 0.0, {seat: 0 for seat in members}
    held = {seat: [] for seat in members}
    page = sorted(page or [], key=lambda item: item[0])
    while now < seconds and not all(m.game.done for m in members.values()):
        while page and page[0][0] <= now:
            members[page[0][1]].game.receive(page.pop(0)[2])
        for seat, member in members.items():
            if rng.random() < 0.1:  # a new key held (or none) now and then
                held[seat] = [rng.choice(list(KEYS))] if rng.random() < 0.8 else []
            member.game.tick(now, held[seat])
            while sent[seat] < len(member.posted):  # an AI answer may post more requests
                message = member.posted[sent[seat]]
                sent[seat] += 1
                if message["type"] == "peer":
                    for to, channel, body in message["messages"]:
                        for other in [to] if to is not None else [s for s in members if s != seat]:
                            net.send(now, seat, other, channel, body)
                elif message["type"] == "ai_request" and ai is not None:
                    for request in message["requests"]:
                        member.game.receive(ai(request))
        for dst, src, body in net.deliver(now):
            members[dst].game.receive({"type": "peer", "from": src, "message": body})
        now += 1.0 / FPS


def test_two_members_confirm_the_same_frames_and_finish_the_scene_together():
    spec = _spec({"agent_0": mug.Human, "agent_1": mug.Human})
    members = {s: Member(_p2p(spec, s, ["agent_0", "agent_1"], [])) for s in ("agent_0", "agent_1")}
    for member in members.values():
        member.game.receive({"type": "ready"})
    _play(members, SimNet(default=Link(0.05, 0.02, 0.1, 0.05, 0.0), seed=2), 20.0)
    a, b = (members[s] for s in ("agent_0", "agent_1"))
    assert a.game.done and b.game.done
    ended = [r for r in a.records if r["result"]["kind"] == "step" and r["result"]["truncated"].get("agent_0")]
    assert [r["result"]["episode"] for r in ended] == [0, 1]  # both episodes, 30 steps each
    last = ended[-1]["frame"]
    assert [r["frame"] for r in a.records] == list(range(len(a.records)))  # contiguous, in frame order
    assert [r["chain"] for r in a.records if r["frame"] <= last] == [r["chain"] for r in b.records if r["frame"] <= last]
    moves = {r["inputs"]["agent_0"] for r in a.records} | {r["inputs"]["agent_1"] for r in a.records}
    assert len(moves) > 2  # the keys held became actions
    for member in (a, b):
        types = [m["type"] for m in member.posted]
        assert types[0] == "scene" and types[1] == "frame"
        assert types.index("p2p_done") < types.index("scene_end") == len(types) - 1
        assert types.index("p2p_done") > max(i for i, t in enumerate(types) if t == "p2p_frames")
        assert [m["episode"] for m in member.take("episode_end")] == [0, 1]
        for end in member.take("episode_end"):  # the episode's return, from its confirmed frames
            steps = [r for r in member.records if r["result"]["kind"] == "step" and r["result"]["episode"] == end["episode"]]
            assert end["rewards"] == {a: float(sum(r["result"]["rewards"][a] for r in steps)) for a in ("agent_0", "agent_1")}
        assert all(e["stats"]["frames"] > 0 for m in member.take("p2p_events") for e in m["events"] if e["type"] == "episode_end")
        frame = member.take("frame")[-1]
        assert frame["render"]["kind"] == "surface" and "Episode 2 of 2" in frame["hud"]
    # the record replays in a plain EnvSimulation: the same results step by step
    sim = EnvSimulation(lambda: PyCoinGrid(max_steps=30, coins=4), 5, num_episodes=2, max_steps=30)
    for record in a.records[: last + 1]:
        assert sim.step(record["inputs"]).to_dict() == record["result"]


def test_an_ai_seat_is_served_through_ai_requests_and_its_state_digest_is_recorded():
    spec = _spec({"agent_0": mug.Human, "agent_1": mug.ModelConfig.from_onnx(PARTNER_MODEL)}, episodes=1, steps=20)
    member = Member(_p2p(spec, "agent_0", ["agent_0"], ["agent_1"]))
    served = []

    def ai(request: dict[str, Any]) -> dict[str, Any]:
        served.append((request["frame"], request["episode"]))
        action = int(sum(request["observation"]) * 7) % 5  # a function of the confirmed observation
        state = {"states": [[float(request["frame"])]], "rng": 1, "steps": len(served), "episode": request["episode"]}
        return {
            "type": "ai",
            "seat": "agent_1",
            "frame": request["frame"],
            "action": action,
            "state": state,
            "epoch": request["epoch"],
        }

    _play({"agent_0": member}, SimNet(default=Link(0.0, 0.0, 0.0, 0.0, 0.0), seed=1), 5.0, ai=ai)
    assert member.game.done
    steps = [r for r in member.records if r["result"]["kind"] == "step"]
    assert len(steps) == 20
    assert [f for f, _ in served] == sorted(f for f, _ in served)
    digests = [r["ai_digests"]["agent_1"] for r in steps]
    assert None not in digests and len(set(digests)) == len(digests)  # each step's own state, digested


def test_the_time_a_members_tab_was_hidden_is_in_each_agreed_episodes_statistics():
    spec = _spec({"agent_0": mug.Human, "agent_1": mug.Human}, episodes=3, steps=60)
    members = {s: Member(_p2p(spec, s, ["agent_0", "agent_1"], [])) for s in ("agent_0", "agent_1")}
    hide = [(1.0, "agent_1", {"type": "visibility", "hidden": True}), (3.0, "agent_1", {"type": "visibility", "hidden": False})]
    _play(members, SimNet(default=Link(0.03), seed=1), 20.0, page=hide)
    hidden = {}
    for seat, member in members.items():
        ends = [e for m in member.take("p2p_events") for e in m["events"] if e["type"] == "episode_end"]
        assert [e["episode"] for e in ends] == [0, 1, 2]
        hidden[seat] = [e["stats"]["hidden_s"] for e in ends]
    assert hidden["agent_0"] == [0.0, 0.0, 0.0]
    assert abs(sum(hidden["agent_1"]) - 2.0) < 0.05 and hidden["agent_1"][0] > 0 and hidden["agent_1"][2] == 0.0
