/**
 * Meshes of several seats in one page, signalled in the page instead of through the server: the rules of
 * `mug/server/matches/signal.py` (epochs per page, signals and relay only between joined seats, relay only for
 * a pair declared relayed, each declaration recorded once (and each return to direct), messages for pages that are gone dropped; not its
 * rate and size limits) for a notebook that shows several peers side by side. With `RTC: null` in the mesh
 * options every pair is relayed in the page (no WebRTC at all), and a mesh `shim` gives the pairs latency,
 * jitter and loss.
 * @module p2p/local
 */
import { Mesh } from "./mesh.js";

/** The "server" of meshes in one page (see module docs). */
export class LocalHub {
  /**
   * @param {string[]} seats every seat, in the scene's order
   * @param {{serverRttMs?: Object<string, number>, setTimeout?: (fn: Function, ms: number) => any}} [o]
   *   `serverRttMs`: each seat's round trip to the "server" (the relay's cost); `setTimeout`: what delivers
   *   the hub's messages a task later (tests pass a manual clock's)
   */
  constructor(seats, { serverRttMs = {}, setTimeout: setTimer } = {}) {
    this.seats = [...seats];
    this.serverRttMs = serverRttMs;
    this.setTimer = setTimer ?? ((fn, ms) => setTimeout(fn, ms));
    this.epochs = {};
    this.epoch = 0;
    /** @type {Object<string, Mesh>} */
    this.meshes = {};
    this.relayed = new Set();
    /** Relayed pairs whose ends said `p2p_direct`: which ends (un-relayed once both did). */
    this.direct = new Map();
    /** The `p2p_relay` declarations `{pair: [seat, seat], reason, by}`, once per pair of pages, and the
     * `p2p_direct` returns `{pair, direct: true, by, attempt}`. */
    this.events = [];
    /** Called with (seat, message) for every message a mesh sends to the hub (for tests and traces). */
    this.tap = () => {};
  }

  /**
   * Open a page for `seat` (closing the one it had): its mesh joins.
   * @param {string} seat
   * @param {Object} [options] `Mesh` options
   * @returns {Mesh}
   */
  open(seat, options = {}) {
    this.meshes[seat]?.close();
    const mesh = new Mesh({ seat, seats: this.seats, sendToServer: (m) => this.handle(seat, m), ...options });
    this.meshes[seat] = mesh;
    this.handle(seat, { type: "p2p_join" });
    return mesh;
  }

  /**
   * `seat`'s page closed: out of the mesh.
   * @param {string} seat
   */
  leave(seat) {
    this.meshes[seat]?.close();
    delete this.meshes[seat];
    delete this.epochs[seat];
    this.roster();
  }

  roster() {
    const current = new Set(Object.entries(this.epochs).map(([s, e]) => `${s}@${e}`));
    for (const key of this.relayed) if (!key.split("|").every((page) => current.has(page))) this.relayed.delete(key);
    const peers = Object.fromEntries(this.seats.map((s) => [s, this.epochs[s] ?? null]));
    for (const seat of Object.keys(this.epochs)) this.deliver(seat, { type: "p2p_peers", peers, server_rtt_ms: this.serverRttMs });
  }

  deliver(seat, message) {
    const mesh = this.meshes[seat];
    const copy = structuredClone(message); // as if it went over a socket
    this.setTimer(() => mesh && !mesh.closed && mesh.receive(copy), 0);
  }

  pairKey(a, b) {
    return [`${a}@${this.epochs[a]}`, `${b}@${this.epochs[b]}`].sort().join("|");
  }

  /**
   * A message of `from`'s mesh (what the server's `MatchSignals.handle` gets).
   * @param {string} from
   * @param {Object} message
   */
  handle(from, message) {
    this.tap(from, message);
    if (message.type === "p2p_join") {
      this.epochs[from] = ++this.epoch;
      this.roster();
      return;
    }
    if (!(from in this.epochs)) return;
    if (message.type === "relay") {
      for (const batch of message.batches ?? [message]) {
        if (this.current(from, batch.to, batch.e) && this.relayed.has(this.pairKey(from, batch.to))) {
          this.deliver(batch.to, { type: "relay", from, channel: batch.channel, data: batch.data, e: this.pageEpochs(from, batch.to) });
        }
      }
      return;
    }
    const to = message.to;
    if (!this.current(from, to, message.e)) return;
    if (message.type === "signal") this.deliver(to, { type: "signal", from, data: message.data });
    else if (message.type === "p2p_relay") {
      const key = this.pairKey(from, to);
      if (this.relayed.has(key)) return;
      this.relayed.add(key);
      this.direct.delete(key);
      this.events.push({ pair: [from, to].sort(), reason: message.reason, by: from });
      this.deliver(to, { type: "p2p_relay", from, reason: message.reason, e: this.pageEpochs(from, to) });
    } else if (message.type === "p2p_direct") {
      const key = this.pairKey(from, to);
      if (!this.relayed.has(key)) return;
      const ends = this.direct.get(key) ?? new Set();
      this.direct.set(key, ends.add(from));
      if (ends.size === 2) {
        this.relayed.delete(key); // both ends use the new connection
        this.direct.delete(key);
      }
      if (ends.size === 1) this.events.push({ pair: [from, to].sort(), direct: true, by: from, attempt: message.attempt });
    }
  }

  /** Whether `to` is another joined seat and epochs `e` (if given) are `from`'s and `to`'s pages now. */
  current(from, to, e) {
    if (!(to in this.epochs) || to === from) return false;
    return e === undefined || (Array.isArray(e) && e[0] === this.epochs[from] && e[1] === this.epochs[to]);
  }

  pageEpochs(from, to) {
    return [this.epochs[from], this.epochs[to]];
  }
}
