"""P2P with the latency in the network, below the browser: each participant's Chromium runs in a network namespace
of its own, and the packets between the namespaces (the WebRTC DataChannels' UDP) go through a userspace delay line
that holds each one for the link's delay (``tests/e2e/netns.py``). This kernel has no ``netem`` qdisc
(``CONFIG_NET_SCH_NETEM`` is not set), so ``tc ... netem`` cannot be used: the delay line (TUN devices and a
forwarding process, seeded draws for jitter and loss) is its substitute. The server stays on the host's loopback,
reached from each namespace through an undelayed relay at ``127.0.0.1``; the pages use no transport shim.

Skipped, naming what is missing, where namespaces cannot be made (not root, no ``ip``, no ``/dev/net/tun``)."""

from __future__ import annotations

from playwright.sync_api import expect

from mug.server.app import MugServer
from tests.e2e.live_server import serving
from tests.e2e.netns import Link
from tests.e2e.test_p2p_transport import Page, exchange, relay_events, wait_rtt

#: Each way between the two namespaces (a round trip of 200 ms).
ONE_WAY = Link(delay_ms=100)


def _port(url: str) -> int:
    return int(url.rstrip("/").rsplit(":", 1)[1])


def test_the_delay_injected_between_the_namespaces_reaches_the_data_channels(netns_browsers, tmp_path):
    from tests.e2e.p2p_studies import duo

    net, browsers = netns_browsers(ONE_WAY)
    with serving(MugServer(duo, tmp_path / "data", "p2p-admin-token")) as serve:
        net.expose(_port(serve.url))
        pages = [Page(b, serve.url, f"p{i}") for i, b in enumerate(browsers)]
        try:
            for page in pages:
                expect(page.page.locator("#mug-canvas")).to_be_visible(timeout=30_000)  # the match runs

            def open_mesh() -> None:
                (running,) = serve.server.matches.matches.values()
                running.p2p.start({"max_rtt_ms": None, "ping_every_s": 0.2})  # stays direct however slow
                serve.server.registry.flush()

            serve.call(open_mesh)
            a, b = pages
            for page in pages:
                page.page.wait_for_function("window.__p2p.mesh !== null", timeout=30_000)
            a.wait_states({b.seat: "open"})
            b.wait_states({a.seat: "open"})
            exchange(pages)
            rtts = {p.pid: wait_rtt(p, o.seat, "direct", samples=5) for p, o in ((a, b), (b, a))}
            samples = {p.pid: p.js("s => window.__p2p.mesh.pairs.get(s).rtts", o.seat) for p, o in ((a, b), (b, a))}
            print("RTT through the namespaces", rtts)
            errors = [e for p in pages for e in p.errors]
            relayed = relay_events(serve)
        finally:
            for page in pages:
                page.context.close()
    stats = net.stats()
    print("delay line", stats)
    assert errors == [] and relayed == []
    # every round trip the pages measured on their DataChannels took at least the two delays of the line
    for pid, measured in samples.items():
        assert len(measured) >= 5 and min(measured) >= 2 * ONE_WAY.delay_ms, (pid, measured)
    # and the pages' packets went through it, both ways (none lost: the link has no loss)
    assert stats["0>1"]["sent"] > 0 and stats["1>0"]["sent"] > 0
    assert stats["0>1"]["dropped"] == stats["1>0"]["dropped"] == 0
