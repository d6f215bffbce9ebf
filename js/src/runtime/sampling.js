/**
 * Seeded action choice, identical bit for bit to `mug/inference/sampling.py`
 * (whose docstring is the written-down algorithm): Mulberry32 streams seeded
 * per agent with FNV-1a, float64 softmax, in-order sums.
 * @module runtime/sampling
 */

/** The Mulberry32 32-bit generator; `state` is its whole state. */
export class Mulberry32 {
  /** @param {number} state unsigned 32-bit initial state */
  constructor(state) {
    this.state = state >>> 0;
  }

  /** @returns {number} the next 32-bit output */
  nextUint32() {
    const s = (this.state + 0x6d2b79f5) >>> 0;
    this.state = s;
    let t = Math.imul(s ^ (s >>> 15), s | 1) >>> 0;
    t = (t ^ (t + (Math.imul(t ^ (t >>> 7), t | 61) >>> 0))) >>> 0;
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** @returns {number} a float in [0, 1) */
  random() {
    return this.nextUint32() / 4294967296;
  }
}

const encoder = new TextEncoder();

/**
 * 32-bit FNV-1a of the UTF-8 bytes of `text`.
 * @param {string} text
 * @returns {number}
 */
export function fnv1a32(text) {
  let h = 0x811c9dc5;
  for (const byte of encoder.encode(text)) h = Math.imul(h ^ byte, 0x01000193) >>> 0;
  return h;
}

/**
 * Initial stream state of `agentId` in a runtime seeded with `seed`.
 * @param {number} seed
 * @param {string|number} agentId
 * @returns {number}
 */
export function agentSeed(seed, agentId) {
  return (seed ^ fnv1a32(String(agentId))) >>> 0;
}

function exps(logits, temperature) {
  const n = logits.length;
  const e = new Float64Array(n);
  let m = -Infinity;
  for (let i = 0; i < n; i++) {
    const z = logits[i] / temperature;
    e[i] = z;
    if (z > m) m = z;
  }
  let total = 0;
  for (let i = 0; i < n; i++) {
    e[i] = Math.exp(e[i] - m);
    total += e[i];
  }
  if (!Number.isFinite(total)) {
    throw new Error(`the logits are not all finite numbers: [${Array.from(logits).join(", ")}]`);
  }
  return { e, total };
}

function normalize(e, total) {
  for (let i = 0; i < e.length; i++) e[i] /= total;
  return e;
}

/**
 * Action probabilities (Float64Array) from logits.
 * @param {ArrayLike<number>} logits
 * @param {number} [temperature=1]
 * @returns {Float64Array}
 */
export function softmax(logits, temperature = 1) {
  const { e, total } = exps(logits, temperature);
  return normalize(e, total);
}

/**
 * Draw an action with one draw from `rng`.
 * @param {ArrayLike<number>} logits
 * @param {number} temperature
 * @param {Mulberry32} rng
 * @returns {{action: number, probs: Float64Array}}
 */
export function sampleAction(logits, temperature, rng) {
  const { e, total } = exps(logits, temperature);
  const target = rng.random() * total;
  let acc = 0;
  let action = e.length - 1;
  for (let i = 0; i < e.length; i++) {
    acc += e[i];
    if (target < acc) {
      action = i;
      break;
    }
  }
  return { action, probs: normalize(e, total) };
}

/**
 * The first index of the largest logit, with the probabilities.
 * @param {ArrayLike<number>} logits
 * @param {number} [temperature=1]
 * @returns {{action: number, probs: Float64Array}}
 */
export function argmaxAction(logits, temperature = 1) {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
  return { action: best, probs: softmax(logits, temperature) };
}
