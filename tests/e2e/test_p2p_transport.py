"""The P2P transport with real Chromium pages on one real server (loopback): the members of a running match open
a WebRTC full mesh signalled through their participant WebSockets; both channels carry messages both ways and
each pair measures its round trip; a pair whose WebRTC is blocked, does not connect, or is too slow goes
through the server (relay) with the same API, recorded as a ``p2p_relay`` event of the match.

The test opens the mesh on the running match (``match.p2p.start()``, what a P2P scene does at its start) and
reads the page's mesh from the ``mug-p2p`` event the participant page dispatches (an init script keeps it).
WebRTC stays on loopback: ``--allow-loopback-in-peer-connection`` and microphone/camera permissions, no ICE
servers (see ``/work/shared/browser-env.md``)."""

from __future__ import annotations

import asyncio

import pytest
from playwright.sync_api import expect

from mug.server.app import MugServer
from tests.e2e.live_server import Serving, serving

#: Keeps what the page's mesh delivers and how its pairs change (read by the tests).
CAPTURE = """
window.__p2p = { mesh: null, start: null, got: [], states: [] };
window.addEventListener("mug-p2p", (event) => {
  const mesh = (window.__p2p.mesh = event.detail.mesh);
  window.__p2p.start = event.detail.start;
  mesh.onmessage = (from, channel, message) => window.__p2p.got.push([from, channel, message]);
  mesh.onstate = (seat, state, reason) => window.__p2p.states.push([seat, state, reason]);
});
"""
#: A page whose browser cannot make peer connections.
BLOCK_WEBRTC = """
window.RTCPeerConnection = function () { throw new DOMException("WebRTC is blocked by the test", "NotAllowedError"); };
"""
#: Peer connections that never learn the other side's candidates (ICE cannot connect: a firewall).
NO_CANDIDATES = """
(() => {
  const Real = window.RTCPeerConnection;
  window.RTCPeerConnection = class extends Real {
    addIceCandidate() { return Promise.resolve(); }
    setRemoteDescription(d) {
      return super.setRemoteDescription({ type: d.type, sdp: d.sdp.split("\\r\\n").filter((l) => !l.startsWith("a=candidate")).join("\\r\\n") });
    }
  };
})();
"""


class Page:
    """One participant in a Chromium context of their own (microphone and camera granted: loopback candidates)."""

    def __init__(self, browser, url: str, pid: str, init: str = "") -> None:
        self.pid = pid
        self.context = browser.new_context(permissions=["microphone", "camera"])
        self.context.add_init_script(CAPTURE + init)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(f"{url}?PROLIFIC_PID={pid}")

    def js(self, expression: str, arg=None):
        return self.page.evaluate(expression, arg)

    @property
    def seat(self) -> str:
        return self.js("window.__p2p.mesh.seat")

    def wait_states(self, states: dict[str, str], timeout_ms: float = 30_000) -> None:
        """Until the pair with each seat is in the given state."""
        self.page.wait_for_function(
            "want => window.__p2p.mesh && Object.entries(want).every(([s, v]) => window.__p2p.mesh.state(s) === v)",
            arg=states,
            timeout=timeout_ms,
        )


@pytest.fixture()
def match(tmp_path, webrtc_browser):
    """``start(study, inits, options)``: the study served, one page per entry of ``inits`` (its init script) in
    one match, the mesh opened with ``options``; returns (serving, pages)."""
    opened: list[Page] = []
    servers = []

    def start(study, inits: list[str], options: dict | None = None) -> tuple[Serving, list[Page]]:
        context = serving(MugServer(study, tmp_path / "data", "p2p-admin-token"))
        serve = context.__enter__()
        servers.append(context)
        pages = [Page(webrtc_browser, serve.url, f"p{i}", init) for i, init in enumerate(inits)]
        opened.extend(pages)
        for page in pages:
            expect(page.page.locator("#mug-canvas")).to_be_visible(timeout=30_000)  # the match runs

        def open_mesh() -> None:
            (running,) = serve.server.matches.matches.values()
            running.p2p.start(options)
            serve.server.registry.flush()

        serve.call(open_mesh)
        for page in pages:
            page.page.wait_for_function("window.__p2p.mesh !== null", timeout=30_000)
        return serve, pages

    yield start
    for page in opened:
        page.context.close()
    for context in servers:
        context.__exit__(None, None, None)


