/**
 * JS half of benchmarks/inference.py: PolicyRuntime.step vs a bare
 * session.run with the same feeds, alternating rounds; prints one JSON line
 * {bare, step} with median seconds per step.
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { configureNodeOrt } from "../js/src/runtime/node.js";
import { PolicyRuntime, ort } from "../js/src/runtime/index.js";

const { values } = parseArgs({ options: { model: { type: "string" }, steps: { type: "string" }, rounds: { type: "string" } } });
const steps = Number(values.steps);
const rounds = Number(values.rounds);
configureNodeOrt();
const bytes = readFileSync(values.model);
const config = {
  onnx_path: values.model,
  obs_input: "obs",
  logit_output: "output",
  state_inputs: ["state_in_0", "state_in_1"],
  state_outputs: ["state_out_0", "state_out_1"],
  state_shapes: [[1, 128], [1, 128]],
  fixed_inputs: { seq_lens: 1 },
  batch_size: 1,
  action: "sample",
  temperature: 1,
  reset_state: "episode",
};
const runtime = await PolicyRuntime.create({ model: bytes, config });
const session = await ort.InferenceSession.create(bytes, { executionProviders: ["wasm"] });
const obs = Float32Array.from({ length: 116 }, (_, i) => Math.sin(i));
const first = await runtime.step(obs);
const feeds = {
  obs: new ort.Tensor("float32", obs, [1, 116]),
  state_in_0: first.states.state_out_0,
  state_in_1: first.states.state_out_1,
  seq_lens: new ort.Tensor("float32", Float32Array.of(1), [1]),
};
const fetches = ["output", "state_out_0", "state_out_1"];
for (let i = 0; i < 3000; i++) {
  await session.run(feeds, fetches);
  await runtime.step(obs);
}
const bare = [];
const step = [];
for (let r = 0; r < rounds; r++) {
  if (r % 50 === 0) runtime.reset();
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) await session.run(feeds, fetches);
  const t1 = performance.now();
  for (let i = 0; i < steps; i++) await runtime.step(obs);
  const t2 = performance.now();
  bare.push((t1 - t0) / steps / 1000);
  step.push((t2 - t1) / steps / 1000);
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
console.log(JSON.stringify({ bare: median(bare), step: median(step) }));
