"""Whole peer-to-peer matches under network conditions: two participants in real Chromium pages on one real
server (loopback) play one short P2P scene per condition, in sequence in one study (Pyodide loads once per
page). Each page runs the game in its Pyodide worker (``mug.browser.P2PGame`` under rollback); the inputs go
page to page over WebRTC DataChannels through the app's transport shim (``js/src/p2p/shim.js``: latency,
jitter and loss on what each page sends, where it reaches the DataChannels), or through the server's relay.

Before each scene (a text page with a Continue button that both participants click) the test sets the mesh
options every match of the server opens its mesh with (``MatchRoom.mesh_options``): the condition of that
scene. A test selection that skips scenes still plays them first, unchecked (the pages go through the study in
order). Conditions: symmetric 100 ms and 200 ms, asymmetric 50/200 ms (per-seat shims), jitter of +-75 ms,
15 % loss, WebRTC blocked in both pages (the whole match through the server's relay, recorded as
``p2p_relay``), and a forced desync (an env whose hidden state diverges once between the pages: detected,
repaired by a state transfer, recorded as ``p2p_desync`` / ``p2p_resync``).

For each: the server's stored steps equal both pages' confirmed histories with zero tolerance, no desync stays
unresolved, the frame rate is held (after the first episode at most :data:`MAX_LOST` of the frame slots of each
page lost to stalls or time synchronisation, from the pages' own counters) and every episode is verified by
CPython re-simulation.
The scenes run in this file's order; each test plays the next one. Helpers: ``tests/e2e/p2p_matches.py``."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

import mug
from mug.server.app import MugServer
from tests.e2e.fixtures.desync_grid import DesyncGrid
from tests.e2e.live_server import serving
from tests.e2e.p2p_matches import (
    EPISODES,
    Member,
    Played,
    assert_stored_as_confirmed,
    frame_rate,
    p2p_scene,
    play,
    played,
    unresolved,
)

#: Share of a page's frame slots (produced + stalled + held) it may lose to stalls and time sync in the episodes
#: after the first (the first holds the match's start: the page whose game starts first waits for the other).
MAX_LOST = 0.15
#: Every scene's pair stays direct however slow a loaded machine makes it (relay rules: test_p2p_transport.py).
DIRECT = {"max_rtt_ms": None}
#: Scene id -> (its env, the mesh options of its match, whether the pages have WebRTC), in the study's order.
SCENES: dict[str, tuple[type | None, dict, bool]] = {
    "sym100": (None, {"shim": {"latency_ms": 100}}, True),
    "sym200": (None, {"shim": {"latency_ms": 200}}, True),
    "asym": (None, {"seat_shims": {"agent_0": {"latency_ms": 50}, "agent_1": {"latency_ms": 200}}}, True),
    "jitter": (None, {"shim": {"latency_ms": 100, "jitter_ms": 75, "seed": 5}}, True),
    "loss": (None, {"shim": {"latency_ms": 100, "loss": 0.15, "seed": 7}}, True),  # beyond the input delay: rollbacks
    "blocked": (None, {}, False),
    "desync": (DesyncGrid, {"shim": {"latency_ms": 50}}, True),
}
ORDER = list(SCENES)


def _study() -> mug.Stager:
    scenes: list = []
    for scene_id, (env, _, _) in SCENES.items():
        scenes.append(mug.TextScene(f"before_{scene_id}", header=f"Next: {scene_id}"))
        scenes.append(p2p_scene(scene_id, **({"env": env} if env else {}), episodes=EPISODES))
    return mug.Stager([*scenes, mug.EndScene(completion_code="DONE")])


class Duo:
    """The module's server and its two participants' pages, which go through the study's scenes in order."""

    def __init__(self, serve, members: list[Member]) -> None:
        self.serve, self.members = serve, members
        self.next = 0  # the index of the scene the pages are before

    def scene(self, scene_id: str) -> tuple[Played, list[dict]]:
        """Play scene ``scene_id`` under its condition (the scenes before it first, if a test selection skipped
        them): its match as pages and server hold it, and the pages' link readings (``Member.link``)."""
        assert ORDER.index(scene_id) >= self.next, f"scene {scene_id} was played already"
        while ORDER[self.next] != scene_id:
            self._play(ORDER[self.next])
        links = self._play(scene_id)
        return played(self.serve, self.members, scene_id, EPISODES), links

    def _play(self, scene_id: str) -> list[dict]:
        _, mesh, webrtc = SCENES[scene_id]
        options = {**DIRECT, **mesh}
        for member in self.members:  # the scene before has ended on both pages
            expect(member.page.get_by_text(f"Next: {scene_id}")).to_be_visible(timeout=120_000)
        self.serve.call(lambda: setattr(self.serve.server.matches, "mesh_options", options))
        before = [m.match_id for m in self.members]
        if not webrtc:
            for member in self.members:
                member.js("() => { window.__realRTC = window.RTCPeerConnection; window.RTCPeerConnection = undefined; }")
        try:
            for member in self.members:
                member.page.get_by_role("button", name="Continue").click()
            for member, previous in zip(self.members, before):
                member.wait_match(after=previous)  # Pyodide loaded, the match's game runs
            links = play(self.members)
        finally:
            if not webrtc:
                for member in self.members:
                    member.js("() => { window.RTCPeerConnection = window.__realRTC; }")
        self.next += 1
        for member in self.members:  # the study went on
            following = f"Next: {ORDER[self.next]}" if self.next < len(ORDER) else "DONE"
            expect(member.page.get_by_text(following)).to_be_visible(timeout=60_000)
        return links