def relay_events(serve: Serving) -> list[dict]:
    def read() -> list[dict]:
        serve.server.store.commit()
        return [e["data"] for e in serve.server.store.events("p2p_relay")]

    return serve.call(read)


def exchange(pages: list[Page], count: int = 10) -> None:
    """Every page sends ``count`` numbered messages on each channel to every peer; each page gets all of them,
    control in order."""
    seats = {p.pid: p.seat for p in pages}
    for page in pages:
        page.js(
            """([peers, count]) => { for (const s of peers) for (let i = 0; i < count; i++)
                 for (const ch of ["inputs", "control"]) window.__p2p.mesh.send(s, ch, {i, ch, from: window.__p2p.mesh.seat}); }""",
            [[seats[o.pid] for o in pages if o is not page], count],
        )
    for page in pages:
        peers = [seats[o.pid] for o in pages if o is not page]
        page.page.wait_for_function("n => window.__p2p.got.length >= n", arg=2 * count * len(peers), timeout=30_000)
        got = page.js("window.__p2p.got")
        for seat in peers:
            for channel in ("inputs", "control"):
                numbers = [m["i"] for f, ch, m in got if f == seat and ch == channel and m["from"] == seat and m["ch"] == ch]
                if channel == "control":
                    assert numbers == list(range(count)), (page.pid, seat, numbers)
                else:  # unordered, unreliable: on loopback nothing is lost, but the order is not promised
                    assert sorted(numbers) == list(range(count)), (page.pid, seat, numbers)


def states_of(page: Page, seat: str) -> list[list]:
    """Every ``[state, reason]`` the page's pair with ``seat`` went through, in order."""
    return page.js("s => window.__p2p.states.filter(([seat]) => seat === s).map(([, state, reason]) => [state, reason])", seat)


def wait_rtt(page: Page, seat: str, path: str, samples: int = 3) -> dict:
    page.page.wait_for_function("([s, n]) => (window.__p2p.mesh.rtt(s)?.samples ?? 0) >= n", arg=[seat, samples], timeout=30_000)
    rtt = page.js("s => window.__p2p.mesh.rtt(s)", seat)
    assert rtt["path"] == path and rtt["median_ms"] >= 0
    return rtt


def test_two_pages_open_a_direct_mesh_both_channels_both_ways_with_round_trips(match):
    from tests.e2e.p2p_studies import duo

    serve, pages = match(duo, ["", ""])
    a, b = pages
    a.wait_states({b.seat: "open"})
    b.wait_states({a.seat: "open"})
    exchange(pages)
    print("direct RTT", wait_rtt(a, b.seat, "direct"), wait_rtt(b, a.seat, "direct"))
    assert relay_events(serve) == []
    assert all(p.errors == [] for p in pages)


def test_three_pages_open_a_full_mesh(match):
    from tests.e2e.p2p_studies import trio

    serve, pages = match(trio, ["", "", ""])
    seats = [p.seat for p in pages]
    assert sorted(seats) == ["agent_0", "agent_1", "agent_2"]
    for page in pages:
        page.wait_states({s: "open" for s in seats if s != page.seat})
    exchange(pages)
    for page in pages:
        for seat in seats:
            if seat != page.seat:
                wait_rtt(page, seat, "direct")
    assert relay_events(serve) == []
    assert all(p.errors == [] for p in pages)


