import assert from "node:assert/strict";
import { test } from "node:test";
import { MAX_PART, ReliableIn, ReliableOut } from "../src/p2p/reliable.js";
import { LocalHub } from "../src/p2p/local.js";
import { MatchPeers, meshOptions } from "../src/p2p/page.js";
import { FakeNetwork, FakeServer, until } from "./p2p-fakes.js";

const fast = { pingEveryMs: 10, connectTimeoutMs: 400, lostGraceMs: 30 };

function openAll(server, network, options = {}) {
  return Object.fromEntries(server.seats.map((s) => [s, server.open(s, { RTC: network.RTC, ...fast, ...options })]));
}

const closeAll = (meshes) => Object.values(meshes).forEach((m) => m.close());

/** Every page sends one message on each channel to each peer; each must get exactly those. */
async function exchange(meshes, tag) {
  const seats = Object.keys(meshes);
  for (const a of seats) for (const b of seats) if (a !== b) for (const ch of ["inputs", "control"]) meshes[a].send(b, ch, { tag, from: a, ch });
  const want = (seat) => (seats.length - 1) * 2;
  const got = (seat) => meshes[seat].received.filter((r) => r.message.tag === tag);
  await until(() => seats.every((s) => got(s).length >= want(s)), `${tag} messages`);
  for (const seat of seats) {
    const pairs = got(seat).map((r) => `${r.from}:${r.channel}:${r.message.from}:${r.message.ch}`).sort();
    const expected = seats.filter((s) => s !== seat).flatMap((s) => [`${s}:control:${s}:control`, `${s}:inputs:${s}:inputs`]).sort();
    assert.deepEqual(pairs, expected);
  }
}

test("two pages connect directly: both channels carry messages both ways, round trips are measured", async () => {
  const network = new FakeNetwork();
  const server = new FakeServer(["agent_0", "agent_1"]);
  const meshes = openAll(server, network);
  await until(() => meshes.agent_0.state("agent_1") === "open" && meshes.agent_1.state("agent_0") === "open", "open pairs");
  await exchange(meshes, "hello");
  await until(() => meshes.agent_0.rtt("agent_1").samples >= 3 && meshes.agent_1.rtt("agent_0").samples >= 3, "round trips");
  assert.equal(meshes.agent_0.rtt("agent_1").path, "direct");
  assert.ok(meshes.agent_0.rtt("agent_1").median_ms >= 0);
  assert.deepEqual(server.events, []);
  const inputs = [...network.connections.values()][0].channels.inputs.options;
  assert.deepEqual(inputs, { negotiated: true, id: 0, ordered: false, maxRetransmits: 0 });
  closeAll(meshes);
});

test("three pages make a full mesh; the lower seat of each pair offers", async () => {
  const network = new FakeNetwork();
  const seats = ["agent_0", "agent_1", "agent_2"];
  const server = new FakeServer(seats);
  const meshes = openAll(server, network);
  await until(() => seats.every((a) => seats.every((b) => a === b || meshes[a].state(b) === "open")), "three open pairs");
  await exchange(meshes, "all");
  const offers = server.inbound.filter((m) => m.message.type === "signal" && m.message.data.sdp?.type === "offer");
  assert.deepEqual(offers.map((m) => `${m.from}>${m.message.to}`).sort(), ["agent_0>agent_1", "agent_0>agent_2", "agent_1>agent_2"]);
  closeAll(meshes);
});

test("without RTCPeerConnection every pair is relayed through the server, declared once, same API", async () => {
  const server = new FakeServer(["a", "b", "c"]);
  const meshes = Object.fromEntries(["a", "b", "c"].map((s) => [s, server.open(s, { RTC: undefined, ...fast })]));
  await until(() => server.events.length === 3 && Object.values(meshes).every((m) => m.peers.every((p) => m.state(p) === "relay")), "relay");
  assert.deepEqual(server.events.map((e) => e.pair.join("-")).sort(), ["a-b", "a-c", "b-c"]);
  assert.ok(server.events.every((e) => e.reason === "unavailable"));
  await exchange(meshes, "relayed");
  await until(() => meshes.a.rtt("b").samples >= 2, "relayed round trips");
  assert.equal(meshes.a.rtt("b").path, "relay");
  const relays = server.inbound.filter((m) => m.message.type === "relay");
  assert.ok(relays.every((m) => Array.isArray(m.message.data) && ["inputs", "control"].includes(m.message.channel)));
  closeAll(meshes);
});

