"""A forced divergence is detected by the hash exchange and repaired by a state transfer from the designated peer."""

from __future__ import annotations

import mug
from mug.examples.browser_grid import PyCoinGrid
from mug.inference.runtime import PolicyRuntime
from mug.netcode import EnvSimulation, RollbackPeer
from mug.netcode.ai import PolicyDriver
from mug.netcode.simnet import Link, SimNet, held_inputs, run_peers
from tests.conftest import LSTM
from tests.netcode.helpers import SEED, coop_peers, lstm_drivers, lstm_observation, plain

GLITCH_STEP = 12


class GlitchyCoinGrid(PyCoinGrid):
    """``PyCoinGrid`` that, in its first episode only, loses a coin at step ``GLITCH_STEP``: a nondeterministic env."""

    first_seed: int | None = None

    def reset(self, seed=None, options=None):
        if GlitchyCoinGrid.first_seed is None:
            GlitchyCoinGrid.first_seed = seed
        self._glitch = seed == GlitchyCoinGrid.first_seed
        return super().reset(seed, options)

    def step(self, actions):
        if self._glitch and self.steps == GLITCH_STEP and len(self.coins) > 1:
            self.coins.pop()
        return super().step(actions)


def test_an_env_divergence_is_detected_and_repaired_by_state_transfer():
    owners = {"agent_0": "p0", "agent_1": "p1"}
    healthy = RollbackPeer(EnvSimulation(lambda: PyCoinGrid(max_steps=40), SEED), "p0", owners)
    glitchy = RollbackPeer(EnvSimulation(lambda: GlitchyCoinGrid(max_steps=40), SEED), "p1", owners)
    net = SimNet(default=Link(0.06, 0.02, 0.1, 0.05, 0.1), seed=3)
    result = run_peers([healthy, glitchy], net, 5.0, held_inputs(2))

    detected = [e for e in result.events["p0"] if e["type"] == "desync"]
    assert len(detected) == 1
    event = detected[0]
    assert event["peer"] == "p1" and event["frame"] >= GLITCH_STEP and event["local_hash"] != event["remote_hash"]
    seen_by_p1 = [e for e in result.events["p1"] if e["type"] == "desync"]
    assert seen_by_p1 and seen_by_p1[0]["local_hash"] == event["remote_hash"]
    (resync,) = [e for e in result.events["p1"] if e["type"] == "resync"]
    assert resync["from"] == "p0" and resync["frame"] > event["frame"] - 1
    assert healthy.unresolved_desyncs == 0 and glitchy.unresolved_desyncs == 0
    assert [e["type"] for e in result.events["p0"]].count("desync_resolved") == 1

    h0, h1 = result.histories["p0"], result.histories["p1"]
    common = min(len(h0), len(h1))
    assert common > resync["frame"] + 60
    assert plain(h0[:GLITCH_STEP]) == plain(h1[:GLITCH_STEP])  # before the glitch: the same game
    assert plain(h0[GLITCH_STEP : event["frame"] + 1]) != plain(h1[GLITCH_STEP : event["frame"] + 1])  # diverged
    assert plain(h0[resync["frame"] : common]) == plain(h1[resync["frame"] : common])  # repaired: the same again


def test_a_diverged_ai_runtime_is_detected_and_resynced_with_the_designated_peers_hidden_state():
    peers = coop_peers(2, max_steps=60)
    drivers = lstm_drivers(peers)
    config = mug.ModelConfig.from_onnx(LSTM)
    # p1's runtime samples from another stream: its AI actions (and hidden states) part from p0's
    drivers["p1"] = PolicyDriver(PolicyRuntime(config, seed=6), observe=lstm_observation, act=lambda a: int(a) % 5)
    result = run_peers(peers, SimNet(default=Link(0.04, 0.01, 0.05), seed=1), 4.0, held_inputs(4), drivers=drivers)

    (event, *_) = [e for e in result.events["p0"] if e["type"] == "desync"]
    assert event["peer"] == "p1"
    resyncs = [e for e in result.events["p1"] if e["type"] == "resync"]
    assert resyncs
    last = resyncs[-1]["frame"]
    h0, h1 = result.histories["p0"], result.histories["p1"]
    common = min(len(h0), len(h1))
    assert common > last + 40
    assert plain(h0[last:common]) == plain(h1[last:common])
    assert all(p.unresolved_desyncs == 0 for p in peers)


def test_a_peer_that_restarts_mid_match_gets_the_confirmed_state_and_plays_on():
    peers = coop_peers(3, max_steps=45)
    links = {
        (a, b): Link(0.05, 0.01, 0.05, outage=(1.0, 2.0) if "p1" in (a, b) else None)
        for a in ("p0", "p1", "p2")
        for b in ("p0", "p1", "p2")
        if a != b
    }
    fresh = coop_peers(3, max_steps=45)[1]  # the reloaded page: a new peer, a new runtime, from frame 0
    result = run_peers(
        peers,
        SimNet(links, seed=5),
        5.0,
        held_inputs(6),
        drivers=lstm_drivers(peers),
        rejoin={"p1": (2.0, fresh, lstm_drivers([fresh])["p1"])},
    )
    (resync,) = [e for e in result.events["p1"] if e["type"] == "resync"]
    assert resync["from"] == "p0" and resync["local_hash"] is None and resync["frame"] > 20
    assert all(result.stats[pid]["stalls"] > 0 for pid in ("p0", "p2"))  # they waited for p1
    histories = result.histories
    common = min(len(h) for h in histories.values())
    assert common > resync["frame"] + 60
    assert plain(histories["p0"][:common]) == plain(histories["p2"][:common])
    # the new page's records from the state's frame on (its old page may not have confirmed every frame before it)
    new = [r for r in histories["p1"] if resync["frame"] <= r.frame < common]
    assert [r.frame for r in new] == list(range(resync["frame"], common))
    assert plain(new) == plain(histories["p0"][resync["frame"] : common])
    assert fresh.unresolved_desyncs == 0 and all(p.unresolved_desyncs == 0 for p in peers)
    assert fresh.stats.frames > 60