def test_webrtc_blocked_in_one_page_its_pairs_go_through_the_server_and_are_recorded(match):
    from tests.e2e.p2p_studies import trio

    serve, pages = match(trio, [BLOCK_WEBRTC, "", ""])
    blocked, *others = pages
    seats = {p.pid: p.seat for p in pages}
    blocked.wait_states({s: "relay" for s in seats.values() if s != blocked.seat})
    others[0].wait_states({blocked.seat: "relay", others[1].seat: "open"})  # the pair that can connect does
    others[1].wait_states({blocked.seat: "relay", others[0].seat: "open"})
    exchange(pages)
    for page in others:
        print("relay RTT", wait_rtt(page, blocked.seat, "relay"))
        wait_rtt(blocked, page.seat, "relay")
    events = relay_events(serve)
    pairs = sorted(tuple(e["pair"]) for e in events)
    assert pairs == sorted(tuple(sorted([blocked.seat, p.seat])) for p in others)  # once per pair
    assert all(e["reason"] == "unavailable" and e["by"] == blocked.seat for e in events)
    assert {e["match_id"] for e in events} == {blocked.js("window.__p2p.start.match_id")}
    assert all(p.errors == [] for p in pages)


def test_a_pair_that_cannot_connect_is_relayed_after_the_timeout(match):
    from tests.e2e.p2p_studies import duo

    serve, pages = match(duo, [NO_CANDIDATES, NO_CANDIDATES], {"connect_timeout_s": 2})
    a, b = pages
    a.wait_states({b.seat: "relay"})
    b.wait_states({a.seat: "relay"})
    for page, other in ((a, b), (b, a)):
        assert states_of(page, other.seat) == [["connecting", None], ["relay", "timeout"]]
    exchange(pages)
    wait_rtt(a, b.seat, "relay")
    (event,) = relay_events(serve)
    assert event["reason"] == "timeout" and sorted(event["pair"]) == sorted([a.seat, b.seat])
    assert all(p.errors == [] for p in pages)


def test_a_direct_pair_too_slow_for_the_game_moves_to_the_relay(match):
    from tests.e2e.p2p_studies import duo

    # each page delays what it sends by 60 ms (the shim on its DataChannels): a direct round trip of 120 ms or
    # more, over the game's limit of 100 ms, while the server is a loopback round trip away
    options = {"shim": {"latency_ms": 60}, "max_rtt_ms": 100, "rtt_violations": 3, "ping_every_s": 0.1}
    serve, pages = match(duo, ["", ""], options)
    a, b = pages
    a.page.wait_for_function(
        "s => window.__p2p.states.some(([seat, state]) => seat === s && state === 'open')", arg=b.seat, timeout=30_000
    )
    a.wait_states({b.seat: "relay"})
    b.wait_states({a.seat: "relay"})
    (event,) = relay_events(serve)
    assert event["reason"] == "rtt" and event["rtt_ms"] >= 120  # the injected delay, both ways
    exchange(pages)
    assert all(p.errors == [] for p in pages)


# -- the server's checks, with WebSocket clients (no browser) -----------------------------------------------


