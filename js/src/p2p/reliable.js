/**
 * The `control` stream of one pair: exactly once and in order, across a switch from the direct DataChannel to
 * the server relay, and of any size. A DataChannel is reliable and ordered on its own, but messages in flight
 * when a pair moves to the relay may arrive late (over the old channel) or never (it closed): each control
 * envelope carries a sequence number, the receiver delivers in order, drops duplicates and acknowledges
 * cumulatively, and the sender keeps what is unacknowledged and sends it again over the new path. A message
 * whose JSON is longer than `MAX_PART` characters (a state transfer, say) goes as several envelopes of parts
 * of its text, joined again by the receiver (a DataChannel message must stay under the SCTP message size).
 *
 * Wire: `{k: "c", s: seq, d: message}`, or parts `{k: "c", s, p: text, more: true}` ... `{k: "c", s, p: text}`;
 * acks `{k: "a", s: highest seq delivered in order}`.
 * @module p2p/reliable
 */

/** Characters of JSON per envelope, at most (a message over this goes in parts). */
export const MAX_PART = 16 * 1024;

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
   * The peer delivered everything up to `seq`.
   * @param {number} seq
   */
  ack(seq) {
    let i = 0;
    while (i < this.unacked.length && this.unacked[i].s <= seq) i += 1;
    if (i) this.unacked.splice(0, i);
  }
}

/** The receiving half: delivers in order, holds what came early, drops what came twice, joins parts. */
export class ReliableIn {
  constructor() {
    this.delivered = 0;
    /** @type {Map<number, Object>} */
    this.held = new Map();
    this.parts = [];
  }

  /**
   * One arrived envelope; returns the messages now complete, in order (none for a duplicate).
   * @param {{s: number, d?: any, p?: string, more?: boolean}} envelope
   * @returns {any[]}
   */
  accept(envelope) {
    const s = envelope.s;
    if (!Number.isInteger(s) || s <= this.delivered || this.held.has(s)) return [];
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
