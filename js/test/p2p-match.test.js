/**
 * The page's side of a P2P match scene (`P2PMatch`): the game's peer messages to the mesh and back, AI requests
 * served by a real `PolicyRuntime` (a recurrent ONNX model, ONNX Runtime for Node) and answered in order, the
 * confirmed frames kept until acked, a resync's drop, and `p2p_done` after the records.
 */
import assert from "node:assert/strict";
import test from "node:test";
import { AISeats, P2PMatch } from "../src/pyworker/p2p-match.js";
import { LSTM_CONFIG, model, observation } from "./helpers.js";

const META = {
  scene_id: "duo",
  policy_seed: 3,
  policies: { agent_1: { model_url: "models/duo/agent_1/x.onnx", config: LSTM_CONFIG } },
  environment: { spec: { p2p: { match_id: "m1", seat: "agent_0" } } },
};
const fetchAsset = async () => model("overcooked_lstm_rllib.onnx");

/** A mesh that records what is sent (as `Mesh.send` / `Mesh.broadcast`). */
class FakeMesh {
  constructor() {
    this.sent = [];
    this.onmessage = () => {};
  }
  send(seat, channel, message) {
    this.sent.push([seat, channel, message]);
    return true;
  }
  broadcast(channel, message) {
    this.sent.push(["*", channel, message]);
    return ["agent_1"];
  }
}

function page() {
  const server = [];
  const worker = [];
  const events = new EventTarget();
  const expose = {};
  const doc = Object.assign(new EventTarget(), { hidden: false });
  const match = new P2PMatch({ sendToServer: (m) => server.push(structuredClone(m)), toWorker: (m) => worker.push(m), fetchAsset, events, expose, doc });
  match.uploader.sendEveryMs = 0;
  return { match, server, worker, events, expose, doc };
}

test("peer messages go to the mesh (input -> inputs, no recipient -> every peer); the mesh's come to the game", () => {
  const { match, worker, events } = page();
  match.begin(META);
  const mesh = new FakeMesh();
  events.dispatchEvent(Object.assign(new Event("mug-p2p"), { detail: { mesh, start: {} } }));
  match.fromEngine({ type: "peer", messages: [["agent_1", "input", { t: "input" }], [null, "control", { t: "hash" }]] });
  assert.deepEqual(mesh.sent, [
    ["agent_1", "inputs", { t: "input" }],
    ["*", "control", { t: "hash" }],
  ]);
  mesh.onmessage("agent_1", "inputs", { t: "input", from: "agent_1" });
  assert.deepEqual(worker, [{ type: "peer", from: "agent_1", message: { t: "input", from: "agent_1" } }]);
  match.leave();
  mesh.onmessage("agent_1", "inputs", { t: "input" });
  assert.equal(worker.length, 1); // the page left the scene: nothing more for the game
});

test("a mesh opened while no P2P scene runs keeps its own onmessage; the scene takes it when it begins", () => {
  const { match, worker, events } = page();
  const mesh = new FakeMesh();
  const own = [];
  mesh.onmessage = (from, channel, message) => own.push([from, channel, message]);
  events.dispatchEvent(Object.assign(new Event("mug-p2p"), { detail: { mesh, start: {} } }));
  mesh.onmessage("agent_1", "control", { n: 1 });
  assert.deepEqual(own, [["agent_1", "control", { n: 1 }]], "not taken over by the game");
  match.begin(META);
  mesh.onmessage("agent_1", "inputs", { t: "input" });
  assert.deepEqual(worker, [{ type: "peer", from: "agent_1", message: { t: "input" } }]);
});

