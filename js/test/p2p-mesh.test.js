import assert from "node:assert/strict";
import { test } from "node:test";
import { MAX_RELAY_BATCH, Mesh, checkOptions } from "../src/p2p/mesh.js";
import { MAX_RESEND_MS, MIN_RESEND_MS } from "../src/p2p/pair.js";
import { MAX_HELD, MAX_PART, MAX_UNACKED, ReliableIn, ReliableOut } from "../src/p2p/reliable.js";
import { LocalHub } from "../src/p2p/local.js";
import { MatchPeers, meshOptions } from "../src/p2p/page.js";
import { FakeNetwork, FakeServer, ManualClock } from "./p2p-fakes.js";

const fast = { pingEveryMs: 10, connectTimeoutMs: 400, lostGraceMs: 30 };

/** A clock, a network on it and a server on it for `seats`. */
function world(seats, serverOptions) {
  const clock = new ManualClock();
  return { clock, network: new FakeNetwork(clock), server: new FakeServer(seats, clock, serverOptions) };
}

function openAll({ server, network }, options = {}) {
  return Object.fromEntries(server.seats.map((s) => [s, server.open(s, { RTC: network.RTC, ...fast, ...options })]));
}

const closeAll = (meshes) => Object.values(meshes).forEach((m) => m.close());
const everyPair = (meshes, state) => Object.values(meshes).every((m) => m.peers.every((p) => m.state(p) === state));
const relayMessages = (server, from) => server.inbound.filter((m) => m.message.type === "relay" && (!from || m.from === from));
const statesWith = (mesh, seat) => mesh.states.filter(([s]) => s === seat).map(([, state, reason]) => (reason ? `${state}:${reason}` : state));

/** Every page sends one message on each channel to each peer; each must get exactly those. */
async function exchange(clock, meshes, tag) {
  const seats = Object.keys(meshes);
  for (const a of seats) for (const b of seats) if (a !== b) for (const ch of ["inputs", "control"]) meshes[a].send(b, ch, { tag, from: a, ch });
  const got = (seat) => meshes[seat].received.filter((r) => r.message.tag === tag);
  await clock.until(() => seats.every((s) => got(s).length >= (seats.length - 1) * 2), `${tag} messages`);
  await clock.run(100); // duplicates, if any, would be in by now
  for (const seat of seats) {
    const pairs = got(seat).map((r) => `${r.from}:${r.channel}:${r.message.from}:${r.message.ch}`).sort();
    const expected = seats.filter((s) => s !== seat).flatMap((s) => [`${s}:control:${s}:control`, `${s}:inputs:${s}:inputs`]).sort();
    assert.deepEqual(pairs, expected);
  }
}

test("two pages connect directly: both channels carry messages both ways, round trips are measured", async () => {
  const w = world(["agent_0", "agent_1"]);
  const meshes = openAll(w);
  await w.clock.until(() => everyPair(meshes, "open"), "open pairs");
  await exchange(w.clock, meshes, "hello");
  await w.clock.run(50);
  assert.equal(meshes.agent_0.rtt("agent_1").path, "direct");
  assert.ok(meshes.agent_0.rtt("agent_1").samples >= 3 && meshes.agent_0.rtt("agent_1").median_ms >= 0);
  assert.deepEqual(w.server.events, []);
  assert.deepEqual(statesWith(meshes.agent_0, "agent_1"), ["connecting", "open"]);
  const inputs = [...w.network.connections.values()][0].channels.inputs.options;
  assert.deepEqual(inputs, { negotiated: true, id: 0, ordered: false, maxRetransmits: 0 });
  assert.deepEqual(meshes.agent_0.stats().agent_1.unacked, 0);
  closeAll(meshes);
});

