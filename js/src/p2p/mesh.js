/**
 * The peer-to-peer mesh of one match: a `Pair` (./pair.js) with every other member's page (2-4 members), all
 * signalled through the participant WebSocket; each pair sends directly over WebRTC or, when that does not
 * work well, through the server (relay) — the same `send`/`onmessage` either way; a relayed pair may go back
 * to direct (./pair.js).
 *
 * Server side and wire: `mug/server/matches/signal.py`. The page starts a mesh on the server's `p2p` message
 * (see ./page.js), says `p2p_join`, and the server's `p2p_peers` (which seats' pages run the mesh, with an
 * epoch per page) makes and closes pairs: a pair lives as long as both pages' epochs, so a peer who reloads
 * is connected anew. Signals carry both epochs (`data.e = [sender's, receiver's]`), and so do `p2p_relay` and
 * each relayed batch (`e`, checked by the server and again here): what was meant for an old page is dropped.
 * What is relayed goes in one `relay` message per task for every peer and channel (`batches`, which the server
 * fans out), as large as `MAX_RELAY_BATCH` bytes of UTF-8 JSON (more goes in further messages).
 *
 * Channels: `inputs` is unordered and unreliable (a message may be lost, duplicated never); `control` is
 * reliable, ordered and exactly once, also across a switch to the relay (./reliable.js).
 *
 * Relayed traffic has budgets of its own on the server (`mug/server/matches/signal.py`: messages and bytes a
 * second per page), not the tab's `messages_per_second`: a game that sends every peer an inputs message per
 * frame at 30 fps, with every pair relayed, sends about 30 `relay` messages a second whatever the number of
 * peers, plus its pings (2 a second per peer at the default `pingEveryMs`) and the acks of control it gets.
 * What the server drops of `control` goes again (./pair.js); `inputs` are unreliable anyway.
 *
 * Options are checked (`checkOptions`): an unknown one or one out of range is a TypeError or RangeError.
 * @module p2p/mesh
 */
import { Pair } from "./pair.js";

/** Whether epochs `e` of a server message (`[sender's, receiver's]`) are those of `pair`. */
const current = (pair, e) => Boolean(pair) && Array.isArray(e) && e[0] === pair.epochs[1] && e[1] === pair.epochs[0];

/** Channels of every pair. */
export const CHANNELS = ["inputs", "control"];
/** Bytes (UTF-8 JSON) of relayed envelopes per `relay` message, at most (one envelope larger goes alone). */
export const MAX_RELAY_BATCH = 64 * 1024;

const DEFAULTS = { connectTimeoutMs: 10_000, pingEveryMs: 500, maxRttMs: 300, rttViolations: 5, lostGraceMs: 1000, retryDirectMs: 30_000, shim: null };
const finite = (min) => (v) => Number.isFinite(v) && v >= min;
const CHECKS = {
  connectTimeoutMs: finite(1),
  pingEveryMs: finite(1),
  maxRttMs: (v) => v === null || finite(0)(v),
  rttViolations: (v) => Number.isInteger(v) && v >= 1,
  lostGraceMs: finite(0),
  retryDirectMs: (v) => v === null || finite(1)(v),
  shim: (v) => v === null || (typeof v === "object" && !Array.isArray(v)),
};
const encoder = new TextEncoder();
const bytes = (value) => encoder.encode(JSON.stringify(value)).length;

/**
 * The mesh's tunable options with their defaults filled in; TypeError for an unknown one, RangeError for a
 * value out of range (see `Mesh`).
 * @param {Object} options
 * @returns {typeof DEFAULTS}
 */
export function checkOptions(options) {
  for (const [key, value] of Object.entries(options)) {
    if (!(key in CHECKS)) throw new TypeError(`p2p mesh: unknown option ${key}; options: ${Object.keys(CHECKS).join(", ")}`);
    if (!CHECKS[key](value)) throw new RangeError(`p2p mesh: option ${key}=${JSON.stringify(value)} is out of range`);
  }
  return { ...DEFAULTS, ...options };
}