def test_the_server_forwards_only_within_one_running_mesh_and_drops_what_does_not_fit(tmp_path):
    import mug
    from mug.errors import ConfigError
    from mug.server.matches.signal import MAX_SIGNAL_BYTES, SIGNAL_BURST
    from mug.server.store import Store
    from tests.bots import run_async
    from tests.e2e.p2p_studies import duo
    from tests.match_clients import Player

    with pytest.raises(ConfigError, match="stun:"):
        mug.deploy(duo, port=0, data_dir=tmp_path / "bad", ice_servers=[{"urls": "http://example.org"}])
    asked: list[str] = []

    def ice(pid: str) -> list[dict]:
        asked.append(pid)
        if pid == "p3":
            return [{"urls": "ftp://nope"}]  # a bad answer of the researcher's callable: the page gets none
        return [{"urls": ["turn:127.0.0.1:3478"], "username": pid, "credential": "short-lived"}]

    async def main():
        d = mug.deploy(duo, port=0, data_dir=tmp_path / "data", ice_servers=ice)
        try:
            players = {pid: await Player(d.url, pid).open() for pid in ("p0", "p1", "p2", "p3")}
            for player in players.values():
                player.playing = False
                await player.seat()
            matches = list(d._server.matches.matches.values())
            assert len(matches) == 2
            first, second = matches
            before = {pid: len(p.messages) for pid, p in players.items()}
            p2p_of = {pid: m for m in matches for pid in m.seats.values()}
            members = {pid: p for pid, p in players.items() if p2p_of[pid] is first}
            others = {pid: p for pid, p in players.items() if p2p_of[pid] is second}
            (a, b), (c, _) = members.values(), others.values()
            seat = {pid: p2p_of[pid].agent_of[pid] for pid in players}
            await a.send({"type": "signal", "to": seat[b.participant_id], "data": {"x": 1}})  # no mesh yet: dropped
            first.p2p.clock = lambda: 0.0  # the buckets never refill: bursts are counted exactly
            first.p2p.start({"connect_timeout_s": 3})
            second.p2p.start()
            d._server.registry.flush()
            starts = {pid: await p.next("p2p") for pid, p in players.items()}
            assert starts[a.participant_id]["ice_servers"][0]["username"] == a.participant_id
            assert starts["p3"]["ice_servers"] == [] and sorted(asked) == ["p0", "p1", "p2", "p3"]
            assert starts[a.participant_id]["options"] == {"connect_timeout_s": 3}
            assert starts[a.participant_id]["seats"] == ["agent_0", "agent_1"]
            await a.send({"type": "signal", "to": seat[b.participant_id], "data": {"x": 2}})  # before p2p_join: dropped
            for player in (a, b, c):
                await player.send({"type": "p2p_join"})
            roster = await b.next("p2p_peers", where=lambda m: all(v is not None for v in m["peers"].values()))
            assert set(roster["server_rtt_ms"]) == {"agent_0", "agent_1"}
            to_b = seat[b.participant_id]
            for bad in (
                {"type": "signal", "to": seat[a.participant_id], "data": {"x": "self"}},
                {"type": "signal", "to": "agent_9", "data": {"x": "nobody"}},
                {"type": "signal", "to": to_b, "data": {"x": "y" * (MAX_SIGNAL_BYTES + 1)}},
                {"type": "relay", "to": to_b, "channel": "inputs", "data": [{"x": "not declared"}]},
                {"type": "p2p_relay", "to": to_b, "reason": "because"},
            ):
                await a.send(bad)
            await a.send({"type": "signal", "to": to_b, "data": {"x": 3}})
            got = await b.next("signal")
            assert got == {"type": "signal", "from": seat[a.participant_id], "data": {"x": 3}}  # the earlier ones dropped
            await a.send({"type": "p2p_relay", "to": to_b, "reason": "timeout", "rtt_ms": None})
            assert (await b.next("p2p_relay"))["reason"] == "timeout"
            await b.send({"type": "p2p_relay", "to": seat[a.participant_id], "reason": "timeout"})  # b's view crossed it
            await a.send({"type": "relay", "to": to_b, "channel": "bogus", "data": []})
            await a.send({"type": "relay", "to": to_b, "channel": "control", "data": [{"k": "c", "s": 1, "d": 5}]})
            relayed = await b.next("relay")
            epochs = [roster["peers"][seat[a.participant_id]], roster["peers"][to_b]]
            assert relayed == {
                "type": "relay",
                "from": seat[a.participant_id],
                "channel": "control",
                "data": [{"k": "c", "s": 1, "d": 5}],
                "e": epochs,
            }
            for i in range(int(SIGNAL_BURST) + 30):
                await a.send({"type": "signal", "to": to_b, "data": {"n": i}})
            await a.send({"type": "p2p_join"})  # joins have a bucket of their own; its roster comes after the signals
            await a.next("p2p_peers", where=lambda m: m["peers"][seat[a.participant_id]] > epochs[0])
            await b.next("p2p_peers", where=lambda m: m["peers"][seat[a.participant_id]] > epochs[0])
            a.close()
            gone = await b.next("p2p_peers", where=lambda m: m["peers"][seat[a.participant_id]] is None)
            assert gone["peers"][to_b] is not None
            mine = [m for m in c.messages if m["type"] == "p2p_peers"][-1]["peers"][seat[c.participant_id]]
            await c.send({"type": "p2p_join"})  # what the server sent c before its answer has arrived
            await c.next("p2p_peers", where=lambda m: m["peers"][seat[c.participant_id]] > mine)
            return players, before, a, b
        finally:
            d.stop()

    players, before, a, b = run_async(main())
    assert not [m for m in a.messages if m["type"] == "p2p_relay"]  # a pair is declared once
    signals = [m for m in b.messages if m["type"] == "signal"]
    assert signals[0]["data"] == {"x": 3}
    # the over-size signal and {x: 3} took one token each: the burst's first SIGNAL_BURST - 2 went, the rest did not
    assert [m["data"]["n"] for m in signals[1:]] == list(range(int(SIGNAL_BURST) - 2))
    for other in players.values():
        if other not in (a, b):  # the other match's pages got nothing of this one's mesh
            assert not [
                m for m in other.messages[before[other.participant_id] :] if m["type"] in ("signal", "relay", "p2p_relay")
            ]
    store = Store(tmp_path / "data", readonly=True)
    try:
        (event,) = [e for e in store.events("p2p_relay")]
        assert event["data"]["reason"] == "timeout" and sorted(event["data"]["pair"]) == ["agent_0", "agent_1"]
        (ice_error,) = store.events("p2p_ice_error")
        assert ice_error["data"]["participant_id"] == "p3"
    finally:
        store.close()