test("three pages make a full mesh; the lower seat of each pair offers", async () => {
  const seats = ["agent_0", "agent_1", "agent_2"];
  const w = world(seats);
  const meshes = openAll(w);
  await w.clock.until(() => everyPair(meshes, "open"), "three open pairs");
  await exchange(w.clock, meshes, "all");
  const offers = w.server.inbound.filter((m) => m.message.type === "signal" && m.message.data.sdp?.type === "offer");
  assert.deepEqual(offers.map((m) => `${m.from}>${m.message.to}`).sort(), ["agent_0>agent_1", "agent_0>agent_2", "agent_1>agent_2"]);
  closeAll(meshes);
});

test("RTC: null means no WebRTC even where the page has an RTCPeerConnection: every pair relayed, declared once", async () => {
  const w = world(["a", "b", "c"]);
  const made = [];
  globalThis.RTCPeerConnection = class {
    constructor() {
      made.push(this);
      throw new Error("this browser's WebRTC must not be used"); // the pair then goes to the relay
    }
  };
  try {
    const meshes = Object.fromEntries(["a", "b", "c"].map((s) => [s, w.server.open(s, { RTC: null, ...fast })]));
    await w.clock.until(() => w.server.events.length === 3 && everyPair(meshes, "relay"), "relay");
    assert.equal(made.length, 0);
    assert.deepEqual(w.server.events.map((e) => e.pair.join("-")).sort(), ["a-b", "a-c", "b-c"]);
    assert.ok(w.server.events.every((e) => e.reason === "unavailable"));
    await exchange(w.clock, meshes, "relayed");
    assert.equal(meshes.a.rtt("b").path, "relay");
    assert.ok(meshes.a.rtt("b").samples >= 2);
    // left out, the option is the page's RTCPeerConnection
    assert.equal(new Mesh({ seat: "a", seats: ["a", "b"], sendToServer: () => {} }).RTC, globalThis.RTCPeerConnection);
    closeAll(meshes);
  } finally {
    delete globalThis.RTCPeerConnection;
  }
  assert.equal(new Mesh({ seat: "a", seats: ["a", "b"], sendToServer: () => {} }).RTC, null);
});

test("a page relays every peer and channel of one task in one relay message, in batches of at most MAX_RELAY_BATCH bytes", async () => {
  const w = world(["a", "b", "c"]);
  const meshes = Object.fromEntries(["a", "b", "c"].map((s) => [s, w.server.open(s, { RTC: null, ...fast, pingEveryMs: 60_000 })]));
  await w.clock.until(() => everyPair(meshes, "relay"), "relay");
  await w.clock.run(100);
  const before = relayMessages(w.server, "a").length;
  for (const ch of ["inputs", "control"]) meshes.a.broadcast(ch, { ch });
  await w.clock.settle();
  const sent = relayMessages(w.server, "a").slice(before);
  assert.equal(sent.length, 1);
  const batches = sent[0].message.batches;
  assert.deepEqual(batches.map((b) => `${b.to}:${b.channel}`).sort(), ["b:control", "b:inputs", "c:control", "c:inputs"]);
  assert.ok(batches.every((b) => b.e[0] === meshes.a.pairs.get(b.to).epochs[0] && b.e[1] === meshes.a.pairs.get(b.to).epochs[1]));
  await w.clock.until(() => meshes.b.received.length === 2 && meshes.c.received.length === 2, "the broadcasts");

  const wide = "é".repeat(MAX_PART / 2); // 2 bytes each in UTF-8: counted in bytes, not characters
  const from = relayMessages(w.server, "a").length;
  for (let i = 0; i < 8; i++) meshes.a.send("b", "inputs", { wide, i });
  await w.clock.settle();
  const chunks = relayMessages(w.server, "a").slice(from);
  const size = (m) => new TextEncoder().encode(JSON.stringify(m.message.batches.flatMap((b) => b.data))).length;
  assert.equal(chunks.length, 3);
  assert.ok(chunks.every((m) => size(m) <= MAX_RELAY_BATCH + 100));
  await w.clock.until(() => meshes.b.received.filter((r) => r.message.wide).length === 8, "the wide inputs");
  closeAll(meshes);
});

