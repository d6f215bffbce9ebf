/**
 * A simulated participant, without a screen: it takes each message the
 * server sends a participant page and answers as a person at that page
 * would: continues text pages, answers surveys, presses keys in games
 * (acting through the page's own `Player`, so its acts and browser-side
 * policy results are built by the page's code), waits in the waitroom, and
 * records what it saw. DOM-free and transport-free: `js/bin/simulate.mjs`
 * runs many of them in one Node process over real WebSockets.
 * @module client/bot
 */
import { Player } from "./player.js";
import { matchOf } from "./messages.js";

/** Fatal error codes after which the page stops reconnecting (as `client/app.js` does). */
const FATAL_CODES = ["replaced", "forbidden", "unknown_participant"];

/**
 * FNV-1a (32 bit) over a byte array, continuing from `hash`.
 * @param {Uint8Array} bytes
 * @param {number} [hash]
 * @returns {number}
 */
export function fnv1a(bytes, hash = 0x811c9dc5) {
  let h = hash >>> 0;
  for (let i = 0; i < bytes.length; i++) {
    h ^= bytes[i];
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

function observationBuffers(observations) {
  const used = new Set();
  for (const ref of Object.values(observations ?? {})) {
    for (const r of ref?.dict ? Object.values(ref.dict) : [ref]) used.add(r?.buffer);
  }
  return used;
}

/**
 * The hash of what a frame shows (its render payload, HUD and the buffers they use; not the
 * observations only this client is sent), as 8 hex digits: every member of a match sees the same.
 * @param {Object} message a `frame` message
 * @param {Uint8Array[]} buffers
 * @returns {string}
 */
export function frameHash(message, buffers) {
  const text = JSON.stringify([message.render, message.hud ?? null]);
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0; // FNV-1a over UTF-16 units
  const own = observationBuffers(message.observations);
  buffers.forEach((b, i) => {
    if (!own.has(i)) h = fnv1a(new Uint8Array(b.buffer, b.byteOffset, b.byteLength), h);
  });
  return h.toString(16).padStart(8, "0");
}

/**
 * The answer a bot gives to a survey question it was given none for: the first option, 1, or "".
 * @param {{kind: string, options?: string[], multiple?: boolean}} question
 */
export function defaultAnswer(question) {
  if (question.kind === "choice") return question.multiple ? [question.options[0]] : question.options[0];
  return question.kind === "text" ? "" : 1;
}

/** One simulated participant's side of the conversation with the server. */
export class Bot {
  /**
   * @param {{participantId: string, keys?: string[]|null, answers?: Object<string, unknown>,
   *   hidden?: Array<[number, number]>, stopAfterAcks?: number|null,
   *   actHook?: (message: Object, buffers: ArrayBufferView[], n: number) => ({message: Object, buffers: ArrayBufferView[]}|undefined)}} options
   *   `keys`: pressed in turn, one per frame (default: the scene's own keys; keys the scene does not use
   *   are never pressed, as on the page); `answers`: by question id; `hidden`: `[after_s, for_s]` spans,
   *   from `start()`, in which the tab is reported hidden (no key pressed meanwhile); `stopAfterAcks`:
   *   stop after this many acknowledged steps; `actHook`: may replace the n-th act the page would send
   * @param {{send: (message: Object, buffers?: ArrayBufferView[]) => void, fetchAsset: (path: string) => Promise<Uint8Array>,
   *   stop: (reason: string) => void, now?: () => number, setTimer?: (fn: () => void, ms: number) => unknown}} host
   *   `stop`: the bot is done (reason "end", "acks", "fatal", "timeout"); `now`: epoch milliseconds
   */
  constructor(options, { send, fetchAsset, stop, now = () => performance.timeOrigin + performance.now(), setTimer = setTimeout }) {
    this.options = { keys: null, answers: {}, hidden: [], stopAfterAcks: null, actHook: null, ...options };
    this.host = { send, fetchAsset, stop, now, setTimer };
    this.player = null;
    this.sceneKeys = [];
    this.presses = 0;
    this.acts = 0;
    this.waitingAck = null;
    this.lastFrameAt = null;
    this.hiddenNow = false;
    this.done = false;
    this.stats = {
      participant_id: options.participantId,
      completion_code: null,
      scenes: [],
      acked_steps: 0,
      frames: 0,
      frame_log: [],
      latency_log: [],
      errors: [],
      client_errors: [],
      notices: [],
      matches: [],
      waitroom: [],
      pauses: [],
      visibility: [],
      ended: null,
    };
  }

  /** The bot's socket is open: say ready, and schedule the hidden spans. */
  start() {
    this.host.send({ type: "ready" });
    if (this.started) return; // a reconnect keeps the schedule
    this.started = this.host.now();
    for (const [after, span] of this.options.hidden) {
      this.host.setTimer(() => this.setHidden(true), after * 1000);
      this.host.setTimer(() => this.setHidden(false), (after + span) * 1000);
    }
  }

  setHidden(hidden) {
    if (this.done || this.hiddenNow === hidden) return;
    this.hiddenNow = hidden;
    if (hidden) this.player?.releaseAll();
    this.stats.visibility.push({ hidden, t: this.host.now() / 1000 });
    this.host.send({ type: "visibility", hidden });
  }

  finish(reason) {
    if (this.done) return;
    this.done = true;
    this.stats.ended = reason;
    this.player?.close();
    this.host.stop(reason);
  }

  /**
   * Take one message from the server (already checked with `checkServerMessage`).
   * @param {Object} message
   * @param {Uint8Array[]} buffers
   */
  handle(message, buffers) {
    if (this.done) return;
    const now = this.host.now();
    if ((message.type === "frame" || message.type === "episode_end") && this.waitingAck !== null) {
      this.stats.acked_steps += 1; // the step our last act caused has been committed
      this.stats.latency_log.push([now / 1000, now - this.waitingAck]); // [when (epoch s), latency ms]
      this.waitingAck = null;
      if (this.options.stopAfterAcks !== null && this.stats.acked_steps >= this.options.stopAfterAcks) return this.finish("acks");
    }
    switch (message.type) {
      case "scene": {
        const match = matchOf(message);
        if (match) this.stats.matches.push({ match_id: match.match_id, seat: match.seat, seats: match.seats, t: now / 1000 });
        return this.scene(message.scene);
      }
      case "frame":
        return this.frame(message, buffers, now);
      case "error":
        this.stats.errors.push(message);
        if (message.fatal && FATAL_CODES.includes(message.code)) this.finish("fatal");
        return;
      case "waitroom":
        this.stats.waitroom.push({ t: now / 1000, waiting: message.waiting, needed: message.needed, time_left_s: message.time_left_s });
        return;
      case "paused":
        this.player?.releaseAll();
        this.stats.pauses.push({ reason: message.reason, t: now / 1000, resumed: null });
        return;
      case "resumed": {
        const open = this.stats.pauses.findLast((p) => p.resumed === null);
        if (open) open.resumed = now / 1000;
        return;
      }
      case "notice":
        this.stats.notices.push({ code: message.code, message: message.message, t: now / 1000 });
        return;
      default:
        return;
    }
  }

  scene(meta) {
    this.player?.close();
    this.player = null;
    this.waitingAck = null;
    this.stats.scenes.push(meta.scene_id);
    const { send } = this.host;
    if (meta.kind === "start" || meta.kind === "text") send({ type: "advance", scene_id: meta.scene_id });
    else if (meta.kind === "survey") {
      const answers = Object.fromEntries(meta.questions.map((q) => [q.qid, this.options.answers[q.qid] ?? defaultAnswer(q)]));
      send({ type: "response", scene_id: meta.scene_id, answers });
    } else if (meta.kind === "end") {
      this.stats.completion_code = meta.completion_code ?? null;
      this.finish("end");
    } else if (meta.kind === "gym") {
      const wanted = this.options.keys ?? meta.keys;
      this.sceneKeys = wanted.filter((k) => meta.keys.includes(k));
      if (wanted.length && !this.sceneKeys.length && meta.you.humans.length) {
        this.stats.client_errors.push(`none of the keys ${JSON.stringify(wanted)} is used by scene '${meta.scene_id}' (its keys: ${meta.keys.join(", ")})`);
      }
      this.player = new Player(meta, {
        send: (m, b) => this.sendAct(m, b),
        fetchAsset: this.host.fetchAsset,
        onError: (error) => {
          const text = String(error?.message ?? error);
          this.stats.client_errors.push(text);
          send({ type: "client_error", message: text.slice(0, 2000) });
        },
      });
    }
  }

  frame(message, buffers, now) {
    this.stats.frames += 1;
    this.stats.frame_log.push([message.episode, message.step, frameHash(message, buffers), now / 1000]);
    if (!this.player) return;
    if (!this.hiddenNow && this.sceneKeys.length) {
      // one press a frame, the keys in turn: the previous key comes up as the next goes down
      const key = this.sceneKeys[this.presses % this.sceneKeys.length];
      const previous = this.sceneKeys[(this.presses + this.sceneKeys.length - 1) % this.sceneKeys.length];
      if (this.presses) this.player.keyUp(previous);
      this.presses += 1;
      this.player.keyDown(key);
    }
    this.player.frame(message, buffers);
  }

  sendAct(message, buffers = []) {
    if (this.done) return;
    if (message.type === "act") {
      this.acts += 1;
      const replaced = this.options.actHook?.(message, buffers, this.acts);
      if (replaced) ({ message, buffers } = replaced);
      this.waitingAck = this.host.now();
    }
    this.host.send(message, buffers);
  }
}
