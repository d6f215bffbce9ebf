"""Corrections after a rollback are bounded: each episode's statistics carry the histogram of correction sizes
(frames re-simulated back to the present) and its maximum, which never exceeds ``max_prediction`` — also over a
slow, jittery, lossy network and across a state transfer."""

from __future__ import annotations

from mug.netcode.simnet import Link, SimNet, held_inputs, run_peers
from tests.netcode.helpers import coop_peers
from tests.netcode.test_reload import _LongFirstEpisode


def _episode_stats(result) -> list[dict]:
    return [e["stats"] for events in result.events.values() for e in events if e["type"] == "episode_end" and e["stats"]]


def test_every_episodes_largest_correction_is_recorded_and_within_max_prediction():
    link = Link(0.125, jitter_s=0.075, loss=0.15, reorder=0.1)
    for max_prediction in (4, 8):
        peers = coop_peers(3, ai=False, max_steps=40, max_prediction=max_prediction)
        result = run_peers(peers, SimNet(default=link, seed=3), 8.0, held_inputs(5, hold=2))
        stats = _episode_stats(result)
        assert len(stats) >= 6
        for s in stats:
            assert s["depth_max"] == max(s["depths"], default=0) <= max_prediction
            assert sum(s["depths"].values()) == s["rollbacks"]
        assert max(s["depth_max"] for s in stats) >= 3  # the network made peers correct several frames at once


def test_a_state_transfer_is_a_resync_not_a_correction_beyond_the_bound():
    peers = coop_peers(2, ai=False, max_steps=40, max_prediction=4, envs={"p1": _LongFirstEpisode})
    result = run_peers(peers, SimNet(default=Link(0.1, 0.02), seed=1), 6.0, held_inputs(3))
    assert result.stats["p1"]["resyncs"] >= 1
    assert max(result.stats["p1"]["depths"], default=0) <= 4
    assert all(s["depth_max"] <= 4 for s in _episode_stats(result))
