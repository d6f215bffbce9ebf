import assert from "node:assert/strict";
import { test } from "node:test";
import { PolicyError, PolicyRuntime, ort } from "../src/runtime/index.js";
import { LSTM_CONFIG, model, observation } from "./helpers.js";

const lstm = model("overcooked_lstm_rllib.onnx");
const create = (config = {}, seed = 0, name) => PolicyRuntime.create({ model: lstm, config: { ...LSTM_CONFIG, ...config }, seed, name });

async function bareRun(session, obs, h, c) {
  return session.run({
    obs: new ort.Tensor("float32", obs, [1, 116]),
    state_in_0: h,
    state_in_1: c,
    seq_lens: new ort.Tensor("float32", Float32Array.of(1), [1]),
  });
}

const close = (a, b, tol = 1e-6) => {
  assert.equal(a.length, b.length);
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i] - b[i]) <= tol, `index ${i}: ${a[i]} vs ${b[i]}`);
};

test("first step uses zero state; later steps carry it", async () => {
  const runtime = await create();
  const session = await ort.InferenceSession.create(lstm);
  let h = new ort.Tensor("float32", new Float32Array(128), [1, 128]);
  let c = new ort.Tensor("float32", new Float32Array(128), [1, 128]);
  for (let k = 0; k < 4; k++) {
    const bare = await bareRun(session, observation(116, k), h, c);
    const out = await runtime.step(observation(116, k));
    close(out.logits, bare.output.data);
    close(out.states.state_out_0.data, bare.state_out_0.data);
    ({ state_out_0: h, state_out_1: c } = bare);
  }
  assert.ok(Math.max(...h.data.map(Math.abs)) > 0.01);
});

test("reset returns to zero state; results do not alias later steps", async () => {
  const runtime = await create();
  const first = await runtime.step(observation(116, 0));
  const kept = Float32Array.from(first.logits);
  await runtime.step(observation(116, 1));
  assert.deepEqual(Array.from(first.logits), Array.from(kept));
  runtime.reset();
  const again = await runtime.step(observation(116, 0));
  assert.deepEqual(Array.from(again.logits), Array.from(kept));
});

test("agents do not share state", async () => {
  const shared = await create({}, 3);
  const alone = await create({}, 3);
  for (let k = 0; k < 6; k++) {
    await shared.step(observation(116, 100 + k), "b");
    const a = await shared.step(observation(116, k), "a");
    const b = await alone.step(observation(116, k), "a");
    assert.deepEqual(Array.from(a.logits), Array.from(b.logits));
    assert.equal(a.action, b.action);
  }
});

test("snapshot/restore reproduces the continuation exactly", async () => {
  const runtime = await create({}, 11);
  for (let k = 0; k < 5; k++) await runtime.step(observation(116, k));
  const snap = runtime.snapshot();
  const original = [];
  for (let k = 5; k < 12; k++) original.push(await runtime.step(observation(116, k)));
  runtime.restore(snap);
  for (let k = 5; k < 12; k++) {
    const replay = await runtime.step(observation(116, k));
    assert.equal(replay.action, original[k - 5].action);
    assert.deepEqual(Array.from(replay.states.state_out_1.data), Array.from(original[k - 5].states.state_out_1.data));
  }
});

test("a fresh runtime resumed from what an act carries continues exactly (a reloaded page)", async () => {
  const { actMessage, decodeEnvelope, encodeEnvelope, tensorFromRef } = await import("../src/client/messages.js");
  const uninterrupted = await create({}, 11);
  const original = [];
  for (let k = 0; k < 12; k++) original.push(await uninterrupted.step(observation(116, k), "p"));
  const before = await create({}, 11);
  let last;
  for (let k = 0; k < 5; k++) last = { ...(await before.step(observation(116, k), "p")), ...before.position("p") };
  // the act goes over the wire; the engine keeps its states and sends them back as JSON numbers
  const { message: sent, buffers } = actMessage(4, [], { p: last }, 0);
  const { message, buffers: received } = decodeEnvelope(encodeEnvelope(sent, buffers));
  const entry = message.policies.p;
  const states = Object.fromEntries(
    Object.entries(entry.states).map(([name, ref]) => {
      const t = tensorFromRef(ref, received);
      return [name, { data: Array.from(t.data), dims: t.shape }];
    }),
  );
  const after = await create({}, 11);
  after.resume("p", JSON.parse(JSON.stringify({ states, rng: entry.rng, steps: entry.steps })));
  assert.equal(entry.steps, 5);
  for (let k = 5; k < 12; k++) {
    const out = await after.step(observation(116, k), "p");
    assert.equal(out.action, original[k].action, `step ${k}`);
    assert.deepEqual(Array.from(out.logits), Array.from(original[k].logits));
  }
  const fresh = await create({}, 11);
  const diverged = [];
  for (let k = 5; k < 12; k++) diverged.push((await fresh.step(observation(116, k), "p")).logits[0] !== original[k].logits[0]);
  assert.ok(diverged.every(Boolean), "without resume the hidden state starts at zero: the logits differ");
  await assert.rejects(
    async () => after.resume("p", { states: { state_out_0: { data: [1], dims: [1] } }, rng: 1, steps: 1 }),
    /state 'state_out_0' needs 128 values/,
  );
});

