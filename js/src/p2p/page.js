/**
 * The participant page's side of a peer-to-peer match: starts a `Mesh` when the server says `p2p` (see
 * `mug/server/matches/signal.py`), hands it the server's mesh messages, and closes it when the page leaves
 * the match's scene. Whatever runs the game on the page gets the mesh through `onMesh`.
 * @module p2p/page
 */
import { Mesh } from "./mesh.js";

/**
 * The mesh's options from a `p2p` message's `options` (seconds and snake case on the wire).
 * @param {Object} [o]
 * @returns {Object} `Mesh` options
 */
export function meshOptions(o = {}) {
  const out = {};
  if (o.connect_timeout_s !== undefined) out.connectTimeoutMs = 1000 * o.connect_timeout_s;
  if (o.ping_every_s !== undefined) out.pingEveryMs = 1000 * o.ping_every_s;
  if (o.max_rtt_ms !== undefined) out.maxRttMs = o.max_rtt_ms;
  if (o.rtt_violations !== undefined) out.rttViolations = o.rtt_violations;
  if (o.lost_grace_s !== undefined) out.lostGraceMs = 1000 * o.lost_grace_s;
  if (o.retry_direct_s !== undefined) out.retryDirectMs = o.retry_direct_s === null ? null : 1000 * o.retry_direct_s;
  if (o.shim) out.shim = { latencyMs: o.shim.latency_ms ?? 0, jitterMs: o.shim.jitter_ms ?? 0, loss: o.shim.loss ?? 0, seed: o.shim.seed ?? 1 };
  return out;
}

/** Starts, feeds and closes the mesh of the page's current peer-to-peer match. */
export class MatchPeers {
  /**
   * @param {{send: (message: Object) => void, onMesh?: (mesh: Mesh, start: Object) => void, RTC?: Function}} o
   *   `send`: to the server; `onMesh`: a mesh started (with the `p2p` message); `RTC`: the peer connection
   *   class (left out: the browser's; `null`: no WebRTC, every pair relayed)
   */
  constructor({ send, onMesh = () => {}, RTC }) {
    Object.assign(this, { send, onMesh, RTC });
    /** @type {Mesh|null} */
    this.mesh = null;
  }

  /**
   * A server message of the mesh: `p2p`, `p2p_peers`, `signal`, `relay` or `p2p_relay`.
   * @param {Object} message
   */
  receive(message) {
    if (message.type !== "p2p") {
      try {
        this.mesh?.receive(message);
      } catch (error) {
        console.error(`MUG p2p: a ${message.type} message failed`, error); // a bad message must not stop the page
      }
      return;
    }
    this.close();
    try {
      this.mesh = new Mesh({
        seat: message.seat,
        seats: message.seats,
        iceServers: Array.isArray(message.ice_servers) ? message.ice_servers : [],
        sendToServer: this.send,
        ...(this.RTC !== undefined ? { RTC: this.RTC } : {}),
        ...meshOptions(message.options),
      });
    } catch (error) {
      console.error("MUG p2p: could not start the mesh", error);
      return;
    }
    this.send({ type: "p2p_join" });
    this.onMesh(this.mesh, message);
  }

  /** Close the mesh (the page left the match's scene, or a new `p2p` replaces it). */
  close() {
    this.mesh?.close();
    this.mesh = null;
  }
}
