import assert from "node:assert/strict";
import { test } from "node:test";
import { MAX_RETRY_BACKOFF } from "../src/p2p/pair.js";
import { FakeNetwork, FakeServer, ManualClock } from "./p2p-fakes.js";

// A relayed pair goes back to a direct connection when the network lets it again (js/src/p2p/pair.js).

const fast = { pingEveryMs: 10, connectTimeoutMs: 400, lostGraceMs: 30, retryDirectMs: 2000 };

function world(seats, options = {}) {
  const clock = new ManualClock();
  const network = new FakeNetwork(clock);
  const server = new FakeServer(seats, clock);
  const meshes = Object.fromEntries(seats.map((s) => [s, server.open(s, { RTC: network.RTC, ...fast, ...options })]));
  return { clock, network, server, meshes };
}

const closeAll = (meshes) => Object.values(meshes).forEach((m) => m.close());
const statesWith = (mesh, seat) => mesh.states.filter(([s]) => s === seat).map(([, state, reason]) => (reason ? `${state}:${reason}` : state));
const control = (mesh) => mesh.received.filter((r) => r.channel === "control").map((r) => r.message.i);
const offers = (server) => server.inbound.filter((m) => m.message.type === "signal" && m.message.data.sdp?.type === "offer");

test("a pair relayed because it did not connect goes direct again once the network lets it, recorded once", async () => {
  const w = world(["a", "b"]);
  w.network.connects = false; // a firewall at first
  await w.clock.until(() => w.meshes.a.state("b") === "relay" && w.meshes.b.state("a") === "relay", "relay");
  assert.deepEqual(w.server.events, [{ pair: ["a", "b"], reason: "timeout", by: "a" }]);
  w.network.connects = true; // the network lets WebRTC through now
  for (let i = 0; i < 10; i++) w.meshes.a.send("b", "control", { i }); // on the relay, as the pair is then
  await w.clock.until(() => w.meshes.a.state("b") === "open" && w.meshes.b.state("a") === "open", "direct again");
  for (let i = 10; i < 20; i++) w.meshes.a.send("b", "control", { i }); // directly
  await w.clock.until(() => control(w.meshes.b).length >= 20, "20 control messages");
  await w.clock.run(500); // duplicates, if any, would be in by now
  assert.deepEqual(control(w.meshes.b), Array.from({ length: 20 }, (_, i) => i)); // exactly once, in order, across
  assert.deepEqual(statesWith(w.meshes.a, "b"), ["connecting", "relay:timeout", "open"]);
  assert.deepEqual(statesWith(w.meshes.b, "a"), ["connecting", "relay:timeout", "open"]);
  assert.deepEqual(w.server.events.slice(1), [{ pair: ["a", "b"], direct: true, by: w.server.events[1].by, attempt: 1 }]);
  assert.equal(w.server.relayed.size, 0); // the hub no longer relays for the pair
  assert.equal(w.meshes.a.stats().b.returns, 1);
  w.meshes.b.send("a", "inputs", { back: true }); // inputs go directly now
  await w.clock.until(() => w.meshes.a.received.some((r) => r.message.back), "a direct input");
  assert.equal(w.meshes.a.rtt("b").path, "direct");
  const signals = w.server.inbound.filter((m) => m.message.type === "signal");
  assert.ok(signals.every((m) => Number.isInteger(m.message.data.t))); // each names its attempt
  closeAll(w.meshes);
});

test("a failed attempt is hung up and the next waits twice as long, up to the bound", async () => {
  const w = world(["a", "b"]);
  w.network.connects = false; // and it stays so
  await w.clock.until(() => w.meshes.a.state("b") === "relay", "relay");
  const start = w.clock.t;
  await w.clock.run(2000 * (1 + 2 + 4 + 8 + 8) + 400 * 5 + 100);
  // attempts at +2, +6.4, +14.8, +31.2 and +47.6 s (each hung up 0.4 s later): waits of 2, 4, 8, 16, 16 s
  assert.equal(offers(w.server).length - 1, 5); // the first connection's offer, then one per attempt
  assert.equal(w.meshes.a.pairs.get("b").retryBackoff, MAX_RETRY_BACKOFF);
  assert.ok(w.clock.t - start >= 2000 * 23);
  assert.equal(w.meshes.a.state("b"), "relay");
  assert.equal(w.meshes.a.pairs.get("b").pc, null); // the last attempt was hung up at its timeout
  const open = [...w.network.connections.values()].filter((c) => c.connectionState !== "closed");
  assert.ok(open.length <= 2, `${open.length} connections left open`); // at most the attempt in flight, both ends
  closeAll(w.meshes);
});

test("a pair relayed for its round trip or with no WebRTC stays relayed; retryDirectMs null never retries", async () => {
  const slow = world(["a", "b"]);
  await slow.clock.until(() => slow.meshes.a.state("b") === "open", "open");
  slow.meshes.a.pairs.get("b").toRelay("rtt", { rttMs: 400 });
  await slow.clock.run(3 * fast.retryDirectMs);
  assert.equal(slow.meshes.a.state("b"), "relay");
  assert.equal(offers(slow.server).length, 1);
  closeAll(slow.meshes);

  const none = world(["a", "b"], { retryDirectMs: null });
  none.network.connects = false;
  await none.clock.until(() => none.meshes.a.state("b") === "relay", "relay");
  none.network.connects = true;
  await none.clock.run(5 * fast.retryDirectMs);
  assert.equal(none.meshes.a.state("b"), "relay");
  assert.equal(offers(none.server).length, 1);
  closeAll(none.meshes);
});

test("a pair lost, relayed, back to direct and lost again goes to the relay again (announced anew)", async () => {
  const w = world(["a", "b"]);
  await w.clock.until(() => w.meshes.a.state("b") === "open" && w.meshes.b.state("a") === "open", "open");
  [...w.network.connections.values()].at(-1).fail();
  await w.clock.until(() => w.meshes.a.state("b") === "relay", "relay after the loss");
  await w.clock.until(() => w.meshes.a.state("b") === "open" && w.meshes.b.state("a") === "open", "direct again");
  [...w.network.connections.values()].at(-1).fail();
  await w.clock.until(() => w.meshes.a.state("b") === "relay" && w.meshes.b.state("a") === "relay", "relay again");
  const kinds = w.server.events.map((e) => (e.direct ? "direct" : `relay:${e.reason}`));
  assert.deepEqual(kinds, ["relay:lost", "direct", "relay:lost"]);
  for (let i = 0; i < 5; i++) w.meshes.a.send("b", "control", { i });
  await w.clock.until(() => control(w.meshes.b).length >= 5, "control on the relay");
  closeAll(w.meshes);
});

test("the mesh option retryDirectMs is checked", async () => {
  const { checkOptions } = await import("../src/p2p/mesh.js");
  assert.equal(checkOptions({}).retryDirectMs, 30_000);
  assert.equal(checkOptions({ retryDirectMs: null }).retryDirectMs, null);
  assert.throws(() => checkOptions({ retryDirectMs: 0 }), RangeError);
  const { meshOptions } = await import("../src/p2p/page.js");
  assert.deepEqual(meshOptions({ retry_direct_s: 2 }), { retryDirectMs: 2000 });
  assert.deepEqual(meshOptions({ retry_direct_s: null }), { retryDirectMs: null });
});
