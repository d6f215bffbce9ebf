/**
 * Fakes for the mesh's unit tests (state machine only; real WebRTC is in tests/e2e/test_p2p_transport.py):
 * `FakeRTC`, RTCPeerConnections that "connect" once both have each other's description and a candidate,
 * and `FakeServer`, a `LocalHub` (the forwarding rules of mug/server/matches/signal.py) that records.
 */
import { LocalHub } from "../src/p2p/local.js";

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

/** A `LocalHub` (the server's rules, in memory) whose meshes record what they get, and that logs what they send. */
export class FakeServer extends LocalHub {
  constructor(seats, { serverRtt = {} } = {}) {
    super(seats, { serverRttMs: serverRtt });
    /** Every message pages sent: `{from, message}`. */
    this.inbound = [];
    this.tap = (from, message) => this.inbound.push({ from, message });
  }

  open(seat, options = {}) {
    const mesh = super.open(seat, options);
    mesh.received = [];
    mesh.onmessage = (from, channel, message) => mesh.received.push({ from, channel, message });
    return mesh;
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