test("a relayed control message the server drops goes again on a timer, backing off, until it is acknowledged", async () => {
  const w = world(["a", "b"], { serverRtt: { a: 40, b: 40 } });
  const meshes = Object.fromEntries(["a", "b"].map((s) => [s, w.server.open(s, { RTC: null, ...fast, pingEveryMs: 60_000 })]));
  await w.clock.until(() => everyPair(meshes, "relay"), "relay");
  const carriesControl = (m) => m.type === "relay" && m.batches.some((b) => b.channel === "control" && b.data.some((e) => e.k === "c"));
  let dropping = true;
  w.server.drop = (from, m) => dropping && from === "a" && carriesControl(m);
  meshes.a.send("b", "control", { n: 1 });
  meshes.a.send("b", "control", { n: 2 });
  const attempts = () => w.server.inbound.filter((m) => m.from === "a" && carriesControl(m.message)).map((m) => m.at);
  w.server.tap = (from, message) => w.server.inbound.push({ from, message, at: w.clock.now() });
  await w.clock.run(0);
  const start = w.clock.now();
  await w.clock.until(() => attempts().length === 5, "five attempts");
  const gaps = attempts().map((t, i, all) => (i ? t - all[i - 1] : t - start)).slice(1);
  const first = Math.max(MIN_RESEND_MS, 2 * 80); // twice the relay's estimate (no round trip measured yet)
  assert.deepEqual(gaps, [first, 2 * first, 4 * first, 8 * first].map((g) => Math.min(g, MAX_RESEND_MS)));
  assert.equal(meshes.b.received.length, 0);
  assert.equal(meshes.a.stats().b.unacked, 2);
  dropping = false;
  await w.clock.until(() => meshes.b.received.length === 2, "the control messages");
  assert.deepEqual(meshes.b.received.map((r) => r.message.n), [1, 2]);
  await w.clock.until(() => meshes.a.stats().b.unacked === 0, "the ack");
  const resends = meshes.a.stats().b.resends;
  await w.clock.run(60_000);
  assert.equal(meshes.a.stats().b.resends, resends); // nothing goes again once acknowledged
  assert.equal(meshes.b.received.length, 2);
  closeAll(meshes);
});

test("a pair that does not connect within the timeout goes to the relay (reason timeout)", async () => {
  const w = world(["a", "b"]);
  w.network.connects = false;
  const meshes = openAll(w);
  await w.clock.until(() => meshes.a.state("b") === "connecting", "a pair");
  assert.equal(meshes.a.send("b", "control", { early: 1 }), true); // sent while connecting: delivered once relayed
  await w.clock.until(() => everyPair(meshes, "relay"), "relay after the timeout");
  assert.equal(w.server.events.length, 1);
  assert.equal(w.server.events[0].reason, "timeout");
  await w.clock.until(() => meshes.b.received.some((r) => r.message.early === 1), "the early control message");
  assert.deepEqual(statesWith(meshes.a, "b"), ["connecting", "relay:timeout"]);
  closeAll(meshes);
});

test("control stays exactly once and in order when an open pair is lost mid-stream and moves to the relay", async () => {
  const w = world(["a", "b"]);
  const meshes = openAll(w);
  await w.clock.until(() => everyPair(meshes, "open"), "open pair");
  for (let i = 0; i < 20; i++) meshes.a.send("b", "control", { i });
  let dropping = true; // the next ones vanish on the wire, then the connection fails
  w.network.drop = () => dropping;
  for (let i = 20; i < 40; i++) meshes.a.send("b", "control", { i });
  [...w.network.connections.values()][0].fail();
  for (let i = 40; i < 60; i++) meshes.a.send("b", "control", { i });
  await w.clock.until(() => meshes.b.received.filter((r) => r.channel === "control").length >= 60, "60 control messages");
  dropping = false;
  await w.clock.run(1000); // duplicates, if any, would have arrived by now
  const got = meshes.b.received.filter((r) => r.channel === "control").map((r) => r.message.i);
  assert.deepEqual(got, Array.from({ length: 60 }, (_, i) => i));
  assert.deepEqual(statesWith(meshes.a, "b"), ["connecting", "open", "relay:lost"]);
  assert.equal(w.server.events[0].reason, "lost");
  closeAll(meshes);
});

