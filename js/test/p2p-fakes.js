/**
 * Fakes for the mesh's unit tests (state machine only; real WebRTC is in tests/e2e/test_p2p_transport.py):
 * `FakeRTC`, RTCPeerConnections that "connect" once both have each other's description and a candidate,
 * and `FakeServer`, the forwarding rules of mug/server/matches/signal.py on in-memory pages.
 */
import { Mesh } from "../src/p2p/mesh.js";

/** A world of fake peer connections: descriptions name connections, channels pair up by id. */
export class FakeNetwork {
  constructor() {
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
    setTimeout(() => twin?.readyState === "open" && twin.onmessage?.({ data: text }), 1);
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
    setTimeout(() => this.onicecandidate?.({ candidate: { candidate: `host ${this.id}`, sdpMid: "0" } }), 1);
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
        setTimeout(() => Object.values(side.channels).forEach((c) => c.readyState === "connecting" && c.open()), 1);
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

/** The server's forwarding (as signal.py does it) between in-memory pages, each with a mesh. */
export class FakeServer {
  constructor(seats, { serverRtt = {} } = {}) {
    Object.assign(this, { seats, serverRtt });
    this.epochs = {};
    this.epoch = 0;
    this.meshes = {};
    this.relayed = new Set();
    /** `p2p_relay` events recorded, and every message pages sent. */
    this.events = [];
    this.inbound = [];
  }

  /** Open a page for `seat` (a reload when it has one): its mesh joins. */
  open(seat, options = {}) {
    this.meshes[seat]?.close();
    const mesh = new Mesh({ seat, seats: this.seats, sendToServer: (m) => this.handle(seat, m), ...options });
    mesh.received = [];
    mesh.onmessage = (from, channel, message) => mesh.received.push({ from, channel, message });
    this.meshes[seat] = mesh;
    this.handle(seat, { type: "p2p_join" });
    return mesh;
  }

  /** `seat`'s page closed: out of the mesh. */
  leave(seat) {
    this.meshes[seat]?.close();
    delete this.meshes[seat];
    delete this.epochs[seat];
    this.roster();
  }

  roster() {
    const peers = Object.fromEntries(this.seats.map((s) => [s, this.epochs[s] ?? null]));
    for (const seat of Object.keys(this.epochs)) this.deliver(seat, { type: "p2p_peers", peers, server_rtt_ms: this.serverRtt });
  }

  deliver(seat, message) {
    const mesh = this.meshes[seat];
    setTimeout(() => mesh && !mesh.closed && mesh.receive(structuredClone(message)), 0);
  }

  pairKey(a, b) {
    return [`${a}@${this.epochs[a]}`, `${b}@${this.epochs[b]}`].sort().join("|");
  }

  handle(from, message) {
    this.inbound.push({ from, message });
    if (message.type === "p2p_join") {
      this.epochs[from] = ++this.epoch;
      this.roster();
      return;
    }
    const to = message.to;
    if (!(to in this.epochs) || to === from) return;
    if (message.type === "signal") this.deliver(to, { type: "signal", from, data: message.data });
    else if (message.type === "p2p_relay") {
      const key = this.pairKey(from, to);
      if (this.relayed.has(key)) return;
      this.relayed.add(key);
      this.events.push({ pair: [from, to].sort(), reason: message.reason, by: from });
      this.deliver(to, { type: "p2p_relay", from, reason: message.reason });
    } else if (message.type === "relay" && this.relayed.has(this.pairKey(from, to))) {
      this.deliver(to, { type: "relay", from, channel: message.channel, data: message.data });
    }
  }
}

/**
 * Wait until `condition()` holds (polling every 5 ms); throws after `ms` with `what`.
 * @param {() => boolean} condition
 * @param {string} what
 */
export async function until(condition, what, ms = 5000) {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
