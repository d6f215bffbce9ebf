#!/usr/bin/env node
/**
 * Run a policy over recorded observations and print one JSON line per step.
 *
 *   node policy-trace.mjs --model M.onnx --config C.json --obs O.json [--seed S] [--name N] [--wasm W]
 *
 * O.json is a JSON array; each entry is an observation, or
 * {"obs": <observation>, "agent": <id>, "reset": true} to pick the agent and
 * reset its state before the step. Each output line is
 * {"step", "agent", "action", "logits", "probs", "states": {name: [flat values]}};
 * a failure prints {"error", "step"} and exits 1. Python's parity checks
 * (`mug check-policy`, the test suite) read this output.
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { configureNodeOrt } from "../src/runtime/node.js";
import { PolicyRuntime, DEFAULT_AGENT } from "../src/runtime/index.js";

const { values } = parseArgs({
  options: {
    model: { type: "string" },
    config: { type: "string" },
    obs: { type: "string" },
    seed: { type: "string", default: "0" },
    name: { type: "string" },
    wasm: { type: "string" },
  },
});

function fail(message, step = null) {
  process.stdout.write(JSON.stringify({ error: message, step }) + "\n");
  process.exit(1);
}

for (const required of ["model", "config", "obs"]) if (!values[required]) fail(`--${required} is required`);

const plain = (view) => (view == null ? null : Array.from(view, Number));

let runtime;
try {
  configureNodeOrt(values.wasm);
  const config = JSON.parse(readFileSync(values.config, "utf8"));
  runtime = await PolicyRuntime.create({
    model: readFileSync(values.model),
    config,
    seed: Number(values.seed),
    name: values.name,
  });
} catch (error) {
  fail(error.message);
}

const steps = JSON.parse(readFileSync(values.obs, "utf8"));
const lines = [];
for (let i = 0; i < steps.length; i++) {
  const entry = steps[i];
  const record = entry && !Array.isArray(entry) && typeof entry === "object" && "obs" in entry ? entry : { obs: entry };
  const agent = record.agent ?? DEFAULT_AGENT;
  if (record.reset) runtime.reset(agent);
  try {
    const out = await runtime.step(record.obs, agent);
    const states = {};
    for (const [name, t] of Object.entries(out.states)) states[name] = plain(t.data);
    lines.push(JSON.stringify({ step: i, agent, action: out.action, logits: plain(out.logits), probs: plain(out.probs), states }));
  } catch (error) {
    process.stdout.write(lines.join("\n") + (lines.length ? "\n" : ""));
    fail(error.message, i);
  }
}
process.stdout.write(lines.join("\n") + (lines.length ? "\n" : ""));
