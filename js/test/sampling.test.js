import assert from "node:assert/strict";
import { test } from "node:test";
import { Mulberry32, agentSeed, argmaxAction, fnv1a32, sampleAction, softmax } from "../src/runtime/sampling.js";

// The same numbers are pinned in tests/unit/test_sampling.py: both languages must produce them.
const MULBERRY_SEED_0 = [1144304738, 1416247, 958946056, 627933444, 2007157716];
const FNV = { "": 0x811c9dc5, a: 0xe40c292c, agent_0: 0xf9649d91, "ü": 0x119dd44a };

test("Mulberry32 first outputs are pinned", () => {
  const rng = new Mulberry32(0);
  assert.deepEqual(MULBERRY_SEED_0.map(() => rng.nextUint32()), MULBERRY_SEED_0);
});

test("FNV-1a of UTF-8 text is pinned", () => {
  for (const [text, expected] of Object.entries(FNV)) assert.equal(fnv1a32(text), expected, text);
});

test("agent ids hash as strings and give distinct streams", () => {
  assert.equal(agentSeed(7, 0), agentSeed(7, "0"));
  assert.notEqual(agentSeed(7, "agent_0"), agentSeed(7, "agent_1"));
});

test("sampling follows the probabilities", () => {
  const rng = new Mulberry32(5);
  const counts = [0, 0, 0];
  for (let i = 0; i < 30000; i++) counts[sampleAction([0, 1, 2], 1, rng).action]++;
  const probs = softmax([0, 1, 2]);
  counts.forEach((c, i) => assert.ok(Math.abs(c / 30000 - probs[i]) < 0.01));
});

test("argmax takes the first of equal maxima", () => {
  assert.equal(argmaxAction([0.1, 3, 3]).action, 1);
});

test("non-finite logits are an error", () => {
  assert.throws(() => sampleAction([0, NaN], 1, new Mulberry32(0)), /not all finite/);
});