@pytest.fixture(scope="module")
def duo(webrtc_browser, tmp_path_factory):
    server = MugServer(_study(), tmp_path_factory.mktemp("p2p-conditions") / "data", "p2p-admin-token")
    with serving(server) as serve:
        members = [Member(webrtc_browser, serve.url, f"p{i}") for i in range(2)]
        try:
            yield Duo(serve, members)
        finally:
            for member in members:
                member.context.close()


def _check(match: Played, *, relayed: bool = False, diverged: range = range(0)) -> list[dict]:
    """What every scenario asserts (module docstring); returns each page's frame-rate figures. ``diverged``: the
    frames whose hash chains may differ between the pages (a repaired desync's), the only ones the server's
    cross-check may find different."""
    assert match.errors == []
    assert sorted(match.seats) == ["agent_0", "agent_1"]
    assert_stored_as_confirmed(match, EPISODES)
    assert [unresolved(e) for e in match.events] == [[], []]
    assert match.of("bad_p2p_frames") == []
    assert [e for e in match.of("p2p_mismatch") if e["frame"] not in diverged] == []
    rates = [frame_rate(e, range(1, EPISODES)) for e in match.events]
    print(match.match_id, "frame rate per page, first episode:", [frame_rate(e, range(1)) for e in match.events], "after:", rates)
    assert all(r["frames"] > 0 and r["lost"] <= MAX_LOST for r in rates), rates
    episodes = match.of("p2p_episode")
    assert sorted((e["peer"], e["episode"]) for e in episodes) == sorted((s, n) for s in match.seats for n in range(EPISODES))
    for event in episodes:  # the pair went through the server only when WebRTC was blocked
        assert event["relayed_with"] == ([s for s in match.seats if s != event["peer"]] if relayed else []), event
    return rates


def _same_history(match: Played) -> None:
    assert match.records[0] == match.records[1]  # both pages confirmed the same frames, hash chain and all


def _rolled_back(match: Played) -> None:
    """The latency reached the DataChannels: pages predicted, missed and rolled back."""
    stats = [e["stats"] for page in match.events for e in page if e["type"] == "episode_end"]
    assert len(stats) == 2 * EPISODES and sum(s["rollbacks"] for s in stats) > 0


