"""The server's side of the P2P transport (``mug/server/matches/signal.py``) with WebSocket clients, no browser:
signalling and relay only within one running mesh, batches for the current pages, budgets of their own, the
mesh options (per-seat shims among them) and ICE servers checked with messages that name the fault. The
transport with real Chromium pages: ``test_p2p_transport.py``."""

from __future__ import annotations

import asyncio

import pytest


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
            shims = {"shim": {"latency_ms": 20}, "seat_shims": {seat[a.participant_id]: {"latency_ms": 50, "seed": 2}}}
            first.p2p.start({"connect_timeout_s": 3, **shims})
            second.p2p.start()
            d._server.registry.flush()
            starts = {pid: await p.next("p2p") for pid, p in players.items()}
            assert starts[a.participant_id]["ice_servers"][0]["username"] == a.participant_id
            assert starts["p3"]["ice_servers"] == [] and sorted(asked) == ["p0", "p1", "p2", "p3"]
            # each page gets its own shim: its seat's entry of seat_shims, else the shim of every page
            assert starts[a.participant_id]["options"] == {"connect_timeout_s": 3, "shim": {"latency_ms": 50, "seed": 2}}
            assert starts[b.participant_id]["options"] == {"connect_timeout_s": 3, "shim": {"latency_ms": 20}}
            assert starts[c.participant_id]["options"] == {}
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
            # back to direct: recorded once (both ends say so), and the pair is not relayed until declared again
            to_a = seat[a.participant_id]
            await a.send({"type": "p2p_direct", "to": to_b, "attempt": 0, "e": epochs})  # attempts count from 1: dropped
            await a.send({"type": "p2p_direct", "to": to_b, "attempt": 1, "e": epochs})
            await b.send({"type": "relay", "to": to_a, "channel": "control", "data": [{"k": "a", "s": 4}]})
            assert (await a.next("relay"))["data"] == [{"k": "a", "s": 4}]  # b has not said so yet: still relayed
            await b.send({"type": "p2p_direct", "to": to_a, "attempt": 1, "e": epochs[::-1]})
            await a.send({"type": "relay", "to": to_b, "channel": "control", "data": [{"k": "c", "s": 2, "d": "direct"}]})
            await a.send({"type": "p2p_relay", "to": to_b, "reason": "lost", "rtt_ms": None})
            assert (await b.next("p2p_relay"))["reason"] == "lost"
            await a.send({"type": "relay", "to": to_b, "channel": "control", "data": [{"k": "c", "s": 3, "d": 6}]})
            assert (await b.next("relay"))["data"] == [{"k": "c", "s": 3, "d": 6}]  # not the one sent while direct
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
        first, again = store.events("p2p_relay")
        assert first["data"]["reason"] == "timeout" and sorted(first["data"]["pair"]) == ["agent_0", "agent_1"]
        assert again["data"]["reason"] == "lost"
        (direct,) = store.events("p2p_direct")
        assert direct["data"]["pair"] == ["agent_0", "agent_1"] and direct["data"]["attempt"] == 1
        order = [e["kind"] for e in store.events() if e["kind"] in ("p2p_relay", "p2p_direct")]
        assert order == ["p2p_relay", "p2p_direct", "p2p_relay"]
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
    assert check_mesh_options({"retry_direct_s": None}) == {"retry_direct_s": None}  # never back to direct
    assert check_mesh_options({"max_rtt_ms": None, "shim": {"latency_ms": 50, "loss": 0.1}}) == {
        "max_rtt_ms": None,
        "shim": {"latency_ms": 50, "loss": 0.1},
    }
    seats = ["agent_0", "agent_1"]
    asymmetric = {"seat_shims": {"agent_0": {"latency_ms": 50}, "agent_1": {"latency_ms": 200, "jitter_ms": 5}}}
    assert check_mesh_options(asymmetric, seats) == asymmetric
    for bad, fault in (
        ({"connect_timeout_s": 0}, r"connect_timeout_s=0 is out of range"),
        ({"shim": {"latency": 5}}, r"shim: unknown setting 'latency'; settings: \['jitter_ms', 'latency_ms'"),
        ({"shim": {"loss": 1.0}}, r"shim: loss=1.0 is out of range"),
        ({"shim": {"latency_ms": -1}}, r"shim: latency_ms=-1 is out of range"),
        ({"shim": 100}, r"shim: expected a dict"),
        ({"rtt_violations": 1.5}, r"rtt_violations=1.5 is out of range"),
        ({"retry_direct_s": 0}, r"retry_direct_s=0 is out of range"),
        ({"colour": "red"}, r"colour='red' is unknown; options: \["),
        (
            {"seat_shims": {"agent_9": {"latency_ms": 50}}},
            r"seat_shims: 'agent_9' is not a seat of the match; seats: \['agent_0'",
        ),
        ({"seat_shims": {"agent_1": {"latency_ms": 50, "loss": 2}}}, r"seat_shims\['agent_1'\]: loss=2 is out of range"),
        ({"seat_shims": [{"latency_ms": 50}]}, r"seat_shims=\[.*is out of range"),
    ):
        with pytest.raises(ConfigError, match=fault):
            check_mesh_options(bad, seats)
