/**
 * Fakes for the mesh's unit tests (state machine only; real WebRTC is in tests/e2e/test_p2p_transport.py):
 * `ManualClock`, virtual time for every timer; `FakeNetwork`, RTCPeerConnections that "connect" once both
 * have each other's description and a candidate; and `FakeServer`, a `LocalHub` (the forwarding rules of
 * mug/server/matches/signal.py) that records.
 */
import { LocalHub } from "../src/p2p/local.js";

/** Virtual time: timers fire only when `run`/`until` advance it (promises settle in between). */
export class ManualClock {
  constructor() {
    this.t = 0;
    this.next = 1;
    /** @type {Map<number, {at: number, fn: Function, every: number|null}>} */
    this.pending = new Map();
    this.now = () => this.t;
    this.setTimeout = (fn, ms = 0) => this.add(fn, ms, null);
    this.timers = {
      setTimeout: this.setTimeout,
      clearTimeout: (id) => this.pending.delete(id),
      setInterval: (fn, ms) => this.add(fn, ms, ms),
      clearInterval: (id) => this.pending.delete(id),
    };
  }

  add(fn, ms, every) {
    const id = this.next++;
    this.pending.set(id, { at: this.t + Math.max(0, ms), fn, every });
    return id;
  }

  /** Let promises settle (every microtask runs before the next macrotask; no virtual time passes). */
  async settle() {
    await new Promise((resolve) => setImmediate(resolve));
  }

  /** Advance virtual time by `ms`, firing every timer due on the way, in order. */
  async run(ms) {
    const end = this.t + ms;
    await this.settle();
    for (;;) {
      let due = null;
      for (const [id, timer] of this.pending) if (timer.at <= end && (!due || timer.at < due[1].at)) due = [id, timer];
      if (!due) break;
      const [id, timer] = due;
      this.t = Math.max(this.t, timer.at);
      if (timer.every === null) this.pending.delete(id);
      else timer.at += Math.max(1, timer.every);
      timer.fn();
      await this.settle();
    }
    this.t = end;
  }

  /** Advance virtual time, timer by timer, until `condition()` holds; throws after `ms` of it with `what`. */
  async until(condition, what, ms = 30_000) {
    const deadline = this.t + ms;
    await this.settle();
    while (!condition()) {
      const next = Math.min(...[...this.pending.values()].map((timer) => timer.at));
      if (!(next <= deadline)) throw new Error(`no ${what} within ${ms} ms of virtual time`);
      await this.run(Math.max(0, next - this.t));
    }
  }
}

/** A world of fake peer connections: descriptions name connections, channels pair up by id. */
export class FakeNetwork {
  /** @param {ManualClock} clock */
  constructor(clock) {
    this.clock = clock;
    this.connections = new Map();
    this.count = 0;
    /** When false, connections never open (a firewall). */
    this.connects = true;
    /** Envelopes a channel drops while this returns true for them (text, channel label). */
    this.drop = () => false;
  }

  get RTC() {
    const network = this;
    return class extends FakeConnection {
      constructor(config) {
        super(network, config);
      }
    };
  }
}

class FakeChannel {
  constructor(connection, label, options) {
    Object.assign(this, { connection, label, options, readyState: "connecting", onopen: null, onmessage: null, onclose: null });
    this.sent = [];
  }

  send(text) {
    if (this.readyState !== "open") throw new Error("InvalidStateError: channel not open");
    this.sent.push(text);
    const twin = this.connection.remote?.channels[this.label];
    if (this.connection.network.drop(text, this.label)) return;
    this.connection.network.clock.setTimeout(() => twin?.readyState === "open" && twin.onmessage?.({ data: text }), 1);
  }

  open() {
    this.readyState = "open";
    this.onopen?.();
  }

  shut() {
    if (this.readyState === "closed") return;
    this.readyState = "closed";
    this.onclose?.();
  }
}

class FakeConnection {
  constructor(network, config) {
    this.network = network;
    this.config = config;
    this.id = `pc${++network.count}`;
    network.connections.set(this.id, this);
    this.channels = {};
    this.localDescription = this.remoteDescription = null;
    this.remote = null;
    this.candidates = [];
    this.connectionState = "new";
    this.offers = 0;
  }

  createDataChannel(label, options) {
    return (this.channels[label] = new FakeChannel(this, label, options));
  }

  async createOffer() {
    this.offers += 1;
    return { type: "offer", sdp: `fake ${this.id}` };
  }

  async createAnswer() {
    return { type: "answer", sdp: `fake ${this.id}` };
  }

  async setLocalDescription(description) {
    this.localDescription = description;
    this.network.clock.setTimeout(() => this.onicecandidate?.({ candidate: { candidate: `host ${this.id}`, sdpMid: "0" } }), 1);
  }

  async setRemoteDescription(description) {
    this.remoteDescription = description;
    this.remote = this.network.connections.get(description.sdp.split(" ")[1]);
  }

  async addIceCandidate(candidate) {
    if (!this.remoteDescription) throw new Error("addIceCandidate before the remote description");
    this.candidates.push(candidate);
    const remote = this.remote;
    if (this.network.connects && remote?.remote === this && remote.candidates.length && this.candidates.length) {
      for (const side of [this, remote]) {
        side.connectionState = "connected";
        this.network.clock.setTimeout(() => Object.values(side.channels).forEach((c) => c.readyState === "connecting" && c.open()), 1);
      }
    }
  }

  /** The network failed under this connection: both ends' channels close. */
  fail() {
    for (const side of [this, this.remote]) {
      if (!side) continue;
      side.connectionState = "failed";
      side.onconnectionstatechange?.();
      Object.values(side.channels).forEach((c) => c.shut());
    }
  }

  close() {
    this.connectionState = "closed";
    Object.values(this.channels).forEach((c) => (c.readyState = "closed"));
  }
}

/**
 * A `LocalHub` (the server's rules, in memory) on a `ManualClock`, whose meshes run on that clock and record
 * what they get and every state they go through, and that logs what they send; `drop(from, message)` true:
 * the "server" drops that message (as rate limits do).
 */
export class FakeServer extends LocalHub {
  /**
   * @param {string[]} seats
   * @param {ManualClock} clock
   * @param {{serverRtt?: Object<string, number>}} [o]
   */
  constructor(seats, clock, { serverRtt = {} } = {}) {
    super(seats, { serverRttMs: serverRtt, setTimeout: clock.setTimeout });
    this.clock = clock;
    /** Every message pages sent: `{from, message}`. */
    this.inbound = [];
    this.tap = (from, message) => this.inbound.push({ from, message });
    this.drop = () => false;
  }

  handle(from, message) {
    if (this.drop(from, message)) {
      this.tap(from, message);
      return;
    }
    super.handle(from, message);
  }

  open(seat, options = {}) {
    const mesh = super.open(seat, { now: this.clock.now, timers: this.clock.timers, ...options });
    mesh.received = [];
    mesh.states = [];
    mesh.onmessage = (from, channel, message) => mesh.received.push({ from, channel, message });
    mesh.onstate = (peer, state, reason) => mesh.states.push([peer, state, reason]);
    return mesh;
  }
}
