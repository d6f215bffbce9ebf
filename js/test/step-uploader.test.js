import assert from "node:assert/strict";
import test from "node:test";
import { MAX_BATCH_BYTES, P2P_FRAMES, StepUploader } from "../src/pyworker/step-uploader.js";

/** A socket that delivers while `open` and drops otherwise (as `Connection.send` does). */
function fakeSocket() {
  const socket = { open: true, sent: [] };
  socket.send = (message) => socket.open && socket.sent.push(structuredClone(message));
  return socket;
}

/** Storage like the tab's sessionStorage. */
function fakeStorage() {
  const items = new Map();
  return { getItem: (k) => items.get(k) ?? null, setItem: (k, v) => items.set(k, String(v)), removeItem: (k) => items.delete(k), items };
}

const steps = (session, from, to) => ({
  type: "steps",
  session_id: session,
  scene_id: "walk",
  records: Array.from({ length: to - from }, (_, i) => ({ seq: from + i, kind: "step", episode: 0, step: from + i, record: { a: 1 } })),
});
const seqs = (messages) => messages.flatMap((m) => m.records.map((r) => `${m.session_id}:${r.seq}`));

test("records are kept until acknowledged (sendEveryMs 0: each message sent at once)", () => {
  const socket = fakeSocket();
  const uploader = new StepUploader({ sendEveryMs: 0, send: socket.send });
  uploader.add(steps("s1", 0, 3));
  uploader.add(steps("s1", 3, 5));
  assert.deepEqual(seqs(socket.sent), ["s1:0", "s1:1", "s1:2", "s1:3", "s1:4"]);
  assert.equal(uploader.pending, 5);
  uploader.ack({ session_id: "s1", seq: 2 });
  assert.equal(uploader.pending, 2);
  uploader.ack({ session_id: "s1", seq: 1 }); // an older ack changes nothing
  uploader.ack({ session_id: "other", seq: 9 }); // nor one of another session
  assert.equal(uploader.pending, 2);
  uploader.ack({ session_id: "s1", seq: 4 });
  assert.equal(uploader.pending, 0);
});

test("what was sent while the server was down, or never acknowledged, is sent again after reconnect, once each", () => {
  const socket = fakeSocket();
  const uploader = new StepUploader({ sendEveryMs: 0, send: socket.send });
  uploader.add(steps("s1", 0, 4));
  uploader.ack({ session_id: "s1", seq: 1 }); // 2 and 3 went out but their commit was not acknowledged
  socket.open = false;
  uploader.add(steps("s1", 4, 7)); // dropped by the closed socket
  uploader.add(steps("s2", 0, 2));
  socket.open = true;
  socket.sent.length = 0;
  uploader.resend();
  assert.deepEqual(seqs(socket.sent), ["s1:2", "s1:3", "s1:4", "s1:5", "s1:6", "s2:0", "s2:1"]);
  assert.ok(socket.sent.every((m) => m.type === "steps" && m.scene_id === "walk"));
  uploader.ack({ session_id: "s1", seq: 6 });
  uploader.ack({ session_id: "s2", seq: 1 });
  socket.sent.length = 0;
  uploader.resend();
  assert.deepEqual(socket.sent, []);
});

test("a record added twice (the engine resent it) is kept once", () => {
  const uploader = new StepUploader({ sendEveryMs: 0, send: () => {} });
  uploader.add(steps("s1", 0, 3));
  uploader.add(steps("s1", 1, 4));
  assert.equal(uploader.pending, 4);
});

test("a resend is cut into messages under the size limit, in order", () => {
  const socket = fakeSocket();
  const uploader = new StepUploader({ sendEveryMs: 0, send: socket.send });
  const big = steps("s1", 0, 400);
  for (const r of big.records) r.record.pad = "x".repeat(500);
  uploader.add(big);
  socket.sent.length = 0;
  uploader.resend();
  assert.ok(socket.sent.length > 1);
  assert.ok(socket.sent.every((m) => JSON.stringify(m.records).length <= MAX_BATCH_BYTES + 1000));
  assert.deepEqual(seqs(socket.sent), big.records.map((r) => `s1:${r.seq}`));
});

