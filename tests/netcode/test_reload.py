"""A page that reloads mid-match in a 3-peer match gets the state, its seat's inputs agree everywhere, and
episode ends that a state transfer jumps over are still agreed."""

from __future__ import annotations

from mug.netcode.simnet import Link, SimNet, held_inputs, run_peers
from tests.netcode.helpers import PlainCoopGrid, assert_same_histories, coop_peers

IDS = ("p0", "p1", "p2")


def test_a_reloaded_page_gets_every_peers_inputs_again_also_from_a_peer_that_acked_more_of_the_old_page():
    # p0-p2 is slow: p2 acks more of the old p1's inputs than the designated p0 had when it sent the state
    links = {(a, b): Link(0.12 if {a, b} == {"p0", "p2"} else 0.01) for a in IDS for b in IDS if a != b}
    peers = coop_peers(3, ai=False, max_steps=45)
    fresh = coop_peers(3, ai=False, max_steps=45)[1]
    result = run_peers(peers, SimNet(links, seed=1), 6.0, held_inputs(6), rejoin={"p1": (2.0, fresh, None)})
    (resync,) = [e for e in result.events["p1"] if e["type"] == "resync"]
    assert fresh.confirmed > resync["frame"] + 90  # it did not stall after the state
    assert_same_histories(result.histories, minimum=150, reloaded=("p1",))


def test_after_a_reload_every_peer_confirms_the_same_inputs_for_the_reloaded_seat():
    # the old p1's last inputs reach p2 but not the designated p0; the new page plays other inputs
    links = {(a, b): Link(0.03, outage=(1.9, 2.0) if (a, b) == ("p1", "p0") else None) for a in IDS for b in IDS if a != b}
    peers = coop_peers(3, ai=False, max_steps=45)
    fresh = coop_peers(3, ai=False, max_steps=45)[1]

    def inputs(pid, seat, frame):
        return (frame * 7 + (3 if pid == "p1" else 0)) % 5

    result = run_peers(peers, SimNet(links, seed=0), 5.0, inputs, rejoin={"p1": (2.0, fresh, None)})
    histories = result.histories
    assert_same_histories({"p0": histories["p0"], "p1": histories["p1"]}, minimum=140, reloaded=("p1",))
    # p2 had confirmed an input of the old page that p0 never got: its chain differs, it is repaired, and
    # exactly the records it holds that differ are flagged by the resync event
    truth = {r.frame: r.to_dict() for r in histories["p0"]}
    differing = [r.frame for r in histories["p2"] if r.to_dict() != truth.get(r.frame, r.to_dict())]
    resyncs = [e for e in result.events["p2"] if e["type"] == "resync"]
    assert differing and set(differing) <= {f for e in resyncs for f in range(e["first_bad_frame"], e["frame"])}
    assert len(histories["p2"]) >= 140 and [r.frame for r in histories["p2"]] == list(range(len(histories["p2"])))
    assert all(p.unresolved_desyncs == 0 for p in (peers[0], fresh))
    assert result.stats["p0"]["bad_messages"] == result.stats["p2"]["bad_messages"] == 0


class _LongFirstEpisode(PlainCoopGrid):
    """The first episode lasts 15 steps longer on this peer (a nondeterministic env)."""

    def reset(self, seed=None, options=None):
        self._episodes = getattr(self, "_episodes", 0) + 1
        self.max_steps = 55 if self._episodes == 1 else 40
        return super().reset(seed, options)


def test_an_episode_end_jumped_over_by_a_state_transfer_is_still_agreed():
    peers = coop_peers(2, ai=False, max_steps=40, envs={"p1": _LongFirstEpisode})
    result = run_peers(peers, SimNet(default=Link(0.05, 0.01), seed=1), 6.0, held_inputs(3))
    (resync, *_) = [e for e in result.events["p1"] if e["type"] == "resync"]
    ends = [r.frame for r in result.histories["p0"] if r.result.ended]
    assert ends[0] < resync["frame"]  # the transfer jumped over p1's end of episode 0
    for pid in ("p0", "p1"):
        agreed = [(e["episode"], e["frame"]) for e in result.events[pid] if e["type"] == "episode_end"]
        assert agreed[:3] == [(0, ends[0]), (1, ends[1]), (2, ends[2])], (pid, agreed)


def test_after_a_reconnect_tore_the_mesh_down_both_pages_play_on_and_every_episode_end_is_agreed():
    # a socket reconnect: the page's mesh is closed and made anew, so control messages in flight (hashes, episode
    # ends) are lost both ways; the page keeps its game, and each side resends its reports on the new pair
    for start in (1.24, 1.27, 1.30, 1.40):  # the first three lose an episode report of each side
        outage = (start, start + 1.5)
        links = {(a, b): Link(0.05, outage=outage, torn=True) for a, b in (("p0", "p1"), ("p1", "p0"))}
        peers = coop_peers(2, ai=False, max_steps=40)
        told: set[str] = set()

        def on_tick(peer, now, told=told, end=outage[1]):
            if now >= end and peer.peer_id not in told:
                told.add(peer.peer_id)
                peer.reconnected(peer.remotes[0])

        result = run_peers(peers, SimNet(links, seed=2), 7.0, held_inputs(4), on_tick=on_tick)
        assert_same_histories(result.histories, minimum=150)
        ends = [r.frame for r in result.histories["p0"] if r.result.ended]
        assert len(ends) >= 4
        for pid in ("p0", "p1"):
            agreed = [(e["episode"], e["frame"]) for e in result.events[pid] if e["type"] == "episode_end"]
            assert agreed == list(enumerate(ends))[: len(agreed)] and len(agreed) >= len(ends) - 1, (start, pid, agreed)
        assert all(p.unresolved_desyncs == 0 and p.stats.resyncs == 0 for p in peers)


def test_a_reloaded_designated_page_confirms_again_with_its_old_inputs_the_frames_its_old_page_confirmed():
    # the old p0's last inputs never reach p1 (an outage just before the reload), though the old p0 confirmed
    # those frames (p1's inputs reached it) and the server stored them from it: the new page's state request
    # carries them (as the record holds them), so p1 confirms those frames as stored, not with its predictions
    links = {("p0", "p1"): Link(0.03, outage=(1.8, 2.0)), ("p1", "p0"): Link(0.03)}
    peers = coop_peers(2, ai=False, max_steps=45)
    fresh = coop_peers(2, ai=False, max_steps=45)[0]
    old, kept = peers[0], []
    take = old.take_records

    def tee() -> list:
        out = take()
        kept.extend(out)
        return out

    old.take_records = tee  # the old page's confirmed records, as the server stored them

    def inputs(pid, seat, frame):
        return (frame * 7 + (3 if pid == "p0" else 0)) % 5  # a new input every frame: a prediction misses

    result = run_peers(peers, SimNet(links, seed=0), 5.0, inputs, rejoin={"p0": (2.0, fresh, None)})
    truth = {r.frame: r.to_dict() for r in result.histories["p1"]}
    assert [e for e in result.events["p0"] if e["type"] == "resync"]  # the new page started from a state
    assert len(kept) > 50 and [r.to_dict() for r in kept] == [truth[r.frame] for r in kept]
    assert_same_histories(result.histories, minimum=140, reloaded=("p0",))
