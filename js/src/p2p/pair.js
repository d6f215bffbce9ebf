/**
 * One pair of a mesh: this page and one peer, over a direct WebRTC connection or, when that fails or is too
 * slow, through the server (relay). The `Mesh` (./mesh.js) owns the pairs and talks to the server; a pair
 * owns its RTCPeerConnection, its two DataChannels, its control stream (./reliable.js) and its round trips.
 *
 * Connection: both pages create the same two negotiated channels (`inputs`: id 0, unordered, no
 * retransmits; `control`: id 1, reliable and ordered); the lower seat offers, the other answers; ICE
 * candidates trickle through the server. States: `connecting` -> `open` (direct) or `relay`; `closed` when
 * the peer's page left the mesh. A pair goes to the relay when no RTCPeerConnection can be made
 * (`unavailable`), the channels are not open within the connect timeout (`timeout`), the connection fails
 * while connecting (`failed`), an open connection is lost (`lost`, after a grace period in which the peer's
 * departure would close the pair instead), or its round trip stays above `maxRttMs` for `rttViolations`
 * pings in a row while the relay is estimated to be faster (`rtt`).
 *
 * Back to direct: a pair relayed for `timeout`, `failed` or `lost` (a network that may have come back) tries
 * a new connection `retryDirectMs` later (`null`: never), while its traffic keeps going through the relay: the
 * offering page makes a new RTCPeerConnection and offers (its signals carry the attempt's number, `t`), the
 * other page answers an offer of a newer attempt with one of its own. When both channels open the pair is
 * `open` again (`p2p_direct` to the server, which records it), what control is unacknowledged goes again
 * directly, and the round trips are measured anew. An attempt not open within the connect timeout is hung
 * up and the next waits twice as long (at most `MAX_RETRY_BACKOFF` times `retryDirectMs`). A pair relayed
 * for `rtt` (slower directly) or `unavailable` (no WebRTC) stays relayed for the life of both pages.
 *
 * Control on the relay: the server may drop a relayed message (rate limits, a target far behind), so what is
 * unacknowledged goes again `2 x` the pair's round trip after it was sent (the relay's estimate before there
 * is one; at least `MIN_RESEND_MS`), doubling each time nothing new was acknowledged, up to `MAX_RESEND_MS`.
 * A direct DataChannel is reliable itself: nothing is re-sent on it (what is in flight when it is lost goes
 * again over the relay).
 *
 * Wire (JSON text on the channels, the same objects in relay batches): `{k: "i", d}` an inputs message,
 * `{k: "c", s, d}` / `{k: "a", s}` control and its acks, `{k: "p", n, t}` / `{k: "q", n, t}` ping and pong
 * (sent on the inputs path every `pingEveryMs`: the round trip of what inputs go through).
 * @module p2p/pair
 */
import { MAX_PART, ReliableIn, ReliableOut } from "./reliable.js";
import { Shim } from "./shim.js";

/** Inputs kept while a pair connects (oldest dropped first: they are unreliable anyway). */
export const QUEUED_INPUTS = 64;
/** Round-trip samples kept per pair. */
export const RTT_SAMPLES = 20;
/** Bounds of the wait before unacknowledged control is re-sent on the relay (ms). */
export const MIN_RESEND_MS = 100;
export const MAX_RESEND_MS = 10_000;
/** The round trip assumed before one is measured or estimated (ms). */
const UNKNOWN_RTT_MS = 500;
/** Why a relayed pair tries a direct connection again (see module docs). */
export const RETRY_REASONS = ["timeout", "failed", "lost"];
/** A failed attempt doubles the wait before the next, up to this many times `retryDirectMs`. */
export const MAX_RETRY_BACKOFF = 8;

const median = (values) => {
  if (!values.length) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};

/** One pair of a mesh: this page and one peer (see module docs). */
export class Pair {
  /**
   * @param {import("./mesh.js").Mesh} host the mesh (its config, clock, RTC and server side)
   * @param {string} seat the peer's seat
   * @param {{offerer: boolean, epochs: [number, number]}} p this page offers; [this page's epoch, the peer's]
   */
  constructor(host, seat, { offerer, epochs }) {
    Object.assign(this, { host, seat, offerer, epochs });
    /** @type {"connecting"|"open"|"relay"|"closed"} */
    this.state = "connecting";
    /** Why the pair went to the relay (see module docs), else null. */
    this.reason = null;
    this.out = new ReliableOut();
    this.in = new ReliableIn();
    this.queued = [];
    this.rtts = [];
    this.pings = 0;
    this.over = 0;
    this.pc = null;
    this.channels = null;
    this.candidates = [];
    this.ackDue = false;
    this.resendTimer = null;
    this.backoff = 1;
    /** Times unacknowledged control was re-sent on the relay. */
    this.resends = 0;
    /** The number of the direct connection attempt `pc` belongs to (0: the first). */
    this.attempt = 0;
    this.retryTimer = null;
    this.retryBackoff = 1;
    /** Times the pair went back from the relay to a direct connection. */
    this.returns = 0;
    const { shim } = host.config;
    const seed = (shim?.seed ?? 1) + 7919 * host.seats.indexOf(seat);
    this.shims = shim && {
      inputs: new Shim({ ...shim, seed, ordered: false, now: host.now, setTimeout: host.timers.setTimeout }),
      control: new Shim({ ...shim, seed: seed + 1, loss: 0, ordered: true, now: host.now, setTimeout: host.timers.setTimeout }),
    };
  }

