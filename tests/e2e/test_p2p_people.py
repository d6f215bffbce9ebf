"""People, not just packets: a peer-to-peer match (two real Chromium pages, WebRTC on loopback, 100 ms added by the
transport shim each way, the real server) in which one member's page reloads, or its WebSocket drops and comes back,
mid-match. The match goes on and ends ``done``, the server's stored steps equal what the pages confirmed (zero
tolerance), every episode is verified and no desync stays unresolved.

What a participant sees: while the partner's page is away, the other page's game runs on to ``max_prediction``
frames beyond what both confirmed and then holds its picture (it stalls: its partner's inputs do not come); once
the partner is back it goes on from where it stood. A reloaded page loads the game again and, at its first tick,
asks the partner for the confirmed state (``p2p["rejoin"]`` in the scene the server sends a reopened tab); it
then plays from the frame the match is at, not from the start. A page whose socket dropped keeps its game: its
mesh is made anew, and each side resends the episode reports that may have been lost with the old pair.

A tab hidden for 5 s is really hidden: that participant plays in the ``hideable_browser`` of ``conftest.py`` (a
Chromium Playwright attaches to over CDP without its focus emulation, which otherwise keeps every page visible), whose
window is minimised. The page's ``visibilityState`` is "hidden", its animation frames stop and its main-thread
timers run about once a second (measured in the test); it sends ``visibility`` to the server and the match's
monitoring rules apply. A hidden tab keeps playing: the game ticks in the Pyodide worker, and peer messages are
events, not timers.

With ``on_partner_loss="ai"`` a closed tab's seat goes to the fill-in model (an ONNX policy every page loads with
the scene) after the grace (``P2P_AI_GRACE_S``), at a frame the remaining pages agree on; the other page plays on to the end at its frame rate, and the
server's record (its history: real inputs before that frame, the model's after) verifies.

Helpers of ``p2p_matches.py`` (members, key cycling, desync bookkeeping, frame rate) are imported, not copied."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import expect

import mug
from mug.examples.browser_grid import PyCoinGrid, draw
from mug.server.app import MugServer
from tests.e2e.live_server import serving
from tests.e2e.p2p_matches import KEYS, Member, frame_rate, play, unresolved
from tests.synthetic import recurrent_model

#: Each page delays what it sends by 100 ms (a 200 ms round trip); the pair stays direct on a loaded machine.
MESH = {"shim": {"latency_ms": 100}, "max_rtt_ms": None}

EPISODES, STEPS = 2, 150
#: The fill-in policy of a lost seat (``on_partner_loss="ai"``): it samples, so its stream must agree too.
FILL_IN = mug.ModelConfig.from_onnx(recurrent_model(Path(tempfile.mkdtemp(prefix="mug-fill-")) / "fill.onnx", obs=29, actions=5))


def _long_duo(on_partner_loss: str = "end", **monitoring: float) -> mug.Stager:
    """Two humans, two episodes of up to 150 steps (5 s each at 30 fps): time for a page to go and come back;
    ``monitoring``: the scene's ``monitoring(...)`` options. With ``on_partner_loss="ai"`` a lost seat is played by
    :data:`FILL_IN` (a recurrent, sampling ONNX policy of the grid's 29 observations)."""
    scene = (
        mug.GymScene("duo")
        .environment(PyCoinGrid, {"max_steps": STEPS, "coins": 20}, seed=3)
        .policies({"agent_0": mug.Human, "agent_1": mug.Human})
        .gameplay(action_mapping=KEYS, num_episodes=EPISODES)
        .rendering(mode="surface", draw=draw, width=120, height=120, fps=30)
        .waitroom(timeout_s=120, on_timeout="end")
        .multiplayer(mode="p2p", input_delay=2, max_prediction=8, on_partner_loss=on_partner_loss, reconnect_timeout_s=90)
        .runtime(environment="browser")
    )
    if monitoring:
        scene.monitoring(**monitoring)
    if on_partner_loss == "ai":
        scene.waitroom(timeout_s=120, on_timeout="end", fill_with=FILL_IN)
    return mug.Stager([scene, mug.EndScene(completion_code="DONE")])


def _confirmed(member: Member) -> int:
    return int(member.js("(window.mugP2P?.records ?? []).length"))


def _play_until(members: list[Member], test, timeout_s: float = 120) -> None:
    """Hold changing keys on every page until ``test()`` holds."""
    deadline, turn = time.monotonic() + timeout_s, 0
    keys = ["ArrowRight", "ArrowDown", "ArrowLeft", "ArrowUp"]
    while not test():
        assert time.monotonic() < deadline, "timed out"
        for i, member in enumerate(members):
            member.page.keyboard.down(keys[(turn + i) % 4])
        members[0].page.wait_for_timeout(300)
        for i, member in enumerate(members):
            member.page.keyboard.up(keys[(turn + i) % 4])
        turn += 1


def _stored(serve, episodes: int) -> tuple[list[dict], list[dict], list[dict]]:
    """The server's steps, events and matches once every episode's verification is stored (or after 60 s)."""

    def read() -> tuple[list[dict], list[dict], list[dict]]:
        serve.server.store.commit()
        return serve.server.store.steps("duo"), serve.server.store.events(), serve.server.store.matches()

    deadline = time.monotonic() + 60
    while True:
        steps, events, matches = serve.call(read)
        if sum(e["kind"] == "verification" for e in events) >= episodes or time.monotonic() > deadline:
            return steps, events, matches
        time.sleep(0.2)


def _assert_record(steps: list[dict], reference: list[dict]) -> None:
    """The stored steps are the reference page's confirmed steps, field by field."""
    confirmed = [r for r in reference if r["result"]["kind"] == "step"]
    assert [(s["frame"], s["episode"], s["step"]) for s in steps] == [
        (r["frame"], r["result"]["episode"], r["result"]["step"]) for r in confirmed
    ]
    for step, record in zip(steps, confirmed):
        result = record["result"]
        assert (step["actions"], step["chain"], step["obs_hash"]) == (record["inputs"], record["chain"], result["obs_hash"])
        assert (step["rewards"], step["terminated"], step["truncated"]) == (
            result["rewards"],
            result["terminated"],
            result["truncated"],
        )
    assert all(s["verified"] is True for s in steps)
    ends = [
        r["result"]["episode"]
        for r in confirmed
        if r["result"]["terminated"]
        and all(r["result"]["terminated"][a] or r["result"]["truncated"][a] for a in r["result"]["terminated"])
    ]
    assert ends == list(range(EPISODES))  # every episode played to its end


@dataclass
class Outcome:
    """What the pages confirmed and the server stored once the match's study went on."""

    histories: dict[str, list[dict]]
    events: dict[str, list[dict]]
    steps: list[dict]
    stored: list[dict]
    matches: list[dict]
    errors: list[str]


def _finish(serve, seats: dict[str, Member]) -> Outcome:
    """Wait for every page's end of the study, then read the pages' confirmed records and events and the server's
    record (once every episode's verification is stored)."""
    for member in seats.values():
        expect(member.page.get_by_text("DONE")).to_be_visible(timeout=60_000)
    histories = {s: m.js("window.mugP2P.records") for s, m in seats.items()}
    events = {s: m.js("window.mugP2P.events") for s, m in seats.items()}
    steps, stored, matches = _stored(serve, EPISODES)
    return Outcome(histories, events, steps, stored, matches, [e for m in seats.values() for e in m.errors])


def _assert_one_clean_record(outcome: Outcome, reference: list[dict]) -> None:
    """No page error, the match ended ``done``, the server's record is ``reference`` (a page's confirmed history
    from frame 0), nothing mismatched, missing or refused, and no desync left unresolved on the pages."""
    assert outcome.errors == []
    assert [m["end_reason"] for m in outcome.matches] == ["done"]
    _assert_record(outcome.steps, reference)
    assert [e for e in outcome.stored if e["kind"] in ("p2p_mismatch", "p2p_gap", "bad_p2p_frames")] == []
    assert [unresolved(e) for e in outcome.events.values()] == [[], []]


def _assert_both_kept_their_games(outcome: Outcome) -> None:
    """Both pages kept their games (no reload): the same history from frame 0, which the server stored."""
    reference, other = outcome.histories["agent_0"], outcome.histories["agent_1"]
    assert [r["frame"] for r in reference] == list(range(len(reference)))
    shorter = min(len(reference), len(other))
    assert other[:shorter] == reference[:shorter]
    # each page stops recording once it sees the last episode's end agreed, which one page may see a few frames
    # (a one-way latency) after the other: what one has beyond the other are frames after the match's end
    assert all(r["result"]["kind"] == "over" for r in reference[shorter:] + other[shorter:])
    _assert_one_clean_record(outcome, reference)


def _start(webrtc_browser, serve, second=None) -> dict[str, Member]:
    """Two members (the second in ``second``, a browser of its own, if given) seated in a running match, by seat."""
    members = [Member(webrtc_browser, serve.url, "p0"), Member(second or webrtc_browser, serve.url, "p1")]
    for member in members:
        expect(member.page.locator("#mug-canvas")).to_be_visible(timeout=120_000)
    _play_until(members, lambda: all(m.js("window.mugP2P?.seat") for m in members))
    return {m.js("window.mugP2P.seat"): m for m in members}


@pytest.mark.parametrize("seat", ["agent_1", "agent_0"])
def test_a_page_reloaded_mid_match_gets_the_state_and_the_match_ends_done_with_one_record(webrtc_browser, tmp_path, seat):
    # agent_0 is the reference peer: the server stores the match from its records, and its old page's last
    # confirmed frames (never uploaded, or confirmed with inputs its partner never got) must not leave a gap
    server = MugServer(_long_duo(), tmp_path / "data", "p2p-admin-token")
    server.matches.mesh_options = MESH
    with serving(server) as serve:
        seats = _start(webrtc_browser, serve)
        members = list(seats.values())
        try:
            reloading, other = seats[seat], next(s for s in seats if s != seat)
            _play_until(members, lambda: _confirmed(reloading) >= 60)
            old_records = reloading.js("window.mugP2P.records")
            old_events = reloading.js("window.mugP2P.events")
            reloading.page.reload()
            expect(reloading.page.locator("#mug-canvas")).to_be_visible(timeout=120_000)
            play(members)
            out = _finish(serve, seats)
        finally:
            for member in members:
                member.context.close()
    histories, events = out.histories, out.events
    reference = histories[other]  # the page that stayed: its confirmed history runs from frame 0
    assert [r["frame"] for r in reference] == list(range(len(reference)))
    _assert_one_clean_record(out, reference)
    # the new page restarted from the state at frame c, the frame the match was at: it played on from there
    (resync, *_) = [e for e in events[seat] if e["type"] == "resync"]
    c = resync["frame"]
    assert c >= 60 - 20 and c > len(old_records) - 20
    by_frame = {r["frame"]: r for r in reference}
    # the reloaded seat's confirmed records across both page lives: the old page's up to c, the new page's from c
    assert [r for r in old_records if r["frame"] < c] == [by_frame[f] for f in range(min(c, len(old_records)))]
    superseded = [r["frame"] for r in old_records if r["frame"] >= c]  # inputs the state's sender never got
    assert len(superseded) <= 8 + 2 * 2  # max_prediction + twice the input delay
    # the new page's records from c on are the reference's (a last "over" frame may be one page's only: each stops
    # recording once the last episode's end is agreed)
    new, common = histories[seat], [by_frame[f] for f in range(c, len(reference))]
    n = min(len(new), len(common))
    assert new[:n] == common[:n] and all(r["result"]["kind"] == "over" for r in new[n:] + common[n:])
    assert unresolved(old_events) == []
    assert {e["data"]["peer"] for e in out.stored if e["kind"] == "p2p_resync"} == {seat}
    assert sum(e["kind"] == "rejoined" for e in out.stored) >= 1


def test_a_socket_that_drops_and_comes_back_keeps_the_game_and_the_match_ends_done(webrtc_browser, tmp_path):
    server = MugServer(_long_duo(), tmp_path / "data", "p2p-admin-token")
    server.matches.mesh_options = MESH
    with serving(server) as serve:
        seats = _start(webrtc_browser, serve)
        members = list(seats.values())
        try:
            for seat in ("agent_1", "agent_0"):  # each drops once: the other's pair, then its own mesh, made anew
                target = _confirmed(seats["agent_0"]) + 60
                _play_until(members, lambda target=target: _confirmed(seats["agent_0"]) >= target)
                before = serve.call(lambda: _rejoins(serve.server))
                serve.call(lambda seat=seat: _drop_socket(serve.server, seat))
                _play_until(members, lambda before=before: serve.call(lambda: _rejoins(serve.server)) > before, timeout_s=60)
            play(members)
            out = _finish(serve, seats)
        finally:
            for member in members:
                member.context.close()
    _assert_both_kept_their_games(out)
    events = out.events
    assert sum(e["kind"] == "partner_lost" for e in out.stored) == 2  # the server saw each socket go
    agreed = {seat: [e["episode"] for e in page if e["type"] == "episode_end"] for seat, page in events.items()}
    assert agreed == {"agent_0": list(range(EPISODES)), "agent_1": list(range(EPISODES))}


def _drop_socket(server: MugServer, seat: str) -> None:
    """Close the WebSocket of the member playing ``seat`` from the server's side (the page reconnects)."""
    (match,) = server.matches.matches.values()
    server.registry.participants[match.seats[seat]].connection.close()


def _rejoins(server: MugServer) -> int:
    server.store.commit()
    return sum(e["kind"] == "rejoined" for e in server.store.events())


#: Counts the page's animation frames and the runs of a zero-delay timer loop on its main thread.
PACE = """() => { if (window.__pace) return; window.__pace = {frames: 0, timers: 0};
  (function frame() { window.__pace.frames++; requestAnimationFrame(frame); })();
  (function timer() { window.__pace.timers++; setTimeout(timer, 0); })(); }"""


def _pace(member: Member) -> dict[str, float]:
    return member.js("({...window.__pace, now: performance.now()})")


def test_a_tab_hidden_for_5_s_is_warned_its_time_hidden_recorded_and_the_visible_peer_keeps_its_frame_rate(
    webrtc_browser, hideable_browser, tmp_path
):
    server = MugServer(_long_duo(warn_hidden_s=2.0, max_hidden_s=60.0), tmp_path / "data", "p2p-admin-token")
    server.matches.mesh_options = MESH
    with serving(server) as serve:
        seats = _start(webrtc_browser, serve, hideable_browser)
        members = list(seats.values())
        try:
            hider = next(m for m in members if m.pid == "p1")  # the member in the browser whose window minimises
            (hider_seat,), (visible_seat,) = ([s for s, m in seats.items() if (m is hider) == h] for h in (True, False))
            _play_until(members, lambda: _confirmed(hider) >= 30)
            hider.js(PACE)
            start = _pace(hider)
            hider.page.wait_for_timeout(500)
            shown = _pace(hider)
            hideable_browser.set_hidden(hider.page, True)  # the participant switches away: the window is minimised
            hidden_at, before = time.monotonic(), _pace(hider)
            # the participant looks away for 5 s (their partner plays on)
            _play_until([seats[visible_seat]], lambda: time.monotonic() - hidden_at >= 5.0)
            after = _pace(hider)
            expect(hider.page.get_by_text("Please keep this tab visible while you play.")).to_be_visible()
            hideable_browser.set_hidden(hider.page, False)
            play(members)
            out = _finish(serve, seats)
        finally:
            for member in members:
                member.context.close()
    # the tab was really hidden: Chromium's background throttling applied to its main thread (no animation frames,
    # timers at most about once a second), where it ran hundreds of zero-delay timers a second while visible
    hidden_s = (after["now"] - before["now"]) / 1000
    assert shown["timers"] - start["timers"] > 50, (start, shown)
    assert after["frames"] - before["frames"] <= 2, (before, after)
    assert after["timers"] - before["timers"] <= hidden_s + 3, (before, after, hidden_s)
    _assert_both_kept_their_games(out)
    events, stored_events = out.events, out.stored
    (warning,) = [e for e in stored_events if e["kind"] == "hidden_warning"]
    assert warning["participant_id"] == out.matches[0]["seats"][hider_seat] and warning["data"]["warn_hidden_s"] == 2.0
    assert not [e for e in stored_events if e["kind"] == "excluded"]
    # the episode statistics (the pages' and the server's p2p_episode events) carry the time hidden per peer
    stats = {(e["data"]["peer"], e["data"]["episode"]): e["data"]["stats"] for e in stored_events if e["kind"] == "p2p_episode"}
    assert sorted(stats) == [(seat, ep) for seat in ("agent_0", "agent_1") for ep in range(EPISODES)]
    assert all(stats[visible_seat, ep]["hidden_s"] == 0 for ep in range(EPISODES))
    assert sum(stats[hider_seat, ep]["hidden_s"] for ep in range(EPISODES)) > 0
    # frame rate held for the visible peer: by its own counters, most frame slots produced a frame (a hidden peer
    # that stopped would stall it on every tick for 5 s, over a third of the match; a loaded machine stalls it some)
    assert frame_rate(events[visible_seat])["lost"] <= 0.35, frame_rate(events[visible_seat])


def test_with_on_partner_loss_wait_the_partner_sees_the_pause_while_a_tab_is_closed_and_reopened(webrtc_browser, tmp_path):
    server = MugServer(_long_duo("wait"), tmp_path / "data", "p2p-admin-token")
    server.matches.mesh_options = MESH
    with serving(server) as serve:
        seats = _start(webrtc_browser, serve)
        members = list(seats.values())
        try:
            leaving, stays = seats["agent_1"], seats["agent_0"]
            _play_until(members, lambda: _confirmed(leaving) >= 45)
            url = leaving.page.url
            leaving.page.close()  # the participant closes the tab ...
            notice = stays.page.locator(".mug-paused-message")
            expect(notice).to_have_text("Your partner lost the connection. Waiting for them to come back…", timeout=30_000)
            leaving.page = leaving.context.new_page()  # ... and opens the study link again
            leaving.page.on("pageerror", lambda e: leaving.errors.append(str(e)))
            leaving.page.goto(url)
            expect(notice).to_have_count(0, timeout=60_000)  # the pause ends when the partner is back
            expect(leaving.page.locator("#mug-canvas")).to_be_visible(timeout=120_000)
            play(members)
            out = _finish(serve, seats)
        finally:
            for member in members:
                member.context.close()
    histories, events, reference = out.histories, out.events, out.histories["agent_0"]
    _assert_one_clean_record(out, reference)
    (resync, *_) = [e for e in events["agent_1"] if e["type"] == "resync"]  # the new page started from the state
    common = [r for r in reference if r["frame"] >= resync["frame"]][: len(histories["agent_1"])]
    new = histories["agent_1"]
    assert new[: len(common)] == common and all(r["result"]["kind"] == "over" for r in new[len(common) :])
    assert [e["kind"] for e in out.stored if e["kind"] in ("partner_lost", "rejoined")] == ["partner_lost", "rejoined"]


def test_with_on_partner_loss_ai_a_closed_tab_s_seat_is_played_by_the_fill_in_model_on_the_other_page_to_the_end(
    webrtc_browser, tmp_path
):
    server = MugServer(_long_duo("ai"), tmp_path / "data", "p2p-admin-token")
    server.matches.mesh_options = MESH
    with serving(server) as serve:
        seats = _start(webrtc_browser, serve)
        leaving, stays = seats["agent_0"], seats["agent_1"]  # the reference (whose records the server stored) leaves
        try:
            _play_until([leaving, stays], lambda: _confirmed(stays) >= 45)
            leaving.context.close()  # the participant closes the tab mid-episode
            play([stays])
            expect(stays.page.get_by_text("DONE")).to_be_visible(timeout=60_000)
            history, events = stays.js("window.mugP2P.records"), stays.js("window.mugP2P.events")
            steps, stored, matches = _stored(serve, EPISODES)
        finally:
            stays.context.close()
    assert stays.errors == [] and [m["end_reason"] for m in matches] == ["done"]
    (handed,) = [e for e in events if e["type"] == "seat_ai"]
    agreed = handed["frame"]
    assert handed == {"type": "seat_ai", "seat": "agent_0", "peer": "agent_0", "frame": agreed}
    assert 45 <= agreed < STEPS  # mid-episode 0
    (seat_ai,) = [e for e in stored if e["kind"] == "seat_ai"]
    assert seat_ai["participant_id"] == matches[0]["seats"]["agent_0"]
    assert (seat_ai["data"]["agent"], seat_ai["data"]["frame"]) == ("agent_0", agreed)
    # the server's record is the remaining page's confirmed history, zero tolerance, every episode verified
    assert [r["frame"] for r in history] == list(range(len(history)))
    _assert_record(steps, history)
    assert len([e for e in stored if e["kind"] == "verification" and e["data"]["verified"]]) == EPISODES
    for step in steps:
        human = step["frame"] < agreed
        assert (step["sources"]["agent_0"].startswith("human:"), "agent_0" in step["ai_digests"]) == (human, not human)
    assert all(s["ai_digests"]["agent_0"] for s in steps if s["frame"] >= agreed)  # the fill-in's hidden state digest
    assert [e for e in stored if e["kind"] in ("p2p_mismatch", "p2p_gap", "bad_p2p_frames")] == []
    assert unresolved(events) == []
    # frame rate held alone with the AI: most frame slots produced a frame (a page waiting for the lost partner's
    # inputs would stall on every tick from the loss on)
    assert frame_rate(events)["lost"] <= 0.35, frame_rate(events)
    assert frame_rate(events, range(1, EPISODES))["lost"] <= 0.2, frame_rate(events, range(1, EPISODES))
    assert [e["data"]["reason"] for e in stored if e["kind"] == "match_left"] == ["seat_ai"]
