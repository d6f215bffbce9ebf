/**
 * The `control` stream of one pair: exactly once and in order, across a switch from the direct DataChannel to
 * the server relay, and of any size. A DataChannel is reliable and ordered on its own, but messages in flight
 * when a pair moves to the relay may arrive late (over the old channel) or never (it closed): each control
 * envelope carries a sequence number, the receiver delivers in order, drops duplicates and acknowledges
 * cumulatively, and the sender keeps what is unacknowledged and sends it again over the new path, and, on the
 * relay (where the server may drop a message: rate limits, a target far behind), again on a timer until it is
 * acknowledged (see `Pair`, ./pair.js). A message whose JSON is longer than `MAX_PART` characters (a state
 * transfer, say) goes as several envelopes of parts of its text, joined again by the receiver (a DataChannel
 * message must stay under the SCTP message size). Sizes are UTF-16 code units of the JSON text (what
 * `String.length` counts): a part is at most 3 x `MAX_PART` bytes of UTF-8 (48 KiB), still well under the
 * SCTP message size and the server's relay cap.
 *
 * Bounds: at most `MAX_UNACKED` envelopes wait for their ack (a peer that stops acknowledging: `wrap` throws
 * a RangeError that says so, rather than growing without bound), and the receiver holds at most `MAX_HELD`
 * envelopes that came early (later ones are dropped, counted in `overflow`, and come again).
 *
 * Wire: `{k: "c", s: seq, d: message}`, or parts `{k: "c", s, p: text, more: true}` ... `{k: "c", s, p: text}`;
 * acks `{k: "a", s: highest seq delivered in order}`.
 * @module p2p/reliable
 */

/** Characters of JSON per envelope, at most (a message over this goes in parts). */
export const MAX_PART = 16 * 1024;
/** Envelopes sent and not yet acknowledged, at most (4096 x 16 K: a 64 M-character backlog). */
export const MAX_UNACKED = 4096;
/** Envelopes that came ahead of a missing one, held at most (the window past the last delivered). */
export const MAX_HELD = 4096;

/** The sending half: numbers envelopes and keeps them until acknowledged. */
export class ReliableOut {
  constructor() {
    this.next = 1;
    /** @type {{k: "c", s: number, d?: any, p?: string, more?: true}[]} unacknowledged, oldest first */
    this.unacked = [];
  }

  /**
   * Number `message` (in parts if it is long), keep its envelopes, and return them.
   * @param {any} message JSON-able
   */
  wrap(message) {
    const text = JSON.stringify(message);
    if (text === undefined) throw new TypeError("p2p control: the message is not JSON-able");
    const count = Math.max(1, Math.ceil(text.length / MAX_PART));
    if (this.unacked.length + count > MAX_UNACKED) {
      throw new RangeError(`p2p control: ${this.unacked.length} envelopes are unacknowledged (at most ${MAX_UNACKED}); the peer is not acknowledging`);
    }
    const envelopes = [];
    if (text.length <= MAX_PART) envelopes.push({ k: "c", s: this.next++, d: message });
    else {
      for (let at = 0; at < text.length; at += MAX_PART) {
        const envelope = { k: "c", s: this.next++, p: text.slice(at, at + MAX_PART) };
        if (at + MAX_PART < text.length) envelope.more = true;
        envelopes.push(envelope);
      }
    }
    this.unacked.push(...envelopes);
    return envelopes;
  }

  /**
   * The peer delivered everything up to `seq`; whether that acknowledged anything new.
   * @param {number} seq
   * @returns {boolean}
   */
  ack(seq) {
    let i = 0;
    while (i < this.unacked.length && this.unacked[i].s <= seq) i += 1;
    if (i) this.unacked.splice(0, i);
    return i > 0;
  }
}

/** The receiving half: delivers in order, holds what came early, drops what came twice, joins parts. */
export class ReliableIn {
  constructor() {
    this.delivered = 0;
    /** @type {Map<number, Object>} */
    this.held = new Map();
    this.parts = [];
    /** Envelopes dropped because they came more than `MAX_HELD` ahead (they come again). */
    this.overflow = 0;
  }

  /**
   * One arrived envelope; returns the messages now complete, in order (none for a duplicate).
   * @param {{s: number, d?: any, p?: string, more?: boolean}} envelope
   * @returns {any[]}
   */
  accept(envelope) {
    const s = envelope.s;
    if (!Number.isInteger(s) || s <= this.delivered || this.held.has(s)) return [];
    if (s > this.delivered + MAX_HELD) {
      this.overflow += 1;
      return [];
    }
    this.held.set(s, envelope);
    const out = [];
    while (this.held.has(this.delivered + 1)) {
      this.delivered += 1;
      const next = this.held.get(this.delivered);
      this.held.delete(this.delivered);
      if (typeof next.p !== "string") {
        out.push(next.d);
        continue;
      }
      this.parts.push(next.p);
      if (next.more) continue;
      const text = this.parts.join("");
      this.parts = [];
      try {
        out.push(JSON.parse(text));
      } catch {
        console.warn("MUG p2p: dropped a control message whose parts do not join into JSON");
      }
    }
    return out;
  }
}