test("boundaries follow reset_state", async () => {
  for (const [mode, episode, scene] of [
    ["episode", true, true],
    ["scene", false, true],
    ["never", false, false],
  ]) {
    const runtime = await create({ reset_state: mode });
    assert.equal(runtime.boundary("episode"), episode, mode);
    assert.equal(runtime.boundary("scene"), scene, mode);
  }
});

test("the batch-4 export runs declaratively with batch_size 4", async () => {
  const runtime = await PolicyRuntime.create({
    model: model("cogrid_lstm_batch4.onnx"),
    config: {
      ...LSTM_CONFIG,
      state_inputs: ["state_ins", "seq_lens"],
      state_outputs: ["state_outs", "170"],
      state_shapes: [
        [4, 128],
        [4, 128],
      ],
      fixed_inputs: {},
      batch_size: 4,
    },
  });
  const out = await runtime.step(observation(116, 0));
  assert.equal(out.logits.length, 7);
  assert.deepEqual(out.states.state_outs.dims, [4, 128]);
});

test("an ORT failure names the feeds sent and the graph's expectation", async () => {
  const runtime = await PolicyRuntime.create({
    model: model("cogrid_lstm_batch4.onnx"),
    config: { ...LSTM_CONFIG, state_inputs: ["state_ins", "seq_lens"], state_outputs: ["state_outs", "170"], state_shapes: null, fixed_inputs: {} },
    name: "cogrid",
  });
  await assert.rejects(runtime.step(observation(116, 0)), (error) => {
    assert.ok(error instanceof PolicyError);
    assert.equal(error.policy, "cogrid");
    assert.match(error.message, /^policy 'cogrid', agent 'agent_0', step 0: onnxruntime-web failed: /);
    assert.match(error.message, /feeds sent \(batch_size=1\):\n {4}obs {8}float32 {2}\[1, 116\]/);
    assert.match(error.message, /the model expects:\n {4}obs {8}float32 {2}\[batch_size, 116\]/);
    assert.match(error.message, /set batch_size/);
    return true;
  });
});

test("config names that are not in the model are reported", async () => {
  await assert.rejects(create({ state_inputs: ["state_in_O", "state_in_1"] }, 0, "p"), /policy 'p': state_inputs\[0\]: the model has no input 'state_in_O'/);
  await assert.rejects(create({ fixed_inputs: {} }, 0, "p"), /the model's input seq_lens float32 \[batch_size\] is not fed/);
});

test("a wrong observation size is named", async () => {
  const runtime = await create();
  await assert.rejects(runtime.step(new Float32Array(115)), /step 0: the observation has 115 values but input 'obs' takes 116 per row/);
});

test("a model that is not ONNX is reported", async () => {
  await assert.rejects(
    PolicyRuntime.create({ model: new Uint8Array([0, 1, 2, 3]), config: LSTM_CONFIG, name: "junk" }),
    /policy 'junk': onnxruntime-web cannot load the model/,
  );
});

test("a custom function that reports no states resumes from a saved entry without them (a reloaded page)", async () => {
  const sampler = "return { logits: [0, 0, 0, 0, 0, 0, 0] };"; // keeps no hidden state of its own
  const before = await create({ custom_inference_fn: sampler }, 3);
  for (let k = 0; k < 4; k++) await before.step(observation(116, k), "p");
  const after = await create({ custom_inference_fn: sampler }, 3);
  const { rng, steps } = before.position("p");
  after.resume("p", { states: {}, rng, steps });
  for (let k = 4; k < 8; k++) {
    assert.equal((await after.step(observation(116, k), "p")).action, (await before.step(observation(116, k), "p")).action);
  }
});
