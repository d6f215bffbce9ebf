/**
 * The participant page's side of a peer-to-peer match scene (a browser-side scene whose spec has `p2p`):
 * the glue between the Pyodide worker's `P2PGame` (`mug/browser/p2p_game.py`, hosted by `P2PHost`), the
 * match's mesh (`p2p/mesh.js`, handed over by the `mug-p2p` window event) and the server.
 *
 * - Peer messages: the game's `peer` messages go to the mesh (its channel `input` is the mesh's
 *   `inputs`, `control` is `control`; no recipient: every peer); what the mesh delivers goes to the game,
 *   and `reconnected` {peer} whenever a pair with a peer starts carrying messages (open or relayed): a pair
 *   made anew after either page's socket reconnected lost the control messages in flight on the old one.
 * - AI seats: the game's `ai_request`s are served in order, one `PolicyRuntime` step each (the runtime
 *   of the page, one thread), and answered with `ai` {seat, frame, action, state, epoch}. A human seat's
 *   requests (its member was lost: `on_partner_loss="ai"`) run its fill-in model (`fill_policies` of the
 *   scene's metadata), loaded when the scene begins so that it is ready when needed.
 * - The server's `p2p_seat_ai` {match_id, seat} (a member lost for good) goes to the game as `seat_ai` {seat}
 *   when it is this match's and another member's seat (else it is dropped with an `onError` note).
 * - The record: `p2p_frames` are kept until the server's `p2p_ack` (a `StepUploader` with `P2P_FRAMES`),
 *   sent in batches every 500 ms and at once when an episode ends, and again after a reconnect;
 *   `p2p_events` go to the server at once (after a `resync` the unacked records from its frame on are
 *   dropped: the game confirms them again); `p2p_done` goes out after every record waiting.
 *
 * `window.mugP2P` (the `expose` target) is the page's running or last match: `{match_id, seat, records,
 * events, done}`, with every confirmed record this page sent, in frame order (what the server's record of
 * the match must equal), for monitoring tools and tests.
 * @module pyworker/p2p-match
 */
import { PolicyRuntime } from "../runtime/index.js";
import { P2P_FRAMES, StepUploader } from "./step-uploader.js";

/** Types of the game's messages that this module handles (not the `GameView`'s). */
export const P2P_ENGINE_TYPES = ["peer", "ai_request", "p2p_frames", "p2p_events", "p2p_done"];
/** The game's channel names -> the mesh's. */
export const MESH_CHANNELS = { input: "inputs", control: "control" };

/** The match scene of one page. */
export class P2PMatch {
  /**
   * @param {{sendToServer: (message: Object) => void, toWorker: (message: Object) => void,
   *   fetchAsset: (path: string) => Promise<Uint8Array>, onError?: (text: string) => void,
   *   events?: EventTarget|null, expose?: Object|null}} options
   *   `toWorker`: a message for the game; `fetchAsset`: a model's bytes by its `model_url`; `events`: where
   *   the `mug-p2p` event comes (default: the window); `expose`: where `mugP2P` is set (default: the window);
   *   `doc`: whose `visibilitychange` is told to the game as `visibility` {hidden} (default: the document)
   */
  constructor({ sendToServer, toWorker, fetchAsset, onError = console.error, events = globalThis, expose = globalThis, doc = globalThis.document }) {
    Object.assign(this, { sendToServer, toWorker, fetchAsset, onError, expose, doc });
    this.uploader = new StepUploader({ send: sendToServer, ...P2P_FRAMES });
    /** The running match: `{match_id, seat, records, events, done}`. */
    this.current = null;
    this.mesh = null;
    this.ai = null;
    events?.addEventListener?.("mug-p2p", (event) => this.attach(event.detail.mesh));
    doc?.addEventListener?.("visibilitychange", () => this.visibility());
  }

  /** The tab's visibility for the game (it records the time hidden per episode). */
  visibility() {
    if (this.current && this.doc) this.toWorker({ type: "visibility", hidden: Boolean(this.doc.hidden) });
  }

  /**
   * A P2P match scene starts on this page.
   * @param {Object} meta the server `scene` message's `scene` (its `environment.spec.p2p` is the match's)
   */
  begin(meta) {
    const { match_id: matchId, seat } = meta.environment.spec.p2p;
    this.current = { match_id: matchId, seat, records: [], events: [], done: false };
    if (this.expose) this.expose.mugP2P = this.current;
    this.ai = new AISeats(meta, this.fetchAsset, (answer) => this.toWorker(answer), this.onError);
    if (this.mesh) this.listen(this.mesh);
    if (this.doc?.hidden) this.visibility(); // opened in a hidden tab
    this.ai.preload(Object.keys(meta.fill_policies ?? {}));
  }

  /**
   * The server's `p2p_seat_ai`: another member's seat goes to its fill-in policy (the game agrees on the frame).
   * @param {{match_id: string, seat: string}} message
   */
  seatToAI(message) {
    const current = this.current;
    if (!current || message.match_id !== current.match_id || message.seat === current.seat) {
      this.onError(`p2p_seat_ai for ${message.match_id}/${message.seat}: not another seat of this page's match`);
      return;
    }
    this.toWorker({ type: "seat_ai", seat: message.seat });
  }

  /**
   * The match's mesh (from the `mug-p2p` event). What it delivers goes to the game once a P2P match scene
   * runs on this page (a mesh opened for anything else keeps its own `onmessage`).
   * @param {import("../p2p/mesh.js").Mesh} mesh
   */
  attach(mesh) {
    this.mesh = mesh;
    if (this.current) this.listen(mesh);
  }