  /** Start connecting (or go to the relay at once when no RTCPeerConnection can be made). */
  start() {
    const { config, timers } = this.host;
    this.connectTimer = timers.setTimeout(() => this.state === "connecting" && this.toRelay("timeout"), config.connectTimeoutMs);
    this.pinger = timers.setInterval(() => this.ping(), config.pingEveryMs);
    try {
      this.connect();
    } catch (error) {
      console.warn(`MUG p2p: no direct connection to ${this.seat} (${error.message}); relaying through the server`);
      this.toRelay("unavailable");
    }
  }

  /**
   * Make the RTCPeerConnection of attempt `attempt` and its channels; the offering page offers.
   * @param {number} [attempt]
   */
  connect(attempt = 0) {
    const RTC = this.host.RTC;
    if (typeof RTC !== "function") throw new Error("RTCPeerConnection is not available in this browser");
    this.attempt = attempt;
    this.candidates = [];
    const pc = (this.pc = new RTC({ iceServers: this.host.config.iceServers }));
    this.channels = {
      inputs: pc.createDataChannel("inputs", { negotiated: true, id: 0, ordered: false, maxRetransmits: 0 }),
      control: pc.createDataChannel("control", { negotiated: true, id: 1, ordered: true }),
    };
    for (const channel of Object.values(this.channels)) {
      channel.onopen = () => this.opened();
      channel.onmessage = (event) => this.arriveText(event.data);
      channel.onclose = () => this.directLost("lost");
    }
    pc.onicecandidate = (event) => {
      if (event.candidate) this.host._signal(this, { candidate: event.candidate.toJSON?.() ?? event.candidate, t: attempt });
    };
    pc.onconnectionstatechange = () => {
      if (pc.connectionState === "failed") this.directLost("failed");
    };
    if (this.offerer) {
      this.negotiate(async () => {
        await pc.setLocalDescription(await pc.createOffer());
        this.host._signal(this, { sdp: { type: pc.localDescription.type, sdp: pc.localDescription.sdp }, t: attempt });
      });
    }
  }

  negotiate(step) {
    step().catch((error) => {
      if (this.state === "relay") return this.attemptFailed(); // an attempt to go back to direct
      if (this.state !== "connecting") return;
      console.warn(`MUG p2p: negotiating with ${this.seat} failed (${error?.message ?? error}); relaying through the server`);
      this.toRelay("failed");
    });
  }

  /** On the relay: the offering page tries a direct connection again later (see module docs). */
  armRetry() {
    const wait = this.host.config.retryDirectMs;
    if (!this.offerer || wait === null || this.state !== "relay" || this.retryTimer !== null) return;
    if (!RETRY_REASONS.includes(this.reason) || typeof this.host.RTC !== "function") return;
    this.retryTimer = this.host.timers.setTimeout(() => {
      this.retryTimer = null;
      if (this.state === "relay" && !this.pc) this.tryDirect(this.attempt + 1);
    }, wait * this.retryBackoff);
  }

  /**
   * Start direct connection attempt `attempt` while the pair is relayed (its traffic stays on the relay).
   * @param {number} attempt
   */
  tryDirect(attempt) {
    this.hangUp();
    try {
      this.connect(attempt);
    } catch (error) {
      console.warn(`MUG p2p: no new direct connection to ${this.seat} (${error.message})`);
      this.hangUp();
      return;
    }
    this.host.timers.clearTimeout(this.connectTimer);
    this.connectTimer = this.host.timers.setTimeout(() => this.state === "relay" && this.attemptFailed(), this.host.config.connectTimeoutMs);
  }

  /** An attempt to go back to direct did not open: hang it up; the next waits longer. */
  attemptFailed() {
    if (this.state !== "relay" || !this.pc) return;
    this.host.timers.clearTimeout(this.connectTimer);
    this.hangUp();
    this.retryBackoff = Math.min(MAX_RETRY_BACKOFF, 2 * this.retryBackoff);
    this.armRetry();
  }