test("a pair that goes to the relay during the lost grace clears its grace timer", async () => {
  const w = world(["a", "b"]);
  const meshes = openAll(w);
  await w.clock.until(() => everyPair(meshes, "open"), "open pair");
  const pair = meshes.a.pairs.get("b");
  pair.channels.control.shut(); // a's end only: the grace starts
  assert.ok(w.clock.pending.has(pair.lostTimer));
  meshes.b.pairs.get("a").toRelay("rtt"); // the peer declares the pair relayed meanwhile
  await w.clock.until(() => pair.state === "relay", "the peer's declaration");
  assert.equal(w.clock.pending.has(pair.lostTimer), false);
  assert.deepEqual(statesWith(meshes.a, "b"), ["connecting", "open", "relay:rtt"]);
  closeAll(meshes);
});

test("a reloaded page is connected anew; signals, relays and declarations of its old page are dropped", async () => {
  const w = world(["a", "b"]);
  const meshes = openAll(w);
  await w.clock.until(() => meshes.a.state("b") === "open", "first pair");
  const first = meshes.a.pairs.get("b");
  meshes.b = w.server.open("b", { RTC: w.network.RTC, ...fast });
  await w.clock.until(() => meshes.a.pairs.get("b") !== first && everyPair(meshes, "open"), "second pair");
  assert.equal(first.state, "closed");
  assert.deepEqual(statesWith(meshes.a, "b"), ["connecting", "open", "closed", "connecting", "open"]);
  const second = meshes.a.pairs.get("b");
  const old = [first.epochs[1], first.epochs[0]];
  const signals = [];
  second.onSignal = (data) => signals.push(data);
  meshes.a.receive({ type: "signal", from: "b", data: { e: old, candidate: { candidate: "old" } } });
  meshes.a.receive({ type: "relay", from: "b", channel: "control", e: old, data: [{ k: "c", s: 1, d: "stale" }] });
  meshes.a.receive({ type: "p2p_relay", from: "b", reason: "lost", e: old });
  meshes.a.receive({ type: "signal", from: "b", data: { e: [second.epochs[1], second.epochs[0]], candidate: { candidate: "new" } } });
  assert.deepEqual(signals.map((d) => d.candidate.candidate), ["new"]);
  assert.equal(second.in.delivered, 0);
  assert.equal(meshes.a.state("b"), "open");
  await exchange(w.clock, meshes, "after reload");
  w.server.leave("b");
  await w.clock.until(() => meshes.a.state("b") === "absent", "peer gone");
  assert.equal(meshes.a.send("b", "inputs", {}), false);
  closeAll(meshes);
});

test("a relay declaration of an old page does not relay the new pair (the hub checks the epochs)", async () => {
  const w = world(["a", "b"]);
  const meshes = openAll(w);
  await w.clock.until(() => everyPair(meshes, "open"), "open pair");
  const old = [...meshes.a.pairs.get("b").epochs];
  meshes.b = w.server.open("b", { RTC: w.network.RTC, ...fast });
  w.server.handle("a", { type: "p2p_relay", to: "b", reason: "lost", e: old }); // sent before a heard of the reload
  await w.clock.until(() => everyPair(meshes, "open") && meshes.a.pairs.get("b").epochs[1] !== old[1], "the new pair");
  await w.clock.run(1000);
  assert.deepEqual(w.server.events, []);
  assert.equal(meshes.b.state("a"), "open");
  closeAll(meshes);
});

