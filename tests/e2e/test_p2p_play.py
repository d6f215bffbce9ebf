"""A peer-to-peer match scene played to its end by two participants in real Chromium pages on one real server
(loopback): each page runs the game in its Pyodide worker (``mug.browser.P2PGame`` under rollback), the inputs go
page to page over WebRTC DataChannels with the transport shim delaying what each page sends by 100 ms, and the
server stores the match once from the confirmed frames the pages upload.

The test holds keys on both pages (changing them now and then, so predictions miss and pages roll back) until the
study moves on, then compares the server's stored steps with each page's confirmed history (``window.mugP2P``:
every confirmed record the page sent), frame by frame with zero tolerance, and checks that every episode was
verified and no desync stayed unresolved. WebRTC on loopback as in ``test_p2p_transport.py``."""

from __future__ import annotations

import time

from playwright.sync_api import expect

import mug
from mug.examples.browser_grid import PyCoinGrid, draw
from mug.server.app import MugServer
from tests.e2e.live_server import serving

KEYS = {"ArrowUp": 1, "ArrowDown": 2, "ArrowLeft": 3, "ArrowRight": 4}
#: The mesh of every match: each page delays what it sends on both channels by 100 ms (a round trip of 200 ms
#: between the pages); the pair stays direct however slow a loaded machine makes it (relay rules: the transport's
#: own tests).
MESH = {"shim": {"latency_ms": 100}, "max_rtt_ms": None}
EPISODES, STEPS = 2, 45


def _duo() -> mug.Stager:
    scene = (
        mug.GymScene("duo")
        .environment(PyCoinGrid, {"max_steps": STEPS, "coins": 4}, seed=3)
        .policies({"agent_0": mug.Human, "agent_1": mug.Human})
        .gameplay(action_mapping=KEYS, num_episodes=EPISODES)
        .rendering(mode="surface", draw=draw, width=120, height=120, fps=30)
        .waitroom(timeout_s=120, on_timeout="end")
        .multiplayer(mode="p2p", input_delay=2, max_prediction=8, on_partner_loss="end")
        .runtime(environment="browser")
    )
    return mug.Stager([scene, mug.EndScene(completion_code="DONE")])


class Member:
    """One participant in a Chromium context of their own (microphone and camera granted: loopback candidates)."""

    def __init__(self, browser, url: str, pid: str) -> None:
        self.context = browser.new_context(permissions=["microphone", "camera"])
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(f"{url}?PROLIFIC_PID={pid}")

    def js(self, expression: str):
        return self.page.evaluate(expression)

    @property
    def done(self) -> bool:
        return bool(self.js("window.mugP2P?.done === true"))


def _play(members: list[Member], timeout_s: float = 180) -> None:
    """Hold a key on each page, a different one every 0.4 s, until both pages' games are done."""
    cycle = [["ArrowRight", "ArrowDown", "ArrowLeft", "ArrowUp"], ["ArrowDown", "ArrowLeft", "ArrowUp", "ArrowRight"]]
    deadline, turn = time.monotonic() + timeout_s, 0
    while not all(m.done for m in members):
        assert time.monotonic() < deadline, "the match did not end"
        for member, keys in zip(members, cycle):
            member.page.keyboard.down(keys[turn % 4])
        members[0].page.wait_for_timeout(400)
        for member, keys in zip(members, cycle):
            member.page.keyboard.up(keys[turn % 4])
        turn += 1


def _unresolved(events: list[dict]) -> list[dict]:
    """Desyncs with no ``desync_resolved`` of the same peer after them."""
    open_: dict[str, dict] = {}
    for event in events:
        if event["type"] == "desync":
            open_[event["peer"]] = event
        elif event["type"] == "desync_resolved":
            open_.pop(event["peer"], None)
    return list(open_.values())


def test_two_pages_play_a_p2p_match_at_100_ms_and_the_server_stores_what_both_confirmed(webrtc_browser, tmp_path):
    data = tmp_path / "data"
    server = MugServer(_duo(), data, "p2p-admin-token")
    server.matches.mesh_options = MESH
    with serving(server) as serve:
        members = [Member(webrtc_browser, serve.url, f"p{i}") for i in range(2)]
        try:
            for member in members:
                expect(member.page.locator("#mug-canvas")).to_be_visible(timeout=120_000)  # Pyodide loaded, game on
            _play(members)
            for member in members:
                expect(member.page.get_by_text("DONE")).to_be_visible(timeout=60_000)  # the study went on
            histories = [m.js("window.mugP2P.records") for m in members]
            events = [m.js("window.mugP2P.events") for m in members]
            seats = [m.js("window.mugP2P.seat") for m in members]

            def stored() -> tuple[list[dict], list[dict]]:
                serve.server.store.commit()
                return serve.server.store.steps("duo"), serve.server.store.events()

            deadline = time.monotonic() + 60
            while True:
                steps, stored_events = serve.call(stored)
                if sum(e["kind"] == "verification" for e in stored_events) >= EPISODES or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            errors = [e for m in members for e in m.errors]
        finally:
            for member in members:
                member.context.close()
    assert errors == []
    assert sorted(seats) == ["agent_0", "agent_1"]
    confirmed = [[r for r in history if r["result"]["kind"] == "step"] for history in histories]
    ends = [r["result"] for r in confirmed[0] if all(r["result"]["terminated"][a] or r["result"]["truncated"][a] for a in seats)]
    assert [e["episode"] for e in ends] == list(range(EPISODES))  # every episode played to its end (coins or steps)
    assert confirmed[0] == confirmed[1]  # both pages confirmed the same frames, hash chain and all
    # the server's record: each step once, as the pages confirmed it
    assert [(s["episode"], s["step"]) for s in steps] == [(r["result"]["episode"], r["result"]["step"]) for r in confirmed[0]]
    for step, record in zip(steps, confirmed[0]):
        result = record["result"]
        assert step["actions"] == record["inputs"]
        assert (step["rewards"], step["terminated"], step["truncated"]) == (
            result["rewards"],
            result["terminated"],
            result["truncated"],
        )
        assert step["obs_hash"] == result["obs_hash"]
    assert all(s["verified"] is True for s in steps)
    assert [e for e in stored_events if e["kind"] in ("p2p_mismatch", "p2p_relay", "bad_p2p_frames")] == []
    assert [_unresolved(e) for e in events] == [[], []]
    # the latency reached the DataChannels: pages predicted, missed and rolled back
    stats = [e["stats"] for page in events for e in page if e["type"] == "episode_end"]
    assert len(stats) == 2 * EPISODES and sum(s["rollbacks"] for s in stats) > 0