  /**
   * A `signal` from the peer (its `data`, epochs already checked by the mesh).
   * @param {{sdp?: {type: string, sdp: string}, candidate?: Object}} data
   */
  onSignal(data) {
    const attempt = Number.isInteger(data.t) ? data.t : 0;
    if (this.state === "relay" && !this.offerer && attempt > this.attempt && data.sdp?.type === "offer") this.tryDirect(attempt);
    const pc = this.pc;
    if (!pc || attempt !== this.attempt || (this.state !== "connecting" && this.state !== "relay")) return;
    if (data.sdp && typeof data.sdp.sdp === "string" && ["offer", "answer"].includes(data.sdp.type)) {
      this.negotiate(async () => {
        await pc.setRemoteDescription(data.sdp);
        const waiting = this.candidates;
        this.candidates = null;
        for (const candidate of waiting) await pc.addIceCandidate(candidate);
        if (data.sdp.type === "offer") {
          await pc.setLocalDescription(await pc.createAnswer());
          this.host._signal(this, { sdp: { type: pc.localDescription.type, sdp: pc.localDescription.sdp }, t: attempt });
        }
      });
    } else if (data.candidate && typeof data.candidate === "object") {
      if (this.candidates) this.candidates.push(data.candidate);
      else pc.addIceCandidate(data.candidate).catch((error) => console.warn(`MUG p2p: a candidate of ${this.seat} was refused`, error));
    }
  }

  opened() {
    const back = this.state === "relay" && this.pc !== null; // an attempt to go back to direct opened
    if ((this.state !== "connecting" && !back) || !Object.values(this.channels).every((c) => c.readyState === "open")) return;
    this.state = "open";
    this.host.timers.clearTimeout(this.connectTimer);
    if (back) {
      this.reason = null;
      this.rtts = [];
      this.over = 0;
      this.retryBackoff = 1;
      this.returns += 1;
      this.host._declareDirect(this);
    }
    this.flush();
    this.host._changed(this);
  }

  /** Lost a direct connection: to the relay after the grace period, unless the pair was closed meanwhile. */
  directLost(reason) {
    if (this.state === "connecting" && reason === "failed") this.toRelay("failed");
    else if (this.state === "relay") this.attemptFailed(); // an attempt to go back to direct failed
    if (this.state !== "open" || this.lostTimer) return;
    this.lostTimer = this.host.timers.setTimeout(() => this.state === "open" && this.toRelay("lost"), this.host.config.lostGraceMs);
  }

  /**
   * Move this pair to the relay (see module docs); what control messages are unacknowledged go again.
   * @param {string} reason
   * @param {{announce?: boolean, rttMs?: number}} [how] announce: tell the server (false when the peer did)
   */
  toRelay(reason, { announce = true, rttMs = null } = {}) {
    if (this.state === "relay" || this.state === "closed") return;
    this.state = "relay";
    this.reason = reason;
    this.host.timers.clearTimeout(this.connectTimer);
    this.host.timers.clearTimeout(this.lostTimer);
    this.lostTimer = null;
    this.hangUp();
    this.rtts = [];
    this.over = 0;
    if (announce) this.host._declare(this, reason, rttMs);
    this.flush();
    this.armRetry();
    this.host._changed(this);
  }

  flush() {
    for (const envelope of this.out.unacked) this.transmit("control", envelope);
    for (const envelope of this.queued.splice(0)) this.transmit("inputs", envelope);
    this.armResend();
  }

  /** On the relay, with control unacknowledged: re-send it after `resendMs()` (see module docs). */
  armResend() {
    if (this.state !== "relay" || this.resendTimer !== null || !this.out.unacked.length) return;
    this.resendTimer = this.host.timers.setTimeout(() => this.resend(), this.resendMs());
  }

  resend() {
    this.resendTimer = null;
    if (this.state !== "relay" || !this.out.unacked.length) return;
    this.resends += 1;
    this.backoff *= 2;
    for (const envelope of this.out.unacked) this.transmit("control", envelope);
    this.armResend();
  }

  /** The wait before unacknowledged control goes again (ms). */
  resendMs() {
    const rtt = median(this.rtts) ?? this.host._relayEstimate(this) ?? UNKNOWN_RTT_MS;
    return Math.min(MAX_RESEND_MS, Math.max(MIN_RESEND_MS, 2 * rtt) * this.backoff);
  }

  acked(seq) {
    if (!this.out.ack(seq)) return;
    this.backoff = 1;
    this.host.timers.clearTimeout(this.resendTimer);
    this.resendTimer = null;
    this.armResend();
  }

  hangUp() {
    if (!this.pc) return;
    for (const channel of Object.values(this.channels ?? {})) channel.onopen = channel.onclose = channel.onmessage = null;
    this.pc.onicecandidate = this.pc.onconnectionstatechange = null;
    try {
      this.pc.close();
    } catch (error) {
      console.warn("MUG p2p: closing a connection failed", error);
    }
    this.pc = null;
  }