/** The peer-to-peer mesh of one match, as one page sees it (see module docs). */
export class Mesh {
  /**
   * @param {Object} o
   * @param {string} o.seat this page's seat
   * @param {string[]} o.seats every member's seat, in the scene's order (the lower index offers)
   * @param {(message: Object) => void} o.sendToServer sends a message on the participant WebSocket
   * @param {RTCIceServer[]} [o.iceServers] from the deployment (default none: host candidates only)
   * @param {number} [o.connectTimeoutMs] a pair not open by then goes to the relay (10 s)
   * @param {number} [o.pingEveryMs] round-trip pings per pair (500 ms)
   * @param {number|null} [o.maxRttMs] a direct round trip above this ... (300 ms; null: never on RTT)
   * @param {number} [o.rttViolations] ... for this many pings in a row moves the pair to the relay if the
   *   relay is estimated faster (the two members' round trips to the server added) (5)
   * @param {number} [o.lostGraceMs] wait after an open connection closes before relaying (1 s)
   * @param {number|null} [o.retryDirectMs] a pair relayed for a connection that did not open, failed or was
   *   lost tries a direct one again this much later, doubling after each failed attempt (30 s; null: never)
   * @param {{latencyMs?: number, jitterMs?: number, loss?: number, seed?: number}|null} [o.shim] a test
   *   shim (./shim.js) on what this page sends: latency and jitter on both channels, loss on `inputs`
   * @param {Function|null} [o.RTC] RTCPeerConnection (tests pass a fake); null: no WebRTC, every pair is
   *   relayed (left out or undefined: the browser's `RTCPeerConnection`, null if it has none)
   * @param {() => number} [o.now] clock in ms
   * @param {{setTimeout: Function, clearTimeout: Function, setInterval: Function, clearInterval: Function}} [o.timers]
   */
  constructor({ seat, seats, sendToServer, iceServers = [], RTC, now, timers, ...options }) {
    if (!seats.includes(seat)) throw new Error(`p2p mesh: seat ${seat} is not one of ${seats.join(", ")}`);
    if (RTC === undefined) RTC = globalThis.RTCPeerConnection ?? null;
    if (RTC !== null && typeof RTC !== "function") throw new TypeError("p2p mesh: RTC must be a constructor or null");
    Object.assign(this, { seat, seats: [...seats], sendToServer, RTC });
    this.config = { ...checkOptions(options), iceServers };
    this.now = now ?? (() => performance.now());
    this.timers = timers ?? {
      setTimeout: (fn, ms) => setTimeout(fn, ms),
      clearTimeout: (id) => clearTimeout(id),
      setInterval: (fn, ms) => setInterval(fn, ms),
      clearInterval: (id) => clearInterval(id),
    };
    /** @type {Map<string, Pair>} */
    this.pairs = new Map();
    this.serverRtt = {};
    this.closed = false;
    /** What to relay at the end of this task: `{pair, channel, envelope}`, in order. */
    this.outgoing = [];
    /** Called with (seat, channel, message) for every message from a peer. */
    this.onmessage = () => {};
    /** Called with (seat, state, reason) when a pair changes state (`connecting`, `open`, `relay`, `closed`). */
    this.onstate = () => {};
  }

  /** The other members' seats. */
  get peers() {
    return this.seats.filter((s) => s !== this.seat);
  }

  /**
   * Send `message` (JSON-able) to `seat` on `channel`; false if there is no pair with that seat now.
   * @param {string} seat
   * @param {"inputs"|"control"} channel
   * @param {any} message
   * @returns {boolean}
   */
  send(seat, channel, message) {
    if (!CHANNELS.includes(channel)) throw new TypeError(`p2p mesh: channel must be one of ${CHANNELS}, got ${channel}`);
    const pair = this.pairs.get(seat);
    return pair ? pair.send(channel, message) : false;
  }

  /**
   * Send `message` to every peer with a pair; returns the seats it went to.
   * @param {"inputs"|"control"} channel
   * @param {any} message
   */
  broadcast(channel, message) {
    return this.peers.filter((seat) => this.send(seat, channel, message));
  }

  /**
   * The pair with `seat`: `absent` (its page is not in the mesh), `connecting`, `open`, `relay`.
   * @param {string} seat
   */
  state(seat) {
    const pair = this.pairs.get(seat);
    return pair ? pair.state : "absent";
  }

  /**
   * Round trips with `seat` on the pair's current path (see `Pair.rtt`), null without a pair.
   * @param {string} seat
   */
  rtt(seat) {
    return this.pairs.get(seat)?.rtt() ?? null;
  }

  /**
   * Every peer: `{seat: {state, reason, rtt, unacked, resends, overflow, returns}}`: `unacked` control
   * envelopes wait for the peer's ack, `resends` times they went again on the relay, `overflow` envelopes of the
   * peer's that came too far ahead and were dropped (they come again), `returns` times the pair went back from
   * the relay to a direct connection; the last four are 0 without a pair.
   */
  stats() {
    return Object.fromEntries(
      this.peers.map((seat) => {
        const pair = this.pairs.get(seat);
        const counts = {
          unacked: pair?.out.unacked.length ?? 0,
          resends: pair?.resends ?? 0,
          overflow: pair?.in.overflow ?? 0,
          returns: pair?.returns ?? 0,
        };
        return [seat, { state: this.state(seat), reason: pair?.reason ?? null, rtt: this.rtt(seat), ...counts }];
      }),
    );
  }

