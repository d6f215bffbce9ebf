import assert from "node:assert/strict";
import { test } from "node:test";
import { ort } from "../src/runtime/ort.js";
import { ObservationEncoder, fixedTensor, flattenObservation, resolveShape } from "../src/runtime/tensors.js";

test("observations flatten in C order; dicts in sorted key order", () => {
  assert.deepEqual(Array.from(flattenObservation([[1, 2], [3, 4]])), [1, 2, 3, 4]);
  assert.deepEqual(Array.from(flattenObservation({ b: [3], a: [1, 2] })), [1, 2, 3]);
  assert.deepEqual(Array.from(flattenObservation([Float32Array.of(1, 2), Float32Array.of(3)])), [1, 2, 3]);
  assert.throws(() => flattenObservation(["x"]), /holds string/);
});

test("symbolic dimensions become the batch size", () => {
  assert.deepEqual(resolveShape(["batch", 128], 4), [4, 128]);
  assert.equal(resolveShape(null, 1), null);
});

test("the observation fills one row and is tiled on every row", () => {
  const specs = new Map([["obs", { name: "obs", type: "float32", shape: ["b", 3] }]]);
  const feeds = new ObservationEncoder(ort, "obs", specs, 2).encode([1, 2, 3]);
  assert.deepEqual(feeds.obs.dims, [2, 3]);
  assert.deepEqual(Array.from(feeds.obs.data), [1, 2, 3, 1, 2, 3]);
  assert.throws(() => new ObservationEncoder(ort, "obs", specs, 1).encode([1, 2]), /has 2 values but input 'obs' takes 3 per row/);
});

test("dict observations map keys to inputs", () => {
  const specs = new Map([
    ["pos", { name: "pos", type: "float32", shape: ["b", 2] }],
    ["img", { name: "img", type: "float32", shape: ["b", 2, 2] }],
  ]);
  const encoder = new ObservationEncoder(ort, { position: "pos", image: "img" }, specs, 1);
  const feeds = encoder.encode({ position: [1, 2], image: [[1, 2], [3, 4]] });
  assert.deepEqual(feeds.img.dims, [1, 2, 2]);
  assert.throws(() => encoder.encode({ position: [1, 2] }), /has no key 'image'/);
  assert.throws(() => encoder.encode([1, 2]), /is not an object/);
});

test("a number fills a fixed input's shape in the model's dtype", () => {
  const t = fixedTensor(ort, 1, { name: "seq_lens", type: "int32", shape: ["b"] }, 4);
  assert.ok(t.data instanceof Int32Array);
  assert.deepEqual(Array.from(t.data), [1, 1, 1, 1]);
  const big = fixedTensor(ort, [[2, 3]], { name: "x", type: "int64", shape: [1, 2] }, 1);
  assert.deepEqual(Array.from(big.data), [2n, 3n]);
  assert.deepEqual(big.dims, [1, 2]);
});