def test_relays_go_in_batches_for_the_current_pages_within_budgets_of_their_own(tmp_path, monkeypatch):
    """One ``relay`` message carries batches for every peer and channel (fanned out, each with the pages' epochs);
    what was meant for an old page is dropped; relays do not count against the tab's ``messages_per_second`` but
    against their own message, size and byte budgets and the target's backlog; a page's ``p2p_relay`` events
    are capped and pairs of pages that are gone are forgotten."""
    import json

    import mug
    from mug.server.matches import signal
    from mug.server.store import Store
    from tests.bots import run_async
    from tests.e2e.p2p_studies import duo
    from tests.match_clients import Player

    monkeypatch.setattr(signal, "RELAY_BYTES_BURST", 40_000.0)
    monkeypatch.setattr(signal, "MAX_RELAY_EVENTS", 1)

    def nbytes(data) -> int:
        return len(json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode())

    async def main():
        d = mug.deploy(duo, port=0, data_dir=tmp_path / "data", messages_per_second=5)
        try:
            a, b = [await Player(d.url, pid).open() for pid in ("p0", "p1")]
            for player in (a, b):
                player.playing = False
                await player.seat()
            (match,) = d._server.matches.matches.values()
            match.p2p.clock = lambda: 0.0  # the buckets never refill
            match.p2p.start()
            d._server.registry.flush()
            for player in (a, b):
                await player.next("p2p")
                await player.send({"type": "p2p_join"})
            sa, sb = match.agent_of["p0"], match.agent_of["p1"]
            roster = await a.next("p2p_peers", where=lambda m: None not in m["peers"].values())
            e = [roster["peers"][sa], roster["peers"][sb]]
            stale = [e[0], e[1] - 1]

            async def inputs(marker):  # b's relayed inputs up to the one with marker, in order
                got = []
                while not got or got[-1] != marker:
                    got.extend(x["d"] for x in (await b.next("relay"))["data"])
                return got

            await a.send({"type": "p2p_relay", "to": sb, "reason": "lost", "e": stale})  # for b's old page: dropped
            await a.send({"type": "p2p_relay", "to": sb, "reason": "timeout", "e": e})
            declared = await b.next("p2p_relay")
            assert declared == {"type": "p2p_relay", "from": sa, "reason": "timeout", "e": e}
            batches = [
                {"to": sb, "e": e, "channel": "control", "data": [{"k": "c", "s": 1, "d": "c1"}]},
                {"to": sb, "e": stale, "channel": "inputs", "data": [{"k": "i", "d": "stale"}]},
                {"to": sb, "e": e, "channel": "inputs", "data": [{"k": "i", "d": "i1"}]},
            ]
            await a.send({"type": "relay", "batches": batches})
            assert await b.next("relay") == {
                "type": "relay",
                "from": sa,
                "channel": "control",
                "data": batches[0]["data"],
                "e": e,
            }
            assert await b.next("relay") == {"type": "relay", "from": sa, "channel": "inputs", "data": batches[2]["data"], "e": e}

            for n in range(60):  # 12 times the tab's 5 a second, burst 10: relays are not counted there
                await a.send(
                    {"type": "relay", "batches": [{"to": sb, "e": e, "channel": "inputs", "data": [{"k": "i", "d": n}]}]}
                )
            assert await inputs(59) == list(range(60))

            def one(d, size=0):  # an old-form relay: one batch
                return {"type": "relay", "to": sb, "e": e, "channel": "inputs", "data": [{"k": "i", "d": d, "x": "y" * size}]}

            await a.send(one("too big", signal.MAX_RELAY_BYTES))
            spent = nbytes(batches[0]["data"]) + nbytes(batches[2]["data"]) + sum(nbytes([{"k": "i", "d": n}]) for n in range(60))
            size = int((signal.RELAY_BYTES_BURST - spent) / 2.5)  # two of these fit in the byte burst, not three
            for name in ("big0", "big1", "big2"):
                await a.send(one(name, size))
            await a.send(one("after"))
            assert await inputs("after") == ["big0", "big1", "after"]

            dropped = []
            real_dropped = signal._dropped
            monkeypatch.setattr(signal, "_dropped", lambda *args: (dropped.append(args[-1]), real_dropped(*args)))
            monkeypatch.setattr(signal, "MAX_TARGET_BACKLOG_BYTES", -1)  # b counts as far behind
            await a.send(one("behind"))
            for _ in range(1000):  # until the server has handled it (at most 10 s)
                if any("too far behind" in p for p in dropped):
                    break
                await asyncio.sleep(0.01)
            assert any("too far behind" in p for p in dropped), dropped
            monkeypatch.setattr(signal, "MAX_TARGET_BACKLOG_BYTES", 512 * 1024)
            await a.send(one("caught up"))
            assert await inputs("caught up") == ["caught up"]
            queue = match.members["p1"].outbox  # (the server runs on this loop: nothing is flushed meanwhile)
            queue.append(bytes(signal.MAX_TARGET_BACKLOG_BYTES))
            assert match.p2p._backlog("p1") >= signal.MAX_TARGET_BACKLOG_BYTES  # b's queue counts
            queue.pop()

            await b.send({"type": "p2p_join"})  # b's page reloads: the relayed pair of its old page is forgotten
            fresh = await a.next("p2p_peers", where=lambda m: m["peers"][sb] > e[1])
            assert match.p2p.relayed == set()
            e2 = [fresh["peers"][sa], fresh["peers"][sb]]
            await a.send(one("old pair"))  # for b's old page: dropped
            await a.send({"type": "p2p_relay", "to": sb, "reason": "rtt", "e": e2})  # honoured, not recorded (cap 1)
            assert (await b.next("p2p_relay"))["e"] == e2
            await a.send({"type": "relay", "to": sb, "e": e2, "channel": "inputs", "data": [{"k": "i", "d": "new pair"}]})
            assert await inputs("new pair") == ["new pair"]
            return a, b
        finally:
            d.stop()

    a, b = run_async(main())
    assert [m["reason"] for m in b.messages if m["type"] == "p2p_relay"] == ["timeout", "rtt"]
    assert not [m for m in a.messages if m.get("code") == "rate_limited"]
    store = Store(tmp_path / "data", readonly=True)
    try:
        assert [e["data"]["reason"] for e in store.events("p2p_relay")] == ["timeout"]
    finally:
        store.close()