  /**
   * A message from the server: `p2p_peers`, `signal`, `relay` or `p2p_relay` (malformed ones are dropped with a warning).
   * @param {Object} message
   */
  receive(message) {
    if (this.closed) return;
    const pair = this.pairs.get(message.from);
    switch (message.type) {
      case "p2p_peers":
        if (message.peers && typeof message.peers === "object") this.roster(message.peers, message.server_rtt_ms);
        else console.warn("MUG p2p: p2p_peers without peers");
        return;
      case "signal":
        if (current(pair, message.data?.e)) pair.onSignal(message.data);
        else console.warn(`MUG p2p: dropped a signal from ${message.from} (no pair, or an old page's)`);
        return;
      case "relay":
        if (current(pair, message.e) && CHANNELS.includes(message.channel) && Array.isArray(message.data)) for (const e of message.data) pair.arrive(e);
        else console.warn(`MUG p2p: dropped a relay message from ${message.from} (no pair, an old page's, or malformed)`);
        return;
      case "p2p_relay":
        if (current(pair, message.e)) pair.toRelay(String(message.reason), { announce: false });
        else console.warn(`MUG p2p: dropped a p2p_relay from ${message.from} (no pair, or an old page's)`);
        return;
      default:
        console.warn(`MUG p2p: unexpected message ${message.type}`);
    }
  }

  /**
   * Which seats' pages run the mesh now (`{seat: epoch|null}`); makes and closes pairs.
   * @param {Object<string, number|null>} peers
   * @param {Object<string, number|null>} [serverRtt] each member's round trip to the server (ms)
   */
  roster(peers, serverRtt = {}) {
    this.serverRtt = serverRtt ?? {};
    const mine = peers[this.seat] ?? null;
    for (const seat of this.peers) {
      const theirs = peers[seat] ?? null;
      const pair = this.pairs.get(seat);
      if (pair && (pair.epochs[0] !== mine || pair.epochs[1] !== theirs)) {
        this.pairs.delete(seat);
        pair.close();
      }
      if (!this.pairs.has(seat) && mine !== null && theirs !== null) {
        const fresh = new Pair(this, seat, { offerer: this.seats.indexOf(this.seat) < this.seats.indexOf(seat), epochs: [mine, theirs] });
        this.pairs.set(seat, fresh);
        this._changed(fresh);
        fresh.start();
      }
    }
  }

  /** Close every pair (the match is over for this page). */
  close() {
    this.closed = true;
    for (const pair of this.pairs.values()) pair.close();
    this.pairs.clear();
  }

  // -- what pairs call --------------------------------------------------------------------

  _signal(pair, data) {
    this.sendToServer({ type: "signal", to: pair.seat, data: { ...data, e: pair.epochs } });
  }

  _declare(pair, reason, rttMs) {
    this.sendToServer({ type: "p2p_relay", to: pair.seat, reason, rtt_ms: rttMs, e: pair.epochs });
  }

  _declareDirect(pair) {
    this.sendToServer({ type: "p2p_direct", to: pair.seat, attempt: pair.attempt, e: pair.epochs });
  }

  _relay(pair, channel, envelope) {
    this.outgoing.push({ pair, channel, envelope });
    if (this.outgoing.length === 1) queueMicrotask(() => this._flushRelay());
  }

  /** What this task relays, to every peer on every channel: one `relay` message of `batches` per `MAX_RELAY_BATCH` bytes. */
  _flushRelay() {
    const outgoing = this.outgoing;
    this.outgoing = [];
    if (this.closed) return;
    let batches = new Map();
    let size = 0;
    const send = () => {
      if (batches.size) this.sendToServer({ type: "relay", batches: [...batches.values()] });
      batches = new Map();
      size = 0;
    };
    for (const { pair, channel, envelope } of outgoing) {
      if (this.pairs.get(pair.seat) !== pair || pair.state !== "relay") continue; // closed or replaced meanwhile
      const length = bytes(envelope);
      if (size && size + length > MAX_RELAY_BATCH) send();
      const key = `${channel}\n${pair.seat}`;
      if (!batches.has(key)) batches.set(key, { to: pair.seat, e: pair.epochs, channel, data: [] });
      batches.get(key).data.push(envelope);
      size += length;
    }
    send();
  }

  _relayEstimate(pair) {
    const a = this.serverRtt[this.seat];
    const b = this.serverRtt[pair.seat];
    return Number.isFinite(a) && Number.isFinite(b) ? a + b : null;
  }

  _deliver(pair, channel, message) {
    if (this.pairs.get(pair.seat) !== pair) return;
    try {
      this.onmessage(pair.seat, channel, message);
    } catch (error) {
      console.error("MUG p2p: onmessage failed", error);
    }
  }

  _changed(pair) {
    if (this.pairs.get(pair.seat) !== pair && pair.state !== "closed") return;
    try {
      this.onstate(pair.seat, pair.state, pair.reason);
    } catch (error) {
      console.error("MUG p2p: onstate failed", error);
    }
  }
}
