"""Property tests: 2-4 peers on a simulated network agree on every confirmed frame and hold bounded memory.

Each example draws the peers, per-direction links (latency 0-250 ms, jitter, 0-20 % loss, duplication,
reordering), start offsets, the humans' inputs and maybe a page reload of one peer mid-match; a real recurrent
ONNX policy (the Overcooked LSTM, run by every peer's own ``PolicyRuntime``) plays one more seat on the confirmed
timeline. Examples are derandomized: the same ones run everywhere (CI included).
"""

from __future__ import annotations

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from mug.netcode.simnet import Link, SimNet, held_inputs, run_peers
from tests.netcode.helpers import PlainCoopGrid, assert_same_histories, coop_peers, lstm_drivers, plain

links = st.builds(
    Link,
    latency_s=st.floats(0.0, 0.25),
    jitter_s=st.floats(0.0, 0.075),
    loss=st.floats(0.0, 0.2),
    duplicate=st.floats(0.0, 0.2),
    reorder=st.floats(0.0, 0.3),
)

# no shrinking: each example is a whole match, and shrinking one takes minutes; the failing example is printed
SETTINGS = settings(
    max_examples=6,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)


def memory_bound(peer) -> dict[str, int]:
    """What a peer may hold at most: snapshots from the confirmed frame to now, inputs of the kept log plus the
    window and what peers ahead may already have sent."""
    frames = peer.max_prediction + 1
    ahead = peer.horizon + peer.max_prediction + 2  # frames a remote may hash beyond our confirmed one (after a reload)
    return {
        "snapshots": frames + 1,
        "frames": frames + 1,
        "inputs": peer.log_frames + frames + 2 * peer.horizon + 2,
        "hashes": peer.hash_keep + len(peer.remotes) * ahead,
        "chains": peer.log_frames + 2,
        "ai_blobs": len(peer.ai_seats) * (frames + 2),
        "episodes": 2 * (peer.horizon + 1),
        "stamped_at": peer.input_delay + 2,
    }


def check_memory(peer, now: float) -> None:
    held, bound = peer.memory(), memory_bound(peer)
    for key, limit in bound.items():
        assert held[key] <= limit, (peer.peer_id, now, key, held[key], limit)
    assert peer.frame - peer.confirmed - 1 <= peer.max_prediction


@SETTINGS
@given(
    n=st.integers(2, 4),
    data=st.data(),
    seed=st.integers(0, 2**16),
    delay=st.integers(0, 3),
)
def test_peers_agree_on_every_confirmed_frame(n, data, seed, delay):
    peers = coop_peers(n, input_delay=delay)
    ids = [p.peer_id for p in peers]
    net_links = {(a, b): data.draw(links, label=f"{a}->{b}") for a in ids for b in ids if a != b}
    starts = {pid: data.draw(st.floats(0.0, 0.2), label=f"start {pid}") for pid in ids}
    reload = data.draw(st.one_of(st.none(), st.tuples(st.sampled_from(ids), st.floats(0.8, 1.6))), label="reload")
    rejoin = {}
    if reload is not None:
        fresh = coop_peers(n, input_delay=delay)[ids.index(reload[0])]  # the reloaded page, from frame 0
        rejoin = {reload[0]: (reload[1], fresh, lstm_drivers([fresh])[reload[0]])}
    result = run_peers(
        peers,
        SimNet(net_links, seed=seed),
        3.5,
        held_inputs(seed),
        drivers=lstm_drivers(peers),
        start_s=starts,
        on_tick=check_memory,
        rejoin=rejoin,
    )
    reloaded = (reload[0],) if reload else ()
    assert_same_histories(result.histories, minimum=40, reloaded=reloaded)
    for pid in reloaded:  # the new page got the state and played on
        assert [e["type"] for e in result.events[pid]].count("resync") >= 1
        assert result.histories[pid][-1].frame > 60
    ids = [i for i in ids if i not in reloaded] + list(reloaded)
    history = result.histories[ids[0]]
    ai_seat = peers[0].ai_seats[0]
    acted = [r for r in history if r.result.kind == "step"]
    assert all(r.ai_digests[ai_seat] is not None and r.inputs[ai_seat] is not None for r in acted)
    assert len({r.ai_digests[ai_seat] for r in acted}) > len(acted) // 2  # the hidden state moves every step
    for pid in ids:
        assert result.stats[pid]["bad_messages"] == 0
        if pid in reloaded:
            continue
        assert result.stats[pid]["desyncs"] == 0
        # one inference per confirmed AI turn; the turn of the frame after the last confirmed one may be taken too
        turns = sum(1 for r in result.histories[pid] if r.inputs[ai_seat] is not None)
        assert turns <= result.ai_steps[pid] <= turns + 1