def test_a_page_that_reloads_is_connected_anew_and_a_closed_page_leaves_the_mesh_without_a_relay(match):
    from tests.e2e.p2p_studies import duo

    serve, pages = match(duo, ["", ""], {"connect_timeout_s": 20})
    a, b = pages
    a.wait_states({b.seat: "open"})
    first_epoch = a.js("s => window.__p2p.mesh.pairs.get(s).epochs[1]", b.seat)
    b.page.reload()  # the same participant's new page: its seat back, a new mesh
    b.page.wait_for_function("window.__p2p.mesh !== null", timeout=30_000)
    b.wait_states({a.seat: "open"})
    a.page.wait_for_function(
        "([s, e]) => window.__p2p.mesh.state(s) === 'open' && window.__p2p.mesh.pairs.get(s).epochs[1] !== e",
        arg=[b.seat, first_epoch],
        timeout=30_000,
    )
    exchange(pages)
    seat = b.seat
    b.page.close()  # the tab closes: the pair closes (the partner is lost), it is not relayed
    a.wait_states({seat: "absent"})
    assert a.js("window.__p2p.mesh.closed") is False  # the match waits for them (30 s): the mesh is still up
    # a closed pair never goes to the relay (its grace timer is cleared): no waiting past the grace needed
    assert [state for state, _ in states_of(a, seat)] == ["connecting", "open", "closed"] * 2
    assert relay_events(serve) == []
    assert a.errors == [] and b.errors == []


