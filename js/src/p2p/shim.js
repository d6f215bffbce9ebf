/**
 * A test transport shim: latency, jitter and loss on what one side sends over a channel, injected in the app's
 * own transport (the browser's network throttling does not reach DataChannels). Used by the unit tests, by
 * end-to-end tests through the `p2p` message's `options.shim`, and for a notebook latency setting.
 *
 * Each message is delayed by `latencyMs` plus a uniform draw in [-jitterMs, +jitterMs] (never below 0).
 * On an unordered channel a message is dropped with probability `loss` and may overtake earlier ones; on an
 * ordered (reliable) channel nothing is dropped and nothing overtakes (a message waits for the one before).
 * Draws come from a seeded generator, so a run can be repeated. Delays are timers: in a hidden tab the browser
 * may hold them up to a second.
 * @module p2p/shim
 */

/**
 * A seeded uniform generator on [0, 1) (mulberry32).
 * @param {number} seed
 * @returns {() => number}
 */
export function seededRandom(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Delays and drops messages of one direction of one channel (see module docs). */
export class Shim {
  /**
   * @param {{latencyMs?: number, jitterMs?: number, loss?: number, seed?: number, ordered?: boolean,
   *   now?: () => number, setTimeout?: (fn: Function, ms: number) => any}} [options]
   */
  constructor({ latencyMs = 0, jitterMs = 0, loss = 0, seed = 1, ordered = false, now, setTimeout: setTimer } = {}) {
    for (const [name, v] of [["latencyMs", latencyMs], ["jitterMs", jitterMs]]) {
      if (!(Number.isFinite(v) && v >= 0)) throw new RangeError(`shim: ${name} must be a number >= 0, got ${v}`);
    }
    if (!(Number.isFinite(loss) && loss >= 0 && loss < 1)) throw new RangeError(`shim: loss must be in [0, 1), got ${loss}`);
    Object.assign(this, { latencyMs, jitterMs, loss, ordered });
    this.random = seededRandom(seed);
    this.now = now ?? (() => performance.now());
    this.setTimer = setTimer ?? ((fn, ms) => setTimeout(fn, ms));
    this.last = -Infinity; // when the previous message of an ordered channel is delivered
    /** Messages passed and dropped so far. */
    this.counts = { passed: 0, dropped: 0 };
  }

  /**
   * Send `payload` through the shim: `deliver(payload)` runs later, or never (lost).
   * @template T
   * @param {T} payload
   * @param {(payload: T) => void} deliver
   */
  pass(payload, deliver) {
    if (!this.ordered && this.loss > 0 && this.random() < this.loss) {
      this.counts.dropped += 1;
      return;
    }
    this.counts.passed += 1;
    const delay = Math.max(0, this.latencyMs + (this.jitterMs ? (2 * this.random() - 1) * this.jitterMs : 0));
    let at = this.now() + delay;
    if (this.ordered) at = this.last = Math.max(at, this.last);
    const wait = at - this.now();
    if (wait <= 0 && !this.ordered) deliver(payload);
    else this.setTimer(() => deliver(payload), Math.max(0, wait));
  }
}

/**
 * Wrap an object with `send(data)` (a DataChannel, say) so what is sent goes through a `Shim`.
 * @param {{send: (data: any) => void}} channel
 * @param {ConstructorParameters<typeof Shim>[0]} options
 * @returns {{send: (data: any) => void, shim: Shim}}
 */
export function shimmed(channel, options) {
  const shim = new Shim(options);
  return { shim, send: (data) => shim.pass(data, (d) => channel.send(d)) };
}
