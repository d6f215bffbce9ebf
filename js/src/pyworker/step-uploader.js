/**
 * Step records of browser-side environments on their way to the server:
 * each `steps` message the engine posts is kept until the server's
 * `steps_ack` {session_id, seq} says it committed everything up to `seq`, and
 * sent on in batches: step records wait up to `sendEveryMs` (default
 * `SEND_EVERY_MS`) so that one message carries many of them, and an event
 * record (an episode's or the scene's end, an error) sends everything waiting
 * at once. After a reconnect every record not acknowledged is sent again
 * (the server stores a record seen twice once: it dedups on (session_id, seq)).
 * Kept records are also written to `storage` (the tab's sessionStorage), so
 * a reload of the page sends them again too.
 * @module pyworker/step-uploader
 */

/** Largest `steps` message a resend builds, in bytes of JSON (under the server's message limit). */
export const MAX_BATCH_BYTES = 64 * 1024;

/** Milliseconds step records wait to be sent together (15 records a message at 30 fps). */
export const SEND_EVERY_MS = 500;

/** Step records not yet acknowledged, per game session. */
export class StepUploader {
  /**
   * @param {{send: (message: Object) => void, storage?: Storage|null, key?: string, sendEveryMs?: number}} options
   *   `send`: to the server (dropped while disconnected: the records stay kept); `storage`/`key`: where
   *   kept records survive a reload; `sendEveryMs`: how long step records may wait to go out together
   *   (0: each message at once)
   */
  constructor({ send, storage = null, key = "mug-steps", sendEveryMs = SEND_EVERY_MS }) {
    this.send = send;
    this.storage = storage;
    this.key = key;
    this.sendEveryMs = sendEveryMs;
    /** Records kept but not sent yet, per session. @type {Map<string, {scene_id: string, records: Object[]}>} */
    this.waiting = new Map();
    this.timer = null;
    /** @type {Map<string, {scene_id: string, records: Object[]}>} */
    this.sessions = new Map();
    let saved = null;
    try {
      saved = JSON.parse(storage?.getItem(key) ?? "null");
    } catch {
      saved = null;
    }
    for (const [id, entry] of Object.entries(saved ?? {})) this.sessions.set(id, entry);
  }

  /**
   * A `steps` message from the engine: keep its records, send it.
   * @param {{session_id: string, scene_id: string, records: Array<{seq: number}>}} message
   */
  add(message) {
    const entry = this.sessions.get(message.session_id) ?? { scene_id: message.scene_id, records: [] };
    const last = entry.records.length ? entry.records[entry.records.length - 1].seq : -1;
    const fresh = message.records.filter((r) => r.seq > last);
    entry.records.push(...fresh);
    this.sessions.set(message.session_id, entry);
    this.save();
    const waiting = this.waiting.get(message.session_id) ?? { scene_id: message.scene_id, records: [] };
    waiting.records.push(...fresh);
    this.waiting.set(message.session_id, waiting);
    if (this.sendEveryMs <= 0 || fresh.some((r) => r.kind === "event")) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), this.sendEveryMs);
  }

  /** Send every record waiting to go out now. */
  flush() {
    clearTimeout(this.timer);
    this.timer = null;
    const waiting = this.waiting;
    this.waiting = new Map();
    for (const [sessionId, { scene_id: sceneId, records }] of waiting) this.sendBatches(sessionId, sceneId, records);
  }

  /**
   * The server committed the records of `session_id` up to `seq`: forget them.
   * @param {{session_id: string, seq: number}} ack
   */
  ack({ session_id: sessionId, seq }) {
    const entry = this.sessions.get(sessionId);
    if (!entry || !Number.isInteger(seq)) return;
    entry.records = entry.records.filter((r) => r.seq > seq);
    if (!entry.records.length) this.sessions.delete(sessionId);
    this.save();
  }

  /** Send every kept record again, in order (those waiting to go out among them). */
  resend() {
    clearTimeout(this.timer);
    this.timer = null;
    this.waiting = new Map();
    for (const [sessionId, { scene_id: sceneId, records }] of this.sessions) this.sendBatches(sessionId, sceneId, records);
  }

  /** `records` of one session, in order, in `steps` messages of at most `MAX_BATCH_BYTES` of JSON. */
  sendBatches(sessionId, sceneId, records) {
    let batch = [];
    let size = 0;
    const send = () => {
      if (batch.length) this.send({ type: "steps", session_id: sessionId, scene_id: sceneId, records: batch });
      batch = [];
      size = 0;
    };
    for (const record of records) {
      const bytes = JSON.stringify(record).length;
      if (size + bytes > MAX_BATCH_BYTES) send();
      batch.push(record);
      size += bytes;
    }
    send();
  }

  /**
   * How many records are kept (not acknowledged).
   * @returns {number}
   */
  get pending() {
    let n = 0;
    for (const entry of this.sessions.values()) n += entry.records.length;
    return n;
  }

  save() {
    if (!this.storage) return;
    try {
      if (this.sessions.size) this.storage.setItem(this.key, JSON.stringify(Object.fromEntries(this.sessions)));
      else this.storage.removeItem(this.key);
    } catch (error) {
      console.warn("MUG: cannot keep step records across a reload", error); // they stay kept in memory
    }
  }
}
