/**
 * The `control` stream of one pair: exactly once and in order, across a switch from the direct DataChannel to
 * the server relay. A DataChannel is reliable and ordered on its own, but messages in flight when a pair moves
 * to the relay may arrive late (over the old channel) or never (it closed): each control message carries a
 * sequence number, the receiver delivers in order, drops duplicates and acknowledges cumulatively, and the
 * sender keeps what is unacknowledged and sends it again over the new path.
 *
 * Wire: `{k: "c", s: seq, d: message}` and `{k: "a", s: highest seq delivered in order}`.
 * @module p2p/reliable
 */

/** The sending half: numbers messages and keeps them until acknowledged. */
export class ReliableOut {
  constructor() {
    this.next = 1;
    /** @type {{k: "c", s: number, d: any}[]} unacknowledged, oldest first */
    this.unacked = [];
  }

  /**
   * Number `message`, keep it, and return its envelope.
   * @param {any} message
   */
  wrap(message) {
    const envelope = { k: "c", s: this.next++, d: message };
    this.unacked.push(envelope);
    return envelope;
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

/** The receiving half: delivers in order, holds what came early, drops what came twice. */
export class ReliableIn {
  constructor() {
    this.delivered = 0;
    /** @type {Map<number, any>} */
    this.held = new Map();
  }

  /**
   * One arrived envelope; returns the messages now deliverable, in order (none for a duplicate).
   * @param {{s: number, d: any}} envelope
   * @returns {any[]}
   */
  accept({ s, d }) {
    if (!Number.isInteger(s) || s <= this.delivered || this.held.has(s)) return [];
    this.held.set(s, d);
    const out = [];
    while (this.held.has(this.delivered + 1)) {
      this.delivered += 1;
      out.push(this.held.get(this.delivered));
      this.held.delete(this.delivered);
    }
    return out;
  }
}