def _round_trip_at_least(rtts: list[dict], ms: float) -> None:
    """The pages' meshes measured direct round trips of at least ``ms`` (the shim's delays, both ways)."""
    direct = [r["median_ms"] for r in rtts if r["path"] == "direct"]
    assert direct and max(direct) >= ms, direct


@pytest.mark.parametrize("scene_id, rtt_ms", [("sym100", 200), ("sym200", 400), ("asym", 250), ("jitter", 50)])
def test_pages_play_a_whole_match_over_delayed_datachannels_and_the_server_stores_what_both_confirmed(duo, scene_id, rtt_ms):
    match, rtts = duo.scene(scene_id)
    _check(match)
    _same_history(match)
    _rolled_back(match)
    _round_trip_at_least(rtts, rtt_ms)
    assert match.of("p2p_relay") == []
    if scene_id == "jitter":  # each message's delay drawn in 100 +- 75 ms: the round trips spread
        last = [r["last_ms"] for r in rtts]
        assert max(last) - min(last) >= 50, last


def test_a_match_with_15_percent_of_inputs_lost_is_stored_whole(duo):
    match, rtts = duo.scene("loss")
    _check(match)
    _same_history(match)
    _rolled_back(match)
    _round_trip_at_least(rtts, 200)
    assert match.of("p2p_relay") == []
    for page in (0, 1):  # what each page's shim dropped of its inputs messages (the last reading: the most sent)
        counts = [r for r in rtts if r["page"] == page][-1]
        share = counts["dropped"] / (counts["passed"] + counts["dropped"])
        assert counts["passed"] > 50 and 0.05 <= share <= 0.3, counts


def test_with_webrtc_blocked_the_whole_match_goes_through_the_server_relay_and_is_recorded(duo):
    match, rtts = duo.scene("blocked")
    _check(match, relayed=True)
    _same_history(match)
    assert rtts and all(r["path"] == "relay" for r in rtts)
    (relay,) = match.of("p2p_relay")  # once for the pair, whichever page declared it first
    assert relay["reason"] == "unavailable" and relay["pair"] == sorted(match.seats)


def test_a_hidden_state_that_diverges_once_is_detected_repaired_by_state_transfer_and_recorded(duo):
    match, _ = duo.scene("desync")
    designated, repaired = match.reference, 1 - match.reference
    # the repaired page restarted from the designated page's state at frame c: its records from the first bad
    # frame up to c - 1 carry its own (diverged) hashes; everything the game showed and stored is the same
    (resync,) = [e for e in match.events[repaired] if e["type"] == "resync"]
    assert [e for e in match.events[designated] if e["type"] == "resync"] == []
    assert resync["from"] == match.seats[designated] and resync["local_hash"] != resync["remote_hash"]
    first_bad, c = resync["first_bad_frame"], resync["frame"]
    assert first_bad < c
    _check(match, diverged=range(first_bad, c))
    mine, theirs = match.records[repaired], match.records[designated]
    assert [(r["frame"], r["inputs"], r["result"]) for r in mine] == [(r["frame"], r["inputs"], r["result"]) for r in theirs]
    differ = [a["frame"] for a, b in zip(mine, theirs) if (a["chain"], a["state_hash"]) != (b["chain"], b["state_hash"])]
    assert differ and all(first_bad <= f < c for f in differ), (differ, first_bad, c)
    # recorded: each page's desync with the frame and both hashes, the repair, and the desync resolved
    desyncs = match.of("p2p_desync")
    assert sorted(e["peer"] for e in desyncs) == sorted(match.seats)
    for event in desyncs:
        assert isinstance(event["frame"], int) and event["local_hash"] != event["remote_hash"]
    (stored,) = match.of("p2p_resync")
    assert stored["peer"] == match.seats[repaired] and (stored["frame"], stored["first_bad_frame"]) == (c, first_bad)
    assert stored["local_hash"] and stored["remote_hash"] and stored["local_hash"] != stored["remote_hash"]
    assert sorted(e["peer"] for e in match.of("p2p_desync_resolved")) == sorted(match.seats)
