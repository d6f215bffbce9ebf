/**
 * The browser policy runtime: what participants' pages and the notebook
 * preview both run.
 * @module runtime
 */
export { PolicyRuntime, DEFAULT_AGENT } from "./policy-runtime.js";
export { PolicyError } from "./errors.js";
export { configureOrt, ort } from "./ort.js";
export { Mulberry32, agentSeed, fnv1a32, softmax, sampleAction, argmaxAction } from "./sampling.js";
