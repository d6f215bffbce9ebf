/**
 * The peer-to-peer mesh of one match: a `Pair` (./pair.js) with every other member's page (2-4 members), all
 * signalled through the participant WebSocket; each pair sends directly over WebRTC or, when that does not
 * work well, through the server (relay) — the same `send`/`onmessage` either way.
 *
 * Server side and wire: `mug/server/matches/signal.py`. The page starts a mesh on the server's `p2p` message
 * (see ./page.js), says `p2p_join`, and the server's `p2p_peers` (which seats' pages run the mesh, with an
 * epoch per page) makes and closes pairs: a pair lives as long as both pages' epochs, so a peer who reloads
 * is connected anew. Signals carry both epochs (`data.e = [sender's, receiver's]`); stale ones are dropped.
 * What is relayed goes in batches: one `relay` message per peer and channel per task, as large as
 * `MAX_RELAY_BATCH` characters.
 *
 * Channels: `inputs` is unordered and unreliable (a message may be lost, duplicated never); `control` is
 * reliable, ordered and exactly once, also across a switch to the relay (./reliable.js).
 *
 * Relayed traffic counts against the deployment's `messages_per_second` per tab (120 by default): a page
 * sends at most one `relay` message per peer and channel per task, so a game that sends each peer an inputs
 * message per frame at 30 fps, with every pair relayed, uses about 30 a second per peer plus its control
 * traffic; a 4-person match relaying every pair may need a higher limit.
 * @module p2p/mesh
 */
import { Pair } from "./pair.js";

/** Channels of every pair. */
export const CHANNELS = ["inputs", "control"];
/** Characters of relayed envelopes per `relay` message, at most (one envelope larger than this goes alone). */
export const MAX_RELAY_BATCH = 64 * 1024;

const DEFAULTS = { connectTimeoutMs: 10_000, pingEveryMs: 500, maxRttMs: 300, rttViolations: 5, lostGraceMs: 1000, shim: null };

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
   * @param {{latencyMs?: number, jitterMs?: number, loss?: number, seed?: number}|null} [o.shim] a test
   *   shim (./shim.js) on what this page sends: latency and jitter on both channels, loss on `inputs`
   * @param {Function} [o.RTC] RTCPeerConnection (tests pass a fake)
   * @param {() => number} [o.now] clock in ms
   * @param {{setTimeout: Function, clearTimeout: Function, setInterval: Function, clearInterval: Function}} [o.timers]
   */
  constructor({ seat, seats, sendToServer, iceServers = [], RTC = globalThis.RTCPeerConnection, now, timers, ...options }) {
    if (!seats.includes(seat)) throw new Error(`p2p mesh: seat ${seat} is not one of ${seats.join(", ")}`);
    Object.assign(this, { seat, seats: [...seats], sendToServer, RTC });
    this.config = { ...DEFAULTS, ...options, iceServers };
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
    this.batches = new Map();
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

  /** Every peer: `{seat: {state, reason, rtt}}`. */
  stats() {
    return Object.fromEntries(
      this.peers.map((seat) => [seat, { state: this.state(seat), reason: this.pairs.get(seat)?.reason ?? null, rtt: this.rtt(seat) }]),
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
      case "signal": {
        const e = message.data?.e;
        if (pair && Array.isArray(e) && e[0] === pair.epochs[1] && e[1] === pair.epochs[0]) pair.onSignal(message.data);
        else console.warn(`MUG p2p: dropped a signal from ${message.from} (no pair, or an old page's)`);
        return;
      }
      case "relay":
        if (pair && CHANNELS.includes(message.channel) && Array.isArray(message.data)) for (const e of message.data) pair.arrive(e);
        else console.warn(`MUG p2p: dropped a relay message from ${message.from}`);
        return;
      case "p2p_relay":
        pair?.toRelay(String(message.reason), { announce: false });
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
    this.sendToServer({ type: "p2p_relay", to: pair.seat, reason, rtt_ms: rttMs });
  }

  _relay(pair, channel, envelope) {
    const key = `${channel}\n${pair.seat}`;
    const batch = this.batches.get(key);
    if (batch) batch.push(envelope);
    else {
      this.batches.set(key, [envelope]);
      if (this.batches.size === 1) queueMicrotask(() => this._flushRelay());
    }
  }

  _flushRelay() {
    const batches = this.batches;
    this.batches = new Map();
    for (const [key, envelopes] of batches) {
      const [channel, to] = key.split("\n");
      let chunk = [];
      let size = 0;
      for (const envelope of envelopes) {
        const length = JSON.stringify(envelope).length;
        if (chunk.length && size + length > MAX_RELAY_BATCH) {
          this.sendToServer({ type: "relay", to, channel, data: chunk });
          chunk = [];
          size = 0;
        }
        chunk.push(envelope);
        size += length;
      }
      this.sendToServer({ type: "relay", to, channel, data: chunk });
    }
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