test("frames are kept until acked and exposed as the page's history; a resync drops its frames; p2p_done comes last", () => {
  const { match, server, expose } = page();
  match.begin(META);
  const record = (frame, chain) => ({ frame, chain, result: { kind: "step", terminated: {}, truncated: {} } });
  match.fromEngine({ type: "p2p_frames", match_id: "m1", records: [0, 1, 2, 3].map((f) => record(f, `a${f}`)) });
  match.ack({ type: "p2p_ack", match_id: "m1", frame: 1 });
  const resync = { type: "resync", frame: 2, from: "agent_1", local_hash: "x", remote_hash: "y" };
  match.fromEngine({ type: "p2p_events", match_id: "m1", events: [resync] });
  match.fromEngine({ type: "p2p_frames", match_id: "m1", records: [2, 3].map((f) => record(f, `b${f}`)) });
  match.fromEngine({ type: "p2p_done", match_id: "m1", reason: "scene_end" });
  assert.deepEqual(expose.mugP2P.records.map((r) => r.chain), ["a0", "a1", "b2", "b3"]);
  assert.deepEqual(expose.mugP2P.events, [resync]);
  assert.equal(expose.mugP2P.done, true);
  assert.deepEqual(server.map((m) => m.type), ["p2p_frames", "p2p_events", "p2p_frames", "p2p_done"]);
  server.length = 0;
  match.reconnected();
  assert.deepEqual(server.map((m) => [m.type, m.records?.map((r) => r.chain)]), [
    ["p2p_frames", ["b2", "b3"]],
    ["p2p_done", undefined],
  ]);
});

test("AI requests are answered in order by a recurrent runtime; a seat restored from another page's blob acts the same", async () => {
  const answers = [[], []];
  const seats = [0, 1].map((i) => new AISeats(META, fetchAsset, (a) => answers[i].push(a), (e) => assert.fail(e)));
  const request = (frame, episode = 0, restore = null) => ({ seat: "agent_1", frame, episode, observation: Array.from(observation(116, frame)), restore, epoch: 0 });
  seats[0].serve([0, 1, 2, 3].map((f) => request(f, f < 3 ? 0 : 1)));
  await seats[0].chain;
  assert.deepEqual(answers[0].map((a) => [a.type, a.frame]), [["ai", 0], ["ai", 1], ["ai", 2], ["ai", 3]]);
  assert.equal(answers[0][3].state.steps, 1); // a new episode reset the hidden state (reset_state "episode")
  assert.equal(answers[0][1].state.states[0].length, 128);
  // the second page gets the state after frame 1 (a state transfer) and goes on from there
  seats[1].serve([request(2, 0, { state: answers[0][1].state }), request(3, 1)]);
  await seats[1].chain;
  assert.deepEqual(answers[1], answers[0].slice(2));
});

test("a pair that starts carrying messages (a new one after a reconnect) is told to the game once", () => {
  const { match, worker, events } = page();
  match.begin(META);
  const mesh = new FakeMesh();
  events.dispatchEvent(Object.assign(new Event("mug-p2p"), { detail: { mesh, start: {} } }));
  mesh.onstate("agent_1", "connecting", null);
  mesh.onstate("agent_1", "open", null);
  mesh.onstate("agent_1", "relay", "slow"); // the same pair, relayed: control goes on exactly once
  assert.deepEqual(worker, [{ type: "reconnected", peer: "agent_1" }]);
  mesh.onstate("agent_1", "closed", "peer left");
  mesh.onstate("agent_1", "connecting", null);
  mesh.onstate("agent_1", "relay", "blocked"); // the new pair (WebRTC blocked this time)
  assert.deepEqual(worker, [
    { type: "reconnected", peer: "agent_1" },
    { type: "reconnected", peer: "agent_1" },
  ]);
});

test("the tab's visibility goes to the game while a match runs (also when the scene starts in a hidden tab)", () => {
  const { match, worker, doc } = page();
  doc.hidden = true;
  doc.dispatchEvent(new Event("visibilitychange")); // no match yet: nothing
  match.begin(META);
  doc.hidden = false;
  doc.dispatchEvent(new Event("visibilitychange"));
  assert.deepEqual(worker, [
    { type: "visibility", hidden: true },
    { type: "visibility", hidden: false },
  ]);
});