  listen(mesh) {
    mesh.onmessage = (from, _channel, message) => {
      if (this.current && this.mesh === mesh) this.toWorker({ type: "peer", from, message });
    };
    const up = new Map(); // seat -> whether its pair carries messages (open, or relayed)
    mesh.onstate = (seat, state) => {
      const carries = state === "open" || state === "relay";
      // a pair made anew (a reconnect of either page): control messages in flight on the old one are lost
      if (carries && !up.get(seat) && this.current && this.mesh === mesh) this.toWorker({ type: "reconnected", peer: seat });
      up.set(seat, carries);
    };
  }

  /**
   * A message of the game (type in `P2P_ENGINE_TYPES`).
   * @param {Object} message
   */
  fromEngine(message) {
    const current = this.current;
    if (!current) return;
    switch (message.type) {
      case "peer":
        for (const [to, channel, body] of message.messages) {
          if (to === null) this.mesh?.broadcast(MESH_CHANNELS[channel], body);
          else this.mesh?.send(to, MESH_CHANNELS[channel], body);
        }
        break;
      case "ai_request":
        this.ai.serve(message.requests);
        break;
      case "p2p_frames":
        current.records.push(...message.records);
        this.uploader.add(message);
        break;
      case "p2p_events":
        for (const event of message.events) {
          if (event.type !== "resync") continue;
          this.uploader.drop(current.match_id, event.frame);
          current.records = current.records.filter((r) => r.frame < event.frame);
        }
        current.events.push(...message.events);
        this.sendToServer(message);
        break;
      case "p2p_done":
        this.uploader.flush();
        current.done = true;
        this.sendToServer(message);
        break;
      default:
        break;
    }
  }

  /** The server's `p2p_ack`. */
  ack(message) {
    this.uploader.ack(message);
  }

  /** The socket (re)opened: the records not acknowledged go again, and `p2p_done` if it was said. */
  reconnected() {
    this.uploader.resend();
    if (this.current?.done) this.sendToServer({ type: "p2p_done", match_id: this.current.match_id, reason: "scene_end" });
  }

  /** The page left the match's scene (the mesh is closed by its owner). */
  leave() {
    this.current = null;
    this.ai = null;
  }
}

/** The AI seats of one match on this page: one `PolicyRuntime` per seat, stepped once per request, in order. */
export class AISeats {
  /**
   * @param {Object} meta the scene's metadata (`policies[seat]` {model_url, config}, `policy_seed`)
   * @param {(path: string) => Promise<Uint8Array>} fetchAsset
   * @param {(answer: Object) => void} answer gets each `ai` message
   * @param {(text: string) => void} onError
   * @param {(options: Object) => Promise<PolicyRuntime>} [create] default `PolicyRuntime.create`
   */
  constructor(meta, fetchAsset, answer, onError, create = (options) => PolicyRuntime.create(options)) {
    Object.assign(this, { meta, fetchAsset, answer, onError, create });
    this.runtimes = new Map();
    this.episodes = new Map();
    this.chain = Promise.resolve();
    this.failed = false;
  }

  /** Queue `requests` (the game's, in order). */
  serve(requests) {
    for (const request of requests) {
      this.chain = this.chain.then(() => this.step(request)).catch((error) => this.fail(error));
    }
  }

  /** Start loading the runtimes of `seats` now (a failure is forgotten: a request that needs one loads it again). */
  preload(seats) {
    for (const seat of seats) this.runtime(seat).catch(() => {});
  }

  runtime(seat) {
    if (!this.runtimes.has(seat)) {
      const own = this.meta.policies[seat];
      const policy = own?.kind === "human" || !own ? this.meta.fill_policies?.[seat] : own; // a lost member's seat: its fill-in
      const loading = this.fetchAsset(policy.model_url).then((model) => this.create({ model, config: policy.config, seed: this.meta.policy_seed, name: seat }));
      this.runtimes.set(seat, loading);
      loading.catch(() => {
        if (this.runtimes.get(seat) === loading) this.runtimes.delete(seat); // a network blip at preload is not final
      });
    }
    return this.runtimes.get(seat);
  }

  async step({ seat, frame, episode, observation, restore, epoch }) {
    if (this.failed) return;
    const runtime = await this.runtime(seat);
    if (restore) this.load(runtime, seat, restore.state);
    if (this.episodes.has(seat) && this.episodes.get(seat) !== episode) runtime.boundary("episode", seat);
    this.episodes.set(seat, episode);
    const { action } = await runtime.step(observation, seat);
    this.answer({ type: "ai", seat, frame, action, state: this.blob(runtime, seat), epoch });
  }

  /** The seat's hidden state, sampling stream, step count and episode as plain data. */
  blob(runtime, seat) {
    const agent = runtime.snapshot().agents[seat];
    return { states: agent.states.map((t) => Array.from(t.data)), rng: agent.rng, steps: agent.steps, episode: this.episodes.get(seat) };
  }

  /** Load a blob another page's runtime gave (`null`: the seat starts afresh). */
  load(runtime, seat, blob) {
    const snapshot = runtime.snapshot();
    if (blob === null) {
      delete snapshot.agents[seat];
      this.episodes.delete(seat);
    } else {
      const zero = runtime.zeroStates ?? [];
      snapshot.agents[seat] = {
        states: blob.states.map((data, i) => ({ type: zero[i].type, data: (zero[i].type === "float64" ? Float64Array : Float32Array).from(data), dims: zero[i].dims })),
        rng: blob.rng,
        steps: blob.steps,
        custom: {},
      };
      this.episodes.set(seat, blob.episode);
    }
    runtime.restore(snapshot);
  }

  fail(error) {
    if (this.failed) return;
    this.failed = true;
    this.onError(`the AI partner failed: ${error?.message ?? error}`);
  }
}