test("a pair that does not connect within the timeout goes to the relay (reason timeout)", async () => {
  const network = new FakeNetwork();
  network.connects = false;
  const server = new FakeServer(["a", "b"]);
  const meshes = openAll(server, network);
  await until(() => meshes.a.state("b") === "connecting", "a pair");
  assert.equal(meshes.a.send("b", "control", { early: 1 }), true); // sent while connecting: delivered once relayed
  await until(() => meshes.a.state("b") === "relay" && meshes.b.state("a") === "relay", "relay after the timeout");
  assert.equal(server.events.length, 1);
  assert.equal(server.events[0].reason, "timeout");
  await until(() => meshes.b.received.some((r) => r.message.early === 1), "the early control message");
  closeAll(meshes);
});

test("control stays exactly once and in order when an open pair is lost mid-stream and moves to the relay", async () => {
  const network = new FakeNetwork();
  const server = new FakeServer(["a", "b"]);
  const meshes = openAll(server, network);
  await until(() => meshes.a.state("b") === "open" && meshes.b.state("a") === "open", "open pair");
  for (let i = 0; i < 20; i++) meshes.a.send("b", "control", { i });
  let dropping = false;
  network.drop = () => dropping;
  dropping = true; // the next ones vanish on the wire, then the connection fails
  for (let i = 20; i < 40; i++) meshes.a.send("b", "control", { i });
  [...network.connections.values()][0].fail();
  for (let i = 40; i < 60; i++) meshes.a.send("b", "control", { i });
  await until(() => meshes.b.received.filter((r) => r.channel === "control").length >= 60, "60 control messages");
  await new Promise((r) => setTimeout(r, 50)); // duplicates, if any, would have arrived by now
  const got = meshes.b.received.filter((r) => r.channel === "control").map((r) => r.message.i);
  assert.deepEqual(got, Array.from({ length: 60 }, (_, i) => i));
  assert.equal(meshes.a.state("b"), "relay");
  assert.equal(server.events[0].reason, "lost");
  closeAll(meshes);
});

test("a reloaded page is connected anew; signals of its old page are dropped", async () => {
  const network = new FakeNetwork();
  const server = new FakeServer(["a", "b"]);
  const meshes = openAll(server, network);
  await until(() => meshes.a.state("b") === "open", "first pair");
  const first = meshes.a.pairs.get("b");
  meshes.b = server.open("b", { RTC: network.RTC, ...fast });
  await until(() => meshes.a.pairs.get("b") !== first && meshes.a.state("b") === "open" && meshes.b.state("a") === "open", "second pair");
  assert.equal(first.state, "closed");
  meshes.a.receive({ type: "signal", from: "b", data: { e: [first.epochs[1], first.epochs[0]], candidate: { candidate: "old" } } });
  await exchange(meshes, "after reload");
  server.leave("b");
  await until(() => meshes.a.state("b") === "absent", "peer gone");
  assert.equal(meshes.a.send("b", "inputs", {}), false);
  closeAll(meshes);
});

test("a direct round trip above max_rtt_ms moves the pair to the relay when the relay is estimated faster", async () => {
  const network = new FakeNetwork();
  const server = new FakeServer(["a", "b"], { serverRtt: { a: 1, b: 1 } });
  const slow = { maxRttMs: 20, rttViolations: 3, shim: { latencyMs: 30 } };
  const meshes = openAll(server, network, slow);
  await until(() => server.events.length === 1, "an rtt relay", 10_000);
  assert.equal(server.events[0].reason, "rtt");
  await until(() => meshes.a.state("b") === "relay" && meshes.b.state("a") === "relay", "both relayed");
  closeAll(meshes);

  const far = new FakeServer(["a", "b"], { serverRtt: { a: 500, b: 500 } }); // the relay would be slower still
  const stay = Object.fromEntries(["a", "b"].map((s) => [s, far.open(s, { RTC: network.RTC, ...fast, ...slow })]));
  await until(() => stay.a.rtt("b")?.samples >= 8, "round trips");
  assert.equal(stay.a.state("b"), "open");
  assert.deepEqual(far.events, []);
  closeAll(stay);
});

