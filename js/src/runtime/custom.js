/**
 * The custom inference escape hatch: a JS function body from the config,
 * compiled once per runtime (policy × scene) and called each step.
 * @module runtime/custom
 */
import { PolicyError, errorText } from "./errors.js";

const AsyncFunction = (async () => {}).constructor;

/**
 * Compile `body` as `async (session, observation, modelConfig, context) => ...`.
 * @param {string} body
 * @param {string} policy the policy's name, for errors
 * @returns {Function}
 */
export function compileCustomFunction(body, policy) {
  try {
    return new AsyncFunction("session", "observation", "modelConfig", "context", body);
  } catch (error) {
    throw new PolicyError(`policy '${policy}': custom_inference_fn does not compile: ${errorText(error)}`, {
      policy,
      cause: error,
    });
  }
}

function isTensorLike(value) {
  return value && typeof value === "object" && "data" in value && ArrayBuffer.isView(value.data);
}

function asTensorLike(name, value, where, policy) {
  if (isTensorLike(value)) return { data: value.data, dims: Array.from(value.dims ?? [value.data.length]) };
  if (ArrayBuffer.isView(value)) return { data: value, dims: [value.length] };
  if (Array.isArray(value)) {
    const flat = value.flat(Infinity);
    return { data: Float32Array.from(flat), dims: [flat.length] };
  }
  throw new PolicyError(`${where}: custom_inference_fn returned states.${name} = ${typeof value}; expected a tensor, typed array or array`, {
    policy,
  });
}

/**
 * Check and normalise what a custom function returned.
 * @param {unknown} result a number (the action) or `{action?, logits?, probs?, states?}`
 * @param {{where: string, policy: string, numActions: number|null}} info
 * @returns {{action?: number, logits: Float32Array|null, probs: Float64Array|null, states: Object}}
 */
export function normalizeCustomResult(result, { where, policy, numActions }) {
  const expected = "an action (integer) or {action, logits?, states?}";
  let out;
  if (typeof result === "number") out = { action: result };
  else if (result && typeof result === "object" && !Array.isArray(result)) out = result;
  else throw new PolicyError(`${where}: custom_inference_fn returned ${Array.isArray(result) ? "an array" : String(result)}; expected ${expected}`, { policy });

  const logits = out.logits == null ? null : Float32Array.from(isTensorLike(out.logits) ? out.logits.data : out.logits);
  if (out.action === undefined && logits === null) {
    throw new PolicyError(`${where}: custom_inference_fn returned neither action nor logits; expected ${expected}`, { policy });
  }
  const limit = numActions ?? (logits ? logits.length : null);
  if (out.action !== undefined) {
    const a = out.action;
    if (typeof a !== "number" || !Number.isInteger(a) || a < 0 || (limit !== null && a >= limit)) {
      const range = limit === null ? "a non-negative integer" : `an integer in [0, ${limit})`;
      throw new PolicyError(`${where}: custom_inference_fn returned action ${JSON.stringify(a) ?? String(a)}; expected ${range}`, { policy });
    }
  }
  const states = {};
  for (const [name, value] of Object.entries(out.states ?? {})) states[name] = asTensorLike(name, value, where, policy);
  const probs = out.probs == null ? null : Float64Array.from(out.probs);
  return { action: out.action, logits, probs, states };
}
