/**
 * Step records of browser-side environments on their way to the server:
 * each `steps` message the engine posts is sent on at once and kept until
 * the server's `steps_ack` {session_id, seq} says it committed everything up
 * to `seq`; after a reconnect every record not acknowledged is sent again
 * (the server stores a record seen twice once: it dedups on (session_id, seq)).
 * Kept records are also written to `storage` (the tab's sessionStorage), so
 * a reload of the page sends them again too.
 * @module pyworker/step-uploader
 */

/** Largest `steps` message a resend builds, in bytes of JSON (under the server's message limit). */
export const MAX_BATCH_BYTES = 64 * 1024;

/** Step records not yet acknowledged, per game session. */
export class StepUploader {
  /**
   * @param {{send: (message: Object) => void, storage?: Storage|null, key?: string}} options
   *   `send`: to the server (dropped while disconnected: the records stay kept); `storage`/`key`: where
   *   kept records survive a reload
   */
  constructor({ send, storage = null, key = "mug-steps" }) {
    this.send = send;
    this.storage = storage;
    this.key = key;
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
    entry.records.push(...message.records.filter((r) => r.seq > last));
    this.sessions.set(message.session_id, entry);
    this.save();
    this.send({ type: "steps", session_id: message.session_id, scene_id: message.scene_id, records: message.records });
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

  /** Send every kept record again, in order, in messages of at most `MAX_BATCH_BYTES`. */
  resend() {
    for (const [sessionId, { scene_id: sceneId, records }] of this.sessions) {
      let batch = [];
      let size = 0;
      const flush = () => {
        if (batch.length) this.send({ type: "steps", session_id: sessionId, scene_id: sceneId, records: batch });
        batch = [];
        size = 0;
      };
      for (const record of records) {
        const bytes = JSON.stringify(record).length;
        if (size + bytes > MAX_BATCH_BYTES) flush();
        batch.push(record);
        size += bytes;
      }
      flush();
    }
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