@SETTINGS
@given(n=st.integers(2, 4), seed=st.integers(0, 2**16), latency=st.floats(0.0, 0.15), who=st.integers(0, 3))
def test_memory_stays_bounded_while_one_peers_packets_stall(n, seed, latency, who):
    peers = coop_peers(n, ai=False)
    ids = [p.peer_id for p in peers]
    silent = ids[who % n]
    link = Link(latency, latency / 4, 0.05)
    stalled = Link(latency, latency / 4, 0.05, outage=(0.8, 2.3))
    net_links = {(a, b): stalled if a == silent else link for a in ids for b in ids if a != b}
    result = run_peers(peers, SimNet(net_links, seed=seed), 3.5, held_inputs(seed), on_tick=check_memory)
    assert all(result.stats[pid]["stalls"] > 0 for pid in ids if pid != silent)
    assert_same_histories(result.histories, minimum=50)  # of 105 frames, 45 in the outage


class _GlitchyCoopGrid(PlainCoopGrid):
    """Moves ``agent_0`` to another corner at step ``GLITCH`` of its first episode: one peer's env is not
    deterministic."""

    GLITCH = 5

    def reset(self, seed=None, options=None):
        self._glitch = not hasattr(self, "_glitch")
        return super().reset(seed, options)

    def step(self, actions):
        if self._glitch and self.steps == self.GLITCH:
            corner = (0, 0) if self.positions["agent_0"] != (0, 0) else (self.size - 1, self.size - 1)
            self.positions["agent_0"] = corner
        return super().step(actions)


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow], phases=SETTINGS.phases)
@given(n=st.integers(2, 4), seed=st.integers(0, 2**16), link=links)
def test_a_forced_divergence_is_detected_and_repaired(n, seed, link):
    peers = coop_peers(n, ai=False, max_steps=40, envs={f"p{n - 1}": _GlitchyCoopGrid})
    last = peers[-1]
    result = run_peers(peers, SimNet(default=link, seed=seed), 5.0, held_inputs(seed), on_tick=check_memory)
    (event, *_) = [e for e in result.events["p0"] if e["type"] == "desync"]
    assert (
        event["peer"] == last.peer_id
        and event["frame"] >= _GlitchyCoopGrid.GLITCH
        and event["local_hash"] != event["remote_hash"]
    )
    resyncs = [e for e in result.events[last.peer_id] if e["type"] == "resync"]
    assert resyncs and all(p.unresolved_desyncs == 0 for p in peers)
    truth = {r.frame: r.to_dict() for r in result.histories["p0"]}
    kept = result.histories[last.peer_id]
    differing = [r.frame for r in kept if r.frame in truth and r.to_dict() != truth[r.frame]]
    # every record that differs from p0's is flagged by a resync (from first_bad_frame up to its frame); with
    # hash_interval 1 the first flagged frame is the first differing one
    flagged = {f for e in resyncs for f in range(e["first_bad_frame"], e["frame"])}
    assert differing and set(differing) <= flagged
    assert resyncs[0]["first_bad_frame"] == differing[0] >= _GlitchyCoopGrid.GLITCH
    repaired = resyncs[-1]["frame"]
    histories = {pid: h[repaired:] for pid, h in result.histories.items()}
    assert_same_histories({pid: h for pid, h in result.histories.items() if pid != last.peer_id}, minimum=repaired + 40)
    common = min(len(h) for h in histories.values())
    assert common > 20
    assert plain(histories[last.peer_id][:common]) == plain(histories["p0"][:common])
