/**
 * Records a browser-side game makes, on their way to the server: each
 * message of records the engine posts is kept until the server's ack says
 * it committed everything up to a number, and sent on in batches: records
 * wait up to `sendEveryMs` (default `SEND_EVERY_MS`) so that one message
 * carries many of them, and an urgent record (for step records: an event,
 * such as an episode's or the scene's end, or an error) sends everything
 * waiting at once. After a reconnect every record not acknowledged is sent
 * again (the server stores a record seen twice once).
 *
 * Two wires use it: a browser-side scene's `steps` {session_id, scene_id,
 * records: [{seq, ...}]} acked by `steps_ack` {session_id, seq} (the
 * default), and a peer-to-peer match's `p2p_frames` {match_id, records:
 * [{frame, ...}]} acked by `p2p_ack` {match_id, frame} (`P2P_FRAMES`).
 * Kept records can also be written to `storage` (the tab's
 * sessionStorage), so a reload of the page sends them again too.
 * @module pyworker/step-uploader
 */

/** Largest message a resend builds, in bytes of JSON (under the server's message limit). */
export const MAX_BATCH_BYTES = 64 * 1024;

/** Milliseconds records wait to be sent together (15 records a message at 30 fps). */
export const SEND_EVERY_MS = 500;

/** Whether a confirmed frame record ends its episode (every agent terminated or truncated) or the match. */
function endsEpisode(record) {
  const result = record.result ?? {};
  const agents = Object.keys(result.terminated ?? {});
  return result.kind === "over" || (agents.length > 0 && agents.every((a) => result.terminated[a] || result.truncated?.[a]));
}

/** The wire of a peer-to-peer match's confirmed frames (the options of a `StepUploader`). */
export const P2P_FRAMES = { type: "p2p_frames", idKey: "match_id", seqKey: "frame", urgent: endsEpisode };

/** Records not yet acknowledged, per game session (or match). */
export class StepUploader {
  /**
   * @param {{send: (message: Object) => void, storage?: Storage|null, key?: string, sendEveryMs?: number,
   *   type?: string, idKey?: string, seqKey?: string, urgent?: (record: Object) => boolean}} options
   *   `send`: to the server (dropped while disconnected: the records stay kept); `storage`/`key`: where
   *   kept records survive a reload; `sendEveryMs`: how long records may wait to go out together
   *   (0: each message at once); `type`, `idKey`, `seqKey`: the message type, the field naming the
   *   session and the record field numbering records (`steps`, `session_id`, `seq` by default);
   *   `urgent`: records that go out at once with everything waiting (default: `kind == "event"`)
   */
  constructor({
    send,
    storage = null,
    key = "mug-steps",
    sendEveryMs = SEND_EVERY_MS,
    type = "steps",
    idKey = "session_id",
    seqKey = "seq",
    urgent = (record) => record.kind === "event",
  }) {
    Object.assign(this, { send, storage, key, sendEveryMs, type, idKey, seqKey, urgent });
    /** Records kept but not sent yet, per session. @type {Map<string, {records: Object[]}>} */
    this.waiting = new Map();
    this.timer = null;
    /** Per session: the message's other fields (e.g. `scene_id`) and the records kept. @type {Map<string, Object>} */
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
   * A message of records from the engine: keep its records, send them.
   * @param {{records: Object[]}} message with its session field (`idKey`) and any others to send along
   */
  add(message) {
    const { type: _type, records, [this.idKey]: id, ...head } = message;
    const entry = this.sessions.get(id) ?? { ...head, records: [] };
    const last = entry.records.length ? entry.records[entry.records.length - 1][this.seqKey] : -Infinity;
    const fresh = records.filter((r) => r[this.seqKey] > last);
    entry.records.push(...fresh);
    this.sessions.set(id, entry);
    this.save();
    const waiting = this.waiting.get(id) ?? { records: [] };
    waiting.records.push(...fresh);
    this.waiting.set(id, waiting);
    if (this.sendEveryMs <= 0 || fresh.some(this.urgent)) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), this.sendEveryMs);
  }

  /** Send every record waiting to go out now. */
  flush() {
    clearTimeout(this.timer);
    this.timer = null;
    const waiting = this.waiting;
    this.waiting = new Map();
    for (const [id, { records }] of waiting) this.sendBatches(id, records);
  }

  /**
   * The server committed the records of a session up to a number: forget them.
   * @param {Object} ack `{[idKey]: id, [seqKey]: n}` (e.g. a `steps_ack` or a `p2p_ack`)
   */
  ack({ [this.idKey]: id, [this.seqKey]: seq }) {
    const entry = this.sessions.get(id);
    if (!entry || !Number.isInteger(seq)) return;
    entry.records = entry.records.filter((r) => r[this.seqKey] > seq);
    if (!entry.records.length) this.sessions.delete(id);
    this.save();
  }

  /**
   * Forget the records of session `id` numbered `from` and above, sent or not (a peer that restarted from
   * another peer's state confirms them again, and sends them again).
   * @param {string} id
   * @param {number} from
   */
  drop(id, from) {
    for (const map of [this.sessions, this.waiting]) {
      const entry = map.get(id);
      if (entry) entry.records = entry.records.filter((r) => r[this.seqKey] < from);
    }
    if (this.sessions.get(id)?.records.length === 0) this.sessions.delete(id);
    this.save();
  }

  /** Send every kept record again, in order (those waiting to go out among them). */
  resend() {
    clearTimeout(this.timer);
    this.timer = null;
    this.waiting = new Map();
    for (const [id, { records }] of this.sessions) this.sendBatches(id, records);
  }

  /** `records` of one session, in order, in messages of at most `MAX_BATCH_BYTES` of JSON. */
  sendBatches(id, records) {
    const { records: _kept, ...head } = this.sessions.get(id) ?? {};
    let batch = [];
    let size = 0;
    const send = () => {
      if (batch.length) this.send({ type: this.type, ...head, [this.idKey]: id, records: batch });
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
      console.warn("MUG: cannot keep records across a reload", error); // they stay kept in memory
    }
  }
}
