/** Shared by the JS tests: ORT configured for Node and the real ONNX fixtures. */
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { configureNodeOrt } from "../src/runtime/node.js";

configureNodeOrt();

export const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "tests", "fixtures", "onnx");

/** @param {string} name fixture file name */
export const model = (name) => readFileSync(join(FIXTURES, name));

/** Config of overcooked_lstm_rllib.onnx as `ModelConfig.from_onnx` infers it. */
export const LSTM_CONFIG = {
  onnx_path: "overcooked_lstm_rllib.onnx",
  obs_input: "obs",
  logit_output: "output",
  state_inputs: ["state_in_0", "state_in_1"],
  state_outputs: ["state_out_0", "state_out_1"],
  state_shapes: [
    [1, 128],
    [1, 128],
  ],
  fixed_inputs: { seq_lens: 1 },
  batch_size: 1,
  action: "sample",
  temperature: 1.0,
  custom_inference_fn: null,
  reset_state: "episode",
  num_actions: 7,
};

/** Deterministic pseudo-observations of length `n` (not the sampling PRNG). */
export function observation(n, k) {
  return Float32Array.from({ length: n }, (_, i) => Math.sin(0.37 * i + 1.3 * k));
}