  /** The peer's page left the mesh (or this one closes): stop everything. */
  close() {
    if (this.state === "closed") return;
    this.state = "closed";
    const { timers } = this.host;
    timers.clearTimeout(this.connectTimer);
    timers.clearTimeout(this.lostTimer);
    timers.clearTimeout(this.resendTimer);
    timers.clearTimeout(this.retryTimer);
    timers.clearInterval(this.pinger);
    this.hangUp();
    this.host._changed(this);
  }

  /**
   * Send `message` on `channel`; false when the pair is closed. An inputs message must be at most `MAX_PART`
   * characters of JSON (RangeError), a control message may be of any size (RangeError when `MAX_UNACKED`
   * envelopes already wait for the peer's ack, see ./reliable.js).
   * @param {"inputs"|"control"} channel
   * @param {any} message
   */
  send(channel, message) {
    if (this.state === "closed") return false;
    if (channel === "control") {
      const envelopes = this.out.wrap(message);
      if (this.state !== "connecting") for (const envelope of envelopes) this.transmit("control", envelope);
      this.armResend();
      return true;
    }
    if (JSON.stringify(message).length > MAX_PART) throw new RangeError(`p2p inputs: a message must be at most ${MAX_PART} characters of JSON`);
    if (this.state === "connecting") {
      this.queued.push({ k: "i", d: message });
      if (this.queued.length > QUEUED_INPUTS) this.queued.shift();
    } else this.transmit("inputs", { k: "i", d: message });
    return true;
  }

  /** Through the shim (if any), then down the current path. */
  transmit(channel, envelope) {
    if (this.shims) this.shims[channel].pass(envelope, (e) => this.down(channel, e));
    else this.down(channel, envelope);
  }

  down(channel, envelope) {
    if (this.state === "relay") this.host._relay(this, channel, envelope);
    else if (this.state === "open" && this.channels[channel].readyState === "open") {
      try {
        this.channels[channel].send(JSON.stringify(envelope));
      } catch (error) {
        console.warn(`MUG p2p: sending to ${this.seat} failed`, error);
      }
    }
  }

  arriveText(text) {
    let envelope;
    try {
      envelope = JSON.parse(text);
    } catch {
      console.warn(`MUG p2p: dropped a malformed message from ${this.seat}`);
      return;
    }
    this.arrive(envelope);
  }

  /**
   * One envelope from the peer, by either path.
   * @param {any} envelope
   */
  arrive(envelope) {
    if (this.state === "closed" || !envelope || typeof envelope !== "object") return;
    switch (envelope.k) {
      case "i":
        this.host._deliver(this, "inputs", envelope.d);
        break;
      case "c":
        for (const message of this.in.accept(envelope)) this.host._deliver(this, "control", message);
        this.scheduleAck();
        break;
      case "a":
        if (Number.isInteger(envelope.s)) this.acked(envelope.s);
        break;
      case "p":
        this.transmit("inputs", { k: "q", n: envelope.n, t: envelope.t });
        break;
      case "q":
        this.pong(envelope);
        break;
      default:
        console.warn(`MUG p2p: dropped a message of unknown kind from ${this.seat}`);
    }
  }

  scheduleAck() {
    if (this.ackDue) return;
    this.ackDue = true;
    queueMicrotask(() => {
      this.ackDue = false;
      if (this.state === "open" || this.state === "relay") this.transmit("control", { k: "a", s: this.in.delivered });
    });
  }

  ping() {
    if (this.state === "open" || this.state === "relay") this.transmit("inputs", { k: "p", n: ++this.pings, t: this.host.now() });
  }

  pong({ t }) {
    const rtt = this.host.now() - t;
    if (!Number.isFinite(rtt) || rtt < 0) return;
    this.rtts.push(rtt);
    if (this.rtts.length > RTT_SAMPLES) this.rtts.shift();
    const { maxRttMs, rttViolations } = this.host.config;
    if (this.state !== "open" || maxRttMs == null) return;
    this.over = rtt > maxRttMs ? this.over + 1 : 0;
    if (this.over < rttViolations) return;
    const viaServer = this.host._relayEstimate(this);
    if (viaServer === null || viaServer < median(this.rtts)) this.toRelay("rtt", { rttMs: median(this.rtts) });
    else this.over = 0;
  }

  /**
   * This pair's round trips (ms) on its current path.
   * @returns {{path: "direct"|"relay"|null, last_ms: number|null, median_ms: number|null, samples: number}}
   */
  rtt() {
    const path = this.state === "open" ? "direct" : this.state === "relay" ? "relay" : null;
    return { path, last_ms: this.rtts.at(-1) ?? null, median_ms: median(this.rtts), samples: this.rtts.length };
  }
}
