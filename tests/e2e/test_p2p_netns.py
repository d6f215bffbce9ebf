"""P2P with the latency in the network, below the browser: each participant's Chromium runs in a network namespace
of its own, and the packets between the namespaces (the WebRTC DataChannels' UDP) go through a userspace delay line
that holds each one for the link's delay (``tests/e2e/netns.py``). This kernel has no ``netem`` qdisc
(``CONFIG_NET_SCH_NETEM`` is not set), so ``tc ... netem`` cannot be used: the delay line (TUN devices and a
forwarding process, seeded draws for jitter and loss) is its substitute. The server stays on the host's loopback,
reached from each namespace through an undelayed relay at ``127.0.0.1``; the pages use no transport shim.

The transport tests (two pages 100 ms apart each way; three pages with a different delay each way of each pair)
check that every round trip the pages' mesh measures on its DataChannels is at least the line's two delays.
The match test plays ``p2p_matches.duo_study``'s two-episode match through the line (100 ms with ±75 ms jitter
and 15 % loss both ways; the other conditions are the shim's, in ``test_p2p_conditions.py``) and asserts what those
do: the server's record equals both pages' confirmed histories with zero tolerance, every episode verified, no
desync left unresolved, no relay, and rollbacks (the delay reached the game). The last test starts with the line
down (every packet lost): the pair goes to the relay, and when the line is back its next direct attempt connects
(real WebRTC through the line, ``p2p_direct`` recorded).

Skipped, naming what is missing, where namespaces cannot be made (not root, no ``ip``, no ``/dev/net/tun``)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from mug.server.app import MugServer
from tests.e2e.live_server import serving
from tests.e2e.netns import Link
from tests.e2e.test_p2p_transport import Page, exchange, relay_events, wait_rtt

#: Each way between the two namespaces (a round trip of 200 ms).
ONE_WAY = Link(delay_ms=100)
#: The transport cases: (study of ``p2p_studies.py``, the link of every direction, overrides per direction).
MESHES = {
    "duo-100ms": ("duo", ONE_WAY, None),
    "trio-asymmetric": ("trio", Link(delay_ms=30), {(0, 1): Link(delay_ms=120), (2, 0): Link(delay_ms=80)}),
}


def _port(url: str) -> int:
    return int(url.rstrip("/").rsplit(":", 1)[1])


@pytest.mark.parametrize("case", MESHES)
def test_the_delay_injected_between_the_namespaces_reaches_the_data_channels(netns_browsers, tmp_path, case):
    from tests.e2e import p2p_studies

    study, link, links = MESHES[case]
    count = 2 if study == "duo" else 3
    net, browsers = netns_browsers(link, links, count=count)
    pairs = [(i, j) for i in range(count) for j in range(count) if i != j]
    with serving(MugServer(getattr(p2p_studies, study), tmp_path / "data", "p2p-admin-token")) as serve:
        net.expose(_port(serve.url))
        pages = [Page(b, serve.url, f"p{i}") for i, b in enumerate(browsers)]  # page i in namespace i
        try:
            for page in pages:
                expect(page.page.locator("#mug-canvas")).to_be_visible(timeout=30_000)  # the match runs

            def open_mesh() -> None:
                (running,) = serve.server.matches.matches.values()
                running.p2p.start({"max_rtt_ms": None, "ping_every_s": 0.2})  # stays direct however slow
                serve.server.registry.flush()

            serve.call(open_mesh)
            for page in pages:
                page.page.wait_for_function("window.__p2p.mesh !== null", timeout=30_000)
            seats = [page.seat for page in pages]
            for i, page in enumerate(pages):
                page.wait_states({seat: "open" for j, seat in enumerate(seats) if j != i})
            exchange(pages)
            rtts = {(i, j): wait_rtt(pages[i], seats[j], "direct", samples=5) for i, j in pairs}
            samples = {(i, j): pages[i].js("s => window.__p2p.mesh.pairs.get(s).rtts", seats[j]) for i, j in pairs}
            print("RTT through the namespaces", rtts)
            errors = [e for p in pages for e in p.errors]
            relayed = relay_events(serve)
        finally:
            for page in pages:
                page.context.close()
    stats = net.stats()
    print("delay line", stats)
    assert errors == [] and relayed == []
    for i, j in pairs:
        # every round trip page i measured on its DataChannels with page j took at least the line's two delays
        round_trip = net.links[i, j].delay_ms + net.links[j, i].delay_ms
        assert len(samples[i, j]) >= 5 and min(samples[i, j]) >= round_trip, (i, j, round_trip, samples[i, j])
        # and the packets went through the line, in every direction (none lost: the links have no loss)
        direction = stats[f"{i}>{j}"]
        assert direction["sent"] > 0 and direction["dropped"] == direction["overflow"] == 0, (i, j, stats)


#: The whole-match scenario: 100 ms each way with ±75 ms jitter and 15 % loss (the shim's scenarios in
#: ``test_p2p_conditions.py`` cover the other conditions; one match through the kernel's packet path is enough to
#: show they reach the game there too).
LOSSY = Link(delay_ms=100, jitter_ms=75, loss=0.15)


def test_two_pages_in_namespaces_play_a_p2p_match_the_server_stores_what_both_confirmed(netns_browsers, tmp_path):
    from tests.e2e.p2p_matches import EPISODES, Member, assert_stored_as_confirmed, duo_study, play, played, unresolved

    net, browsers = netns_browsers(LOSSY, None)
    server = MugServer(duo_study(), tmp_path / "data", "p2p-admin-token")
    # no shim: the delay is the network's. The pair stays direct: with 15 % of the handshake's packets lost too
    # (ICE checks, DTLS flights with their doubling resend timers), connecting can take longer than the 10 s default
    # on a loaded machine, and this test is about the game's packets, not about the relay (tested elsewhere)
    server.matches.mesh_options = {"max_rtt_ms": None, "connect_timeout_s": 60}
    with serving(server) as serve:
        net.expose(_port(serve.url))
        members = [Member(b, serve.url, f"p{i}") for i, b in enumerate(browsers)]
        try:
            for member in members:
                expect(member.page.locator("#mug-canvas")).to_be_visible(timeout=120_000)  # Pyodide loaded, game on
            play(members)
            for member in members:
                expect(member.page.get_by_text("DONE")).to_be_visible(timeout=60_000)  # the study went on
            match = played(serve, members, "duo", EPISODES)
        finally:
            for member in members:
                member.context.close()
    stats = net.stats()
    print("delay line", stats)
    assert match.errors == []
    assert sorted(match.seats) == ["agent_0", "agent_1"]
    assert match.records[0] == match.records[1]  # both pages confirmed the same frames, hash chain and all
    assert_stored_as_confirmed(match, EPISODES)  # the server's record: each step once, as the pages confirmed it
    assert match.of("p2p_mismatch") == match.of("p2p_relay") == match.of("bad_p2p_frames") == []
    assert [unresolved(e) for e in match.events] == [[], []]
    # the network's delay reached the game: pages predicted, missed and rolled back
    episode_stats = [e["stats"] for page in match.events for e in page if e["type"] == "episode_end"]
    assert len(episode_stats) == 2 * EPISODES and sum(s["rollbacks"] for s in episode_stats) > 0
    for direction in ("0>1", "1>0"):  # the inputs went through the delay line both ways, and lost some there
        assert stats[direction]["sent"] > 0 and stats[direction]["dropped"] > 0 and stats[direction]["overflow"] == 0, stats


def test_a_pair_relayed_while_the_network_is_down_goes_direct_again_once_it_is_back(netns_browsers, tmp_path):
    from tests.e2e import p2p_studies

    net, browsers = netns_browsers(Link(loss=1), None)  # the network between the two is down at first
    with serving(MugServer(p2p_studies.duo, tmp_path / "data", "p2p-admin-token")) as serve:
        net.expose(_port(serve.url))
        pages = [Page(b, serve.url, f"p{i}") for i, b in enumerate(browsers)]
        try:
            for page in pages:
                expect(page.page.locator("#mug-canvas")).to_be_visible(timeout=30_000)  # the match runs

            def open_mesh() -> None:
                (running,) = serve.server.matches.matches.values()
                options = {"max_rtt_ms": None, "ping_every_s": 0.2, "connect_timeout_s": 3, "retry_direct_s": 1}
                running.p2p.start(options)
                serve.server.registry.flush()

            serve.call(open_mesh)
            for page in pages:
                page.page.wait_for_function("window.__p2p.mesh !== null", timeout=30_000)
            seats = [page.seat for page in pages]
            pages[0].wait_states({seats[1]: "relay"})
            pages[1].wait_states({seats[0]: "relay"})
            exchange(pages)  # through the server meanwhile
            for i, j in ((0, 1), (1, 0)):
                net.set_link(i, j, Link(delay_ms=60))  # the network is back
            pages[0].wait_states({seats[1]: "open"}, timeout_ms=60_000)  # the next attempt connects
            pages[1].wait_states({seats[0]: "open"}, timeout_ms=60_000)
            for page in pages:
                page.js("window.__p2p.got = []")
            exchange(pages)  # directly now
            rtt = wait_rtt(pages[0], seats[1], "direct", samples=5)
            samples = pages[0].js("s => window.__p2p.mesh.pairs.get(s).rtts", seats[1])
            states = [page.js("window.__p2p.states") for page in pages]
            returns = pages[0].js("s => window.__p2p.mesh.stats()[s].returns", seats[1])
            errors = [e for p in pages for e in p.errors]

            def events() -> list[tuple[str, dict]]:
                serve.server.store.commit()
                return [(e["kind"], e["data"]) for e in serve.server.store.events() if e["kind"] in ("p2p_relay", "p2p_direct")]

            recorded = serve.call(events)
        finally:
            for page in pages:
                page.context.close()
    print("direct again, RTT", rtt, "states", states)
    assert errors == []
    assert [(kind, data.get("reason")) for kind, data in recorded] == [("p2p_relay", "timeout"), ("p2p_direct", None)]
    assert recorded[1][1]["pair"] == sorted(seats) and recorded[1][1]["attempt"] >= 1
    assert returns == 1
    for page_states, other in zip(states, reversed(seats)):
        assert [s for seat, s, _ in page_states if seat == other] == ["connecting", "relay", "open"]
    assert min(samples) >= 120  # measured on the new DataChannels, through the line (60 ms each way)
