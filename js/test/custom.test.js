import assert from "node:assert/strict";
import { test } from "node:test";
import { PolicyError, PolicyRuntime } from "../src/runtime/index.js";
import { LSTM_CONFIG, model, observation } from "./helpers.js";

const slime = model("slime_volleyball_mlp.onnx");
const SLIME_CONFIG = { ...LSTM_CONFIG, state_inputs: [], state_outputs: [], state_shapes: [], fixed_inputs: { state_ins: 1 }, num_actions: 6 };
const custom = (body, extra = {}) =>
  PolicyRuntime.create({ model: slime, config: { ...SLIME_CONFIG, custom_inference_fn: body, ...extra }, name: "slime" });

// Runs the model itself, like the declarative path.
const RUN_MODEL = `
  const obs = context.flatten(observation);
  const out = await session.run({
    obs: new context.ort.Tensor("float32", Float32Array.from(obs), [1, obs.length]),
    state_ins: new context.ort.Tensor("float32", Float32Array.of(1), [1]),
  });
  context.state.calls = (context.state.calls ?? 0) + 1;
  return { logits: out.output.data, states: { calls: [context.state.calls] } };
`;

test("a custom function returning logits gets the runtime's action rule", async () => {
  const viaCustom = await custom(RUN_MODEL);
  const declarative = await PolicyRuntime.create({ model: slime, config: SLIME_CONFIG });
  for (let k = 0; k < 20; k++) {
    const a = await viaCustom.step(observation(12, k));
    const b = await declarative.step(observation(12, k));
    assert.equal(a.action, b.action);
    assert.deepEqual(Array.from(a.logits), Array.from(b.logits));
    assert.deepEqual(Array.from(a.states.calls.data), [k + 1]);
  }
});

test("custom state is per agent, reset, and snapshotted", async () => {
  const runtime = await custom(RUN_MODEL);
  await runtime.step(observation(12, 0), "a");
  await runtime.step(observation(12, 0), "a");
  const snap = runtime.snapshot();
  assert.deepEqual(Array.from((await runtime.step(observation(12, 0), "b")).states.calls.data), [1]);
  assert.deepEqual(Array.from((await runtime.step(observation(12, 0), "a")).states.calls.data), [3]);
  runtime.restore(snap);
  assert.deepEqual(Array.from((await runtime.step(observation(12, 0), "a")).states.calls.data), [3]);
  runtime.reset("a");
  assert.deepEqual(Array.from((await runtime.step(observation(12, 0), "a")).states.calls.data), [1]);
});

test("context.random is the agent's seeded stream", async () => {
  const body = "return Math.floor(context.random() * 6);";
  const one = await custom(body);
  const two = await custom(body);
  const a = [];
  const b = [];
  for (let k = 0; k < 10; k++) {
    a.push((await one.step([0], "x")).action);
    b.push((await two.step([0], "x")).action);
  }
  assert.deepEqual(a, b);
});

const FAILURES = [
  ["a syntax error", "return {action: ;", /^policy 'slime': custom_inference_fn does not compile: SyntaxError: /],
  ["a throw", "throw new Error('no ball in view');", /^policy 'slime', agent 'agent_0', step 0: custom_inference_fn threw Error: no ball in view$/],
  ["a TypeError", "return observation.nope.deeper;", /custom_inference_fn threw TypeError: Cannot read properties of undefined/],
  ["an out-of-range action", "return 9;", /custom_inference_fn returned action 9; expected an integer in \[0, 6\)/],
  ["a negative action", "return {action: -1};", /returned action -1; expected an integer in \[0, 6\)/],
  ["a fractional action", "return 1.5;", /returned action 1.5; expected an integer/],
  ["nothing", "return;", /custom_inference_fn returned undefined; expected an action \(integer\) or \{action, logits\?, states\?\}/],
  ["an object without action or logits", "return {states: {}};", /returned neither action nor logits/],
  ["a bad state value", "return {action: 0, states: {h: 'x'}};", /returned states.h = string; expected a tensor, typed array or array/],
];

for (const [what, body, message] of FAILURES) {
  test(`a custom function with ${what} is reported with the policy name and the JS message`, async () => {
    const attempt = async () => (await custom(body)).step(observation(12, 0));
    await assert.rejects(attempt, (error) => {
      assert.ok(error instanceof PolicyError, String(error));
      assert.equal(error.policy, "slime");
      assert.match(error.message, message);
      return true;
    });
  });
}