test("kept records survive a reload of the page (storage), and are forgotten there once acknowledged", () => {
  const storage = fakeStorage();
  const first = new StepUploader({ sendEveryMs: 0, send: () => {}, storage, key: "mug-steps:p1" });
  first.add(steps("s1", 0, 5));
  first.ack({ session_id: "s1", seq: 2 });
  const socket = fakeSocket();
  const reloaded = new StepUploader({ sendEveryMs: 0, send: socket.send, storage, key: "mug-steps:p1" });
  assert.equal(reloaded.pending, 2);
  reloaded.resend();
  assert.deepEqual(seqs(socket.sent), ["s1:3", "s1:4"]);
  reloaded.ack({ session_id: "s1", seq: 4 });
  assert.equal(storage.items.has("mug-steps:p1"), false);
  storage.setItem("mug-steps:p1", "{not json");
  assert.equal(new StepUploader({ sendEveryMs: 0, send: () => {}, storage, key: "mug-steps:p1" }).pending, 0); // bad storage: nothing kept, no throw
});

test("step records wait to go out together; an event record sends what waits at once", (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const socket = fakeSocket();
  const uploader = new StepUploader({ send: socket.send, sendEveryMs: 500 });
  uploader.add(steps("s1", 0, 2));
  uploader.add(steps("s1", 2, 4));
  assert.equal(socket.sent.length, 0, "steps wait for the batch");
  t.mock.timers.tick(499);
  assert.equal(socket.sent.length, 0);
  t.mock.timers.tick(1);
  assert.deepEqual(
    socket.sent.map((m) => m.records.map((r) => r.seq)),
    [[0, 1, 2, 3]],
    "one message with every waiting record, in order",
  );
  uploader.add(steps("s1", 4, 5));
  uploader.add({ type: "steps", session_id: "s1", scene_id: "walk", records: [{ seq: 5, kind: "event", name: "episode_end", record: { episode: 0 } }] });
  assert.deepEqual(socket.sent.slice(1).map((m) => m.records.map((r) => r.seq)), [[4, 5]], "the event took the waiting step with it");
  t.mock.timers.tick(1000);
  assert.equal(socket.sent.length, 2, "nothing is sent twice");
  assert.equal(uploader.pending, 6, "all kept until acknowledged");
});

test("a resend takes the records waiting to go out with it, once", (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const socket = fakeSocket();
  const uploader = new StepUploader({ send: socket.send, sendEveryMs: 500 });
  uploader.add(steps("s1", 0, 3));
  uploader.resend();
  t.mock.timers.tick(1000);
  assert.deepEqual(seqs(socket.sent), ["s1:0", "s1:1", "s1:2"]);
});

/** Confirmed frame records of a P2P match, frames `from` to `to - 1`; `ended` ends the episode at the last one. */
const frames = (from, to, ended = false) => ({
  type: "p2p_frames",
  match_id: "m1",
  records: Array.from({ length: to - from }, (_, i) => ({
    frame: from + i,
    chain: `c${from + i}`,
    result: { kind: "step", terminated: { a: false }, truncated: { a: ended && i === to - from - 1 } },
  })),
});
const framesSent = (messages) => messages.flatMap((m) => m.records.map((r) => r.frame));

test("P2P frames: kept until p2p_ack {match_id, frame}, batched, sent at once when an episode ends", (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const socket = fakeSocket();
  const uploader = new StepUploader({ send: socket.send, ...P2P_FRAMES });
  uploader.add(frames(0, 3));
  assert.equal(socket.sent.length, 0);
  t.mock.timers.tick(500);
  assert.deepEqual(socket.sent, [{ type: "p2p_frames", match_id: "m1", records: frames(0, 3).records }]);
  uploader.add(frames(3, 6, true)); // the episode's last frame: out at once
  assert.deepEqual(framesSent(socket.sent), [0, 1, 2, 3, 4, 5]);
  uploader.ack({ type: "p2p_ack", match_id: "m1", frame: 4 });
  socket.sent.length = 0;
  uploader.resend();
  assert.deepEqual(framesSent(socket.sent), [5]);
  assert.deepEqual(Object.keys(socket.sent[0]).sort(), ["match_id", "records", "type"]);
});

test("P2P frames: a resync drops the unacked records from its frame on; they come again and go out again", () => {
  const socket = fakeSocket();
  const uploader = new StepUploader({ send: socket.send, sendEveryMs: 0, ...P2P_FRAMES });
  uploader.add(frames(0, 8));
  uploader.ack({ match_id: "m1", frame: 2 });
  uploader.drop("m1", 5);
  assert.equal(uploader.pending, 2); // frames 3 and 4
  socket.sent.length = 0;
  const again = frames(5, 7);
  for (const r of again.records) r.chain = `d${r.frame}`;
  uploader.add(again);
  assert.deepEqual(socket.sent.flatMap((m) => m.records.map((r) => r.chain)), ["d5", "d6"]);
  socket.sent.length = 0;
  uploader.resend();
  assert.deepEqual(socket.sent.flatMap((m) => m.records.map((r) => r.chain)), ["c3", "c4", "d5", "d6"]);
});