test("the server's p2p_seat_ai goes to the game when it names another seat of this match; else it is dropped", () => {
  const errors = [];
  const { match, worker } = page();
  match.onError = (text) => errors.push(text);
  match.begin(META);
  match.seatToAI({ type: "p2p_seat_ai", match_id: "m0", seat: "agent_1" }); // another match
  match.seatToAI({ type: "p2p_seat_ai", match_id: "m1", seat: "agent_0" }); // this page's own seat
  match.seatToAI({ type: "p2p_seat_ai", match_id: "m1", seat: "agent_1" });
  assert.deepEqual(worker, [{ type: "seat_ai", seat: "agent_1" }]);
  assert.equal(errors.length, 2);
  assert.match(errors[0], /not another seat of this page's match/);
});

test("a lost member's seat runs its fill-in model, loaded when the scene begins, from a fresh state", async () => {
  const fetched = [];
  const meta = {
    ...META,
    policies: { agent_0: { kind: "human" }, agent_1: { kind: "human" } },
    fill_policies: { agent_1: { kind: "model", model_url: "models/duo/fill_with%3Aagent_1/x.onnx", config: LSTM_CONFIG } },
  };
  const answers = [];
  const fetching = async (url) => {
    fetched.push(url);
    return model("overcooked_lstm_rllib.onnx");
  };
  const seats = new AISeats(meta, fetching, (a) => answers.push(a), (e) => assert.fail(e));
  seats.preload(Object.keys(meta.fill_policies));
  assert.deepEqual(fetched, ["models/duo/fill_with%3Aagent_1/x.onnx"]); // before any request
  const request = (frame, restore) => ({ seat: "agent_1", frame, episode: 0, observation: Array.from(observation(116, frame)), restore, epoch: 0 });
  seats.serve([request(40, { state: null }), request(41, null)]);
  await seats.chain;
  assert.deepEqual(answers.map((a) => [a.frame, a.state.steps]), [[40, 1], [41, 2]]);
  assert.equal(fetched.length, 1);
});

test("a fill-in model whose preload failed (the network blipped) is loaded again when the seat needs it", async () => {
  const meta = {
    ...META,
    policies: { agent_0: { kind: "human" }, agent_1: { kind: "human" } },
    fill_policies: { agent_1: { kind: "model", model_url: "models/duo/fill_with%3Aagent_1/x.onnx", config: LSTM_CONFIG } },
  };
  let calls = 0;
  const flaky = async () => {
    calls += 1;
    if (calls === 1) throw new Error("GET models/duo/fill_with%3Aagent_1/x.onnx: 503 Service Unavailable");
    return model("overcooked_lstm_rllib.onnx");
  };
  const answers = [];
  const errors = [];
  const seats = new AISeats(meta, flaky, (a) => answers.push(a), (e) => errors.push(e));
  seats.preload(["agent_1"]);
  await new Promise((resolve) => setTimeout(resolve, 0));
  seats.serve([{ seat: "agent_1", frame: 40, episode: 0, observation: Array.from(observation(116, 40)), restore: { state: null }, epoch: 0 }]);
  await seats.chain;
  assert.deepEqual(errors, []);
  assert.equal(calls, 2);
  assert.deepEqual(answers.map((a) => [a.frame, a.state.steps]), [[40, 1]]);
});

test("a fill-in model that cannot be loaded when the seat needs it fails the AI partner with the reason", async () => {
  const meta = { ...META, policies: { agent_1: { kind: "human" } }, fill_policies: { agent_1: { kind: "model", model_url: "models/x.onnx", config: LSTM_CONFIG } } };
  const errors = [];
  const seats = new AISeats(meta, async () => { throw new Error("GET models/x.onnx: 404 Not Found"); }, () => assert.fail("no answer"), (e) => errors.push(e));
  seats.serve([{ seat: "agent_1", frame: 3, episode: 0, observation: Array.from(observation(116, 3)), restore: { state: null }, epoch: 0 }]);
  await seats.chain;
  assert.deepEqual(errors, ["the AI partner failed: GET models/x.onnx: 404 Not Found"]);
});