test("reliable halves: in order, exactly once, cumulative acks; long messages in parts", () => {
  const out = new ReliableOut();
  const envelopes = [1, 2, 3, 4].flatMap((d) => out.wrap(d));
  const inbound = new ReliableIn();
  assert.deepEqual(inbound.accept(envelopes[1]), []);
  assert.deepEqual(inbound.accept(envelopes[0]), [1, 2]);
  assert.deepEqual(inbound.accept(envelopes[0]), []);
  assert.deepEqual(inbound.accept(envelopes[3]), []);
  assert.deepEqual(inbound.accept(envelopes[2]), [3, 4]);
  out.ack(inbound.delivered - 1);
  assert.deepEqual(out.unacked.map((e) => e.d), [4]);
  const long = { state: "x".repeat(3 * MAX_PART), n: 5 };
  const parts = out.wrap(long);
  assert.equal(parts.length, 4);
  assert.ok(parts.every((p) => JSON.stringify(p).length < MAX_PART + 100));
  assert.deepEqual(inbound.accept(parts[2]), []);
  assert.deepEqual(inbound.accept(parts[0]), []);
  assert.deepEqual(inbound.accept(parts[3]), []);
  assert.deepEqual(inbound.accept(parts[1]), [long]);
});

test("a control message of any size arrives whole over a direct pair and over the relay; inputs are bounded", async () => {
  const network = new FakeNetwork();
  const server = new FakeServer(["a", "b"]);
  const meshes = openAll(server, network);
  await until(() => meshes.a.state("b") === "open" && meshes.b.state("a") === "open", "open pair");
  const big = { blob: "y".repeat(5 * MAX_PART + 7) };
  meshes.a.send("b", "control", big);
  await until(() => meshes.b.received.length === 1, "the big message");
  assert.deepEqual(meshes.b.received[0].message, big);
  const texts = [...network.connections.values()].flatMap((pc) => Object.values(pc.channels).flatMap((c) => c.sent));
  assert.ok(texts.every((t) => t.length < MAX_PART + 100));
  assert.throws(() => meshes.a.send("b", "inputs", big), RangeError);
  meshes.b.pairs.get("a").toRelay("failed");
  await until(() => meshes.a.state("b") === "relay", "relay");
  meshes.b.send("a", "control", big);
  await until(() => meshes.a.received.length === 1, "the big message, relayed");
  assert.deepEqual(meshes.a.received[0].message, big);
  closeAll(meshes);
});

test("the page starts a mesh on p2p, joins, and maps the wire options", () => {
  const sent = [];
  let started = null;
  const peers = new MatchPeers({ send: (m) => sent.push(m), onMesh: (mesh) => (started = mesh), RTC: undefined });
  peers.receive({ type: "p2p", seat: "b", seats: ["a", "b"], ice_servers: [{ urls: ["stun:x"] }], options: { connect_timeout_s: 2, shim: { latency_ms: 50 } } });
  assert.deepEqual(sent, [{ type: "p2p_join" }]);
  assert.equal(started.seat, "b");
  assert.equal(started.config.connectTimeoutMs, 2000);
  assert.deepEqual(started.config.iceServers, [{ urls: ["stun:x"] }]);
  assert.deepEqual(meshOptions({ max_rtt_ms: null, ping_every_s: 0.25 }), { maxRttMs: null, pingEveryMs: 250 });
  peers.close();
  assert.equal(started.closed, true);
});

test("a LocalHub meshes seats of one page without WebRTC: relayed in the page, with the shim's latency and loss", async () => {
  const hub = new LocalHub(["left", "right"]);
  const shim = { latencyMs: 15, jitterMs: 5, loss: 0.3, seed: 4 };
  const got = { left: [], right: [] };
  const meshes = {};
  for (const seat of ["left", "right"]) {
    meshes[seat] = hub.open(seat, { RTC: undefined, shim, pingEveryMs: 20 });
    meshes[seat].onmessage = (from, channel, message) => got[seat].push({ channel, message });
  }
  await until(() => meshes.left.state("right") === "relay" && meshes.right.state("left") === "relay", "relayed pairs");
  assert.equal(hub.events.length, 1); // one declaration for the pair, whichever side made it first
  for (let i = 0; i < 100; i++) meshes.left.send("right", "inputs", { i });
  for (let i = 0; i < 50; i++) meshes.left.send("right", "control", { i });
  await until(() => got.right.filter((g) => g.channel === "control").length === 50, "all control messages");
  await new Promise((r) => setTimeout(r, 60)); // the last inputs, if not lost, are in by now
  assert.deepEqual(got.right.filter((g) => g.channel === "control").map((g) => g.message.i), Array.from({ length: 50 }, (_, i) => i));
  const inputs = got.right.filter((g) => g.channel === "inputs").length;
  assert.ok(inputs >= 40 && inputs <= 95, `${inputs} of 100 inputs at 30 % loss`);
  await until(() => meshes.right.rtt("left").samples >= 3, "round trips");
  assert.ok(meshes.right.rtt("left").median_ms >= 20); // the shim's delay, both ways (at least 10 + 10)
  Object.values(meshes).forEach((m) => m.close());
});
