import assert from "node:assert/strict";
import { test } from "node:test";
import { ProtocolError, actMessage, checkServerMessage, decodeEnvelope, encodeEnvelope, observationFromRef, tensorFromRef, tensorRef } from "../src/client/messages.js";

test("envelopes round-trip messages and buffers", () => {
  const buffers = [];
  const ref = tensorRef(Float32Array.of(1.5, -2), "float32", [2], buffers);
  const { message, buffers: out } = decodeEnvelope(encodeEnvelope({ type: "act", step: 3, logits: ref }, buffers));
  assert.deepEqual(message, { type: "act", step: 3, logits: ref });
  assert.deepEqual(Array.from(tensorFromRef(message.logits, out).data), [1.5, -2]);
});

test("the envelope layout is the one Python writes: MUG1, little-endian header length, header, buffers", () => {
  const bytes = encodeEnvelope({ type: "ready" }, [Uint8Array.of(7, 8)]);
  assert.deepEqual(Array.from(bytes.subarray(0, 4)), [0x4d, 0x55, 0x47, 0x31]);
  const length = new DataView(bytes.buffer).getUint32(4, true);
  assert.equal(new TextDecoder().decode(bytes.subarray(8, 8 + length)), '{"message":{"type":"ready"},"buffers":[2]}');
  assert.deepEqual(Array.from(bytes.subarray(8 + length)), [7, 8]);
});

test("observations come back as typed arrays, dicts as objects", () => {
  const buffers = [Uint8Array.from(new Uint8Array(Float32Array.of(1, 2).buffer)), Uint8Array.of(1, 0, 0, 0)];
  assert.deepEqual(Array.from(observationFromRef({ buffer: 0, dtype: "float32", shape: [2] }, buffers)), [1, 2]);
  const dict = observationFromRef({ dict: { a: { buffer: 1, dtype: "int32", shape: [1] } } }, buffers);
  assert.deepEqual(Array.from(dict.a), [1]);
});

test("malformed engine messages are refused", () => {
  assert.throws(() => checkServerMessage({ type: "frame", step: "x" }), ProtocolError);
  assert.throws(() => checkServerMessage({ type: "hack" }), /unknown message/);
  assert.throws(() => decodeEnvelope(Uint8Array.of(1, 2, 3)), /MUG1/);
  assert.throws(() => tensorFromRef({ buffer: 4, dtype: "float32", shape: [1] }, []), /bad tensor reference/);
});

test("act messages carry keys and policy results as tensors", () => {
  const { message, buffers } = actMessage(5, ["ArrowUp"], { agent_1: { action: 2, logits: Float32Array.of(0.1, 0.2), states: { h: { data: Float32Array.of(3), dims: [1, 1] } } } });
  assert.equal(message.step, 5);
  assert.deepEqual(message.policies.agent_1.states.h, { buffer: 1, dtype: "float32", shape: [1, 1] });
  assert.equal(buffers.length, 2);
});

test("an act carries each agent's stream position, float64 states as float64, and the dropped-frame count", () => {
  const results = { p: { action: 1, logits: null, states: { h: { data: Float64Array.of(0.1), dims: [1, 1] } }, rng: 4294967295, steps: 7 } };
  const { message, buffers } = actMessage(2, [], results, 0, 3);
  assert.deepEqual(message.policies.p, { action: 1, states: { h: { buffer: 0, dtype: "float64", shape: [1, 1] } }, rng: 4294967295, steps: 7 });
  assert.equal(buffers[0][0], 0.1);
  assert.equal(message.dropped, 3);
  assert.equal(actMessage(2, [], {}, 0, 0).message.dropped, undefined); // nothing dropped: nothing sent
});