def test_ice_servers_and_mesh_options_are_checked_with_messages_that_name_the_fault():
    from mug.errors import ConfigError
    from mug.server.matches.signal import check_ice_servers, check_mesh_options

    ok = check_ice_servers(
        [{"urls": "stun:stun.example.org:3478"}, {"urls": ["turns:t.example.org"], "username": "u", "credential": "c"}]
    )
    assert ok == [{"urls": ["stun:stun.example.org:3478"]}, {"urls": ["turns:t.example.org"], "username": "u", "credential": "c"}]
    for bad, fault in (
        ({"urls": "stun:x"}, "expected a list"),
        ([{"url": "stun:x"}], r"\[0\]\.urls"),
        ([{"urls": []}], r"\[0\]\.urls"),
        ([{"urls": "stun:x"}, {"urls": "https://x"}], r"\[1\]\.urls: 'https://x'"),
        ([{"urls": "turn:x", "password": "p"}], "unknown keys"),
        ([{"urls": "turn:x", "credential": 5}], "credential: expected text"),
    ):
        with pytest.raises(ConfigError, match=fault):
            check_ice_servers(bad)
    assert check_mesh_options({"max_rtt_ms": None, "shim": {"latency_ms": 50, "loss": 0.1}}) == {
        "max_rtt_ms": None,
        "shim": {"latency_ms": 50, "loss": 0.1},
    }
    for bad in (
        {"connect_timeout_s": 0},
        {"shim": {"latency": 5}},
        {"shim": {"loss": 1.0}},
        {"shim": {"latency_ms": -1}},
        {"rtt_violations": 1.5},
        {"colour": "red"},
    ):
        with pytest.raises(ConfigError, match="p2p option"):
            check_mesh_options(bad)