test("a direct round trip above max_rtt_ms moves the pair to the relay when the relay is estimated faster", async () => {
  const slow = { maxRttMs: 20, rttViolations: 3, shim: { latencyMs: 30 } };
  const w = world(["a", "b"], { serverRtt: { a: 1, b: 1 } });
  const meshes = openAll(w, slow);
  await w.clock.until(() => w.server.events.length === 1, "an rtt relay");
  assert.equal(w.server.events[0].reason, "rtt");
  await w.clock.until(() => everyPair(meshes, "relay"), "both relayed");
  closeAll(meshes);

  const far = world(["a", "b"], { serverRtt: { a: 500, b: 500 } }); // the relay would be slower still
  const stay = openAll(far, slow);
  await far.clock.until(() => stay.a.rtt("b")?.samples >= 8, "round trips");
  assert.equal(stay.a.state("b"), "open");
  assert.deepEqual(far.server.events, []);
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
  assert.equal(out.ack(inbound.delivered - 1), true);
  assert.equal(out.ack(inbound.delivered - 1), false);
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

test("reliable halves are bounded: too much unacknowledged is an error that says so; too far ahead is dropped and counted", () => {
  const out = new ReliableOut();
  for (let i = 0; i < MAX_UNACKED; i++) out.wrap(i);
  assert.throws(() => out.wrap("one more"), { name: "RangeError", message: /unacknowledged.*not acknowledging/ });
  out.ack(1);
  out.wrap("room for one");
  const inbound = new ReliableIn();
  assert.deepEqual(inbound.accept({ k: "c", s: MAX_HELD + 1, d: "far" }), []);
  assert.equal(inbound.overflow, 1);
  assert.equal(inbound.held.size, 0);
  assert.deepEqual(inbound.accept({ k: "c", s: MAX_HELD, d: "near" }), []);
  assert.equal(inbound.held.size, 1);
});

test("a control message of any size arrives whole over a direct pair and over the relay; inputs are bounded", async () => {
  const w = world(["a", "b"]);
  const meshes = openAll(w);
  await w.clock.until(() => everyPair(meshes, "open"), "open pair");
  const big = { blob: "y".repeat(5 * MAX_PART + 7) };
  meshes.a.send("b", "control", big);
  await w.clock.until(() => meshes.b.received.length === 1, "the big message");
  assert.deepEqual(meshes.b.received[0].message, big);
  const texts = [...w.network.connections.values()].flatMap((pc) => Object.values(pc.channels).flatMap((c) => c.sent));
  assert.ok(texts.every((t) => t.length < MAX_PART + 100));
  assert.throws(() => meshes.a.send("b", "inputs", big), RangeError);
  meshes.b.pairs.get("a").toRelay("failed");
  await w.clock.until(() => meshes.a.state("b") === "relay", "relay");
  meshes.b.send("a", "control", big);
  await w.clock.until(() => meshes.a.received.length === 1, "the big message, relayed");
  assert.deepEqual(meshes.a.received[0].message, big);
  closeAll(meshes);
});

test("a mesh closed before its task ends relays nothing of that task", async () => {
  const w = world(["a", "b"]);
  const meshes = Object.fromEntries(["a", "b"].map((s) => [s, w.server.open(s, { RTC: null, ...fast, pingEveryMs: 60_000 })]));
  await w.clock.until(() => everyPair(meshes, "relay"), "relay");
  await w.clock.run(100);
  const before = relayMessages(w.server, "a").length;
  meshes.a.send("b", "inputs", { late: 1 });
  meshes.a.close();
  await w.clock.run(100);
  assert.equal(relayMessages(w.server, "a").length, before);
  closeAll(meshes);
});

test("mesh options are checked: unknown ones and values out of range are errors that name them", () => {
  const base = { seat: "a", seats: ["a", "b"], sendToServer: () => {}, RTC: null };
  assert.throws(() => new Mesh({ ...base, lostGraceMS: 5 }), { name: "TypeError", message: /unknown option lostGraceMS/ });
  assert.throws(() => new Mesh({ ...base, lostGraceMs: -1 }), { name: "RangeError", message: /lostGraceMs=-1/ });
  assert.throws(() => new Mesh({ ...base, rttViolations: 1.5 }), { name: "RangeError", message: /rttViolations/ });
  assert.throws(() => new Mesh({ ...base, RTC: "yes" }), TypeError);
  assert.equal(new Mesh({ ...base, lostGraceMs: 0, maxRttMs: null }).config.lostGraceMs, 0);
  assert.deepEqual(checkOptions({}).lostGraceMs, 1000);
});

test("the page starts a mesh on p2p, joins, and maps the wire options", () => {
  const sent = [];
  let started = null;
  const peers = new MatchPeers({ send: (m) => sent.push(m), onMesh: (mesh) => (started = mesh) });
  peers.receive({ type: "p2p", seat: "b", seats: ["a", "b"], ice_servers: [{ urls: ["stun:x"] }], options: { connect_timeout_s: 2, shim: { latency_ms: 50 } } });
  assert.deepEqual(sent, [{ type: "p2p_join" }]);
  assert.equal(started.seat, "b");
  assert.equal(started.config.connectTimeoutMs, 2000);
  assert.deepEqual(started.config.iceServers, [{ urls: ["stun:x"] }]);
  assert.deepEqual(meshOptions({ max_rtt_ms: null, ping_every_s: 0.25, lost_grace_s: 3 }), {
    maxRttMs: null,
    pingEveryMs: 250,
    lostGraceMs: 3000,
  });
  peers.close();
  assert.equal(started.closed, true);
});

test("the page's RTC null reaches the mesh: no peer connection is made even where the browser has one", () => {
  const made = [];
  globalThis.RTCPeerConnection = class {
    constructor() {
      made.push(this);
      throw new Error("this browser's WebRTC must not be used"); // the pair then goes to the relay
    }
  };
  const peers = new MatchPeers({ send: () => {}, RTC: null });
  try {
    peers.receive({ type: "p2p", seat: "a", seats: ["a", "b"], ice_servers: [], options: {} });
    peers.receive({ type: "p2p_peers", peers: { a: 1, b: 1 }, server_rtt_ms: {} });
    assert.equal(made.length, 0, "the mesh made a peer connection with the browser's RTCPeerConnection: RTC null was lost");
    assert.equal(peers.mesh.RTC, null);
  } finally {
    peers.close(); // its pairs' timers (real ones here) must not keep the test alive when an assertion fails
    delete globalThis.RTCPeerConnection;
  }
});

test("a LocalHub meshes seats of one page without WebRTC: relayed in the page, with the shim's latency and loss", async () => {
  const clock = new ManualClock();
  const hub = new LocalHub(["left", "right"], { setTimeout: clock.setTimeout });
  const shim = { latencyMs: 15, jitterMs: 5, loss: 0.3, seed: 4 };
  const got = { left: [], right: [] };
  const meshes = {};
  for (const seat of ["left", "right"]) {
    meshes[seat] = hub.open(seat, { RTC: null, shim, pingEveryMs: 20, now: clock.now, timers: clock.timers });
    meshes[seat].onmessage = (from, channel, message) => got[seat].push({ channel, message });
  }
  await clock.until(() => everyPair(meshes, "relay"), "relayed pairs");
  assert.equal(hub.events.length, 1); // one declaration for the pair, whichever side made it first
  for (let i = 0; i < 100; i++) meshes.left.send("right", "inputs", { i });
  for (let i = 0; i < 50; i++) meshes.left.send("right", "control", { i });
  await clock.until(() => got.right.filter((g) => g.channel === "control").length === 50, "all control messages");
  await clock.run(60); // the last inputs, if not lost, are in by now
  assert.deepEqual(got.right.filter((g) => g.channel === "control").map((g) => g.message.i), Array.from({ length: 50 }, (_, i) => i));
  const inputs = got.right.filter((g) => g.channel === "inputs").length;
  assert.ok(inputs >= 40 && inputs <= 95, `${inputs} of 100 inputs at 30 % loss`);
  await clock.until(() => meshes.right.rtt("left").samples >= 3, "round trips");
  assert.ok(meshes.right.rtt("left").median_ms >= 20); // the shim's delay, both ways (at least 10 + 10)
  Object.values(meshes).forEach((m) => m.close());
});
