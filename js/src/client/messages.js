/**
 * The message vocabulary, JS side (twin of `mug/session/messages.py`): the
 * binary envelope, tensor references, checks on what the engine sends, and
 * the messages a client sends.
 * @module client/messages
 */

const MAGIC = [0x4d, 0x55, 0x47, 0x31]; // "MUG1"
const DTYPES = {
  float32: Float32Array,
  float64: Float64Array,
  int32: Int32Array,
  int64: BigInt64Array,
  uint8: Uint8Array,
  int8: Int8Array,
  bool: Uint8Array,
};
const SERVER_TYPES = ["scene", "frame", "episode_end", "scene_end", "ack", "steps_ack", "p2p_ack", "p2p_seat_ai", "error", "waitroom", "paused", "resumed",
  "notice", "p2p", "p2p_peers", "signal", "relay", "p2p_relay"]; // the last five: a peer-to-peer match's mesh (p2p/page.js)

/** A message from the engine that does not fit the vocabulary. */
export class ProtocolError extends Error {
  constructor(message) {
    super(message);
    this.name = "ProtocolError";
  }
}

/**
 * One binary frame holding `message` and its buffers.
 * @param {Object} message
 * @param {ArrayBufferView[]} [buffers]
 * @returns {Uint8Array}
 */
export function encodeEnvelope(message, buffers = []) {
  const views = buffers.map((b) => new Uint8Array(b.buffer, b.byteOffset, b.byteLength));
  const header = new TextEncoder().encode(JSON.stringify({ message, buffers: views.map((v) => v.byteLength) }));
  const total = 8 + header.length + views.reduce((n, v) => n + v.byteLength, 0);
  const out = new Uint8Array(total);
  out.set(MAGIC, 0);
  new DataView(out.buffer).setUint32(4, header.length, true);
  out.set(header, 8);
  let offset = 8 + header.length;
  for (const v of views) {
    out.set(v, offset);
    offset += v.byteLength;
  }
  return out;
}

/**
 * Split an envelope into its message and buffers (views into `data`).
 * @param {ArrayBuffer|Uint8Array} data
 * @returns {{message: Object, buffers: Uint8Array[]}}
 */
export function decodeEnvelope(data) {
  const bytes = data instanceof Uint8Array ? data : new Uint8Array(data);
  if (bytes.length < 8 || MAGIC.some((b, i) => bytes[i] !== b)) throw new ProtocolError("binary message without the MUG1 envelope header");
  const length = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(4, true);
  if (8 + length > bytes.length) throw new ProtocolError("envelope header is longer than the message");
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + length)));
  const buffers = [];
  let offset = 8 + length;
  for (const size of header.buffers) {
    if (offset + size > bytes.length) throw new ProtocolError("envelope buffers are shorter than declared");
    buffers.push(bytes.subarray(offset, offset + size));
    offset += size;
  }
  return { message: header.message, buffers };
}

/**
 * Append a typed array to `buffers` and return its reference.
 * @param {ArrayBufferView} data
 * @param {string} dtype e.g. "float32"
 * @param {number[]} shape
 * @param {ArrayBufferView[]} buffers
 */
export function tensorRef(data, dtype, shape, buffers) {
  buffers.push(data);
  return { buffer: buffers.length - 1, dtype, shape };
}

/**
 * The typed array a reference points at (copied, so it is aligned).
 * @param {{buffer: number, dtype: string, shape: number[]}} ref
 * @param {Array<ArrayBufferView|DataView>} buffers
 * @returns {{data: ArrayBufferView, dtype: string, shape: number[]}}
 */
export function tensorFromRef(ref, buffers) {
  const Kind = DTYPES[ref?.dtype];
  const raw = buffers[ref?.buffer];
  if (!Kind || !raw) throw new ProtocolError(`bad tensor reference ${JSON.stringify(ref)}`);
  const bytes = new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength).slice();
  return { data: new Kind(bytes.buffer), dtype: ref.dtype, shape: ref.shape };
}

/**
 * An observation as the engine sent it: a tensor, or `{dict: {key: tensor}}`.
 * @returns {ArrayBufferView|Object<string, ArrayBufferView>}
 */
export function observationFromRef(ref, buffers) {
  if (ref && ref.dict) return Object.fromEntries(Object.entries(ref.dict).map(([k, r]) => [k, tensorFromRef(r, buffers).data]));
  return tensorFromRef(ref, buffers).data;
}

/**
 * Check a message from the engine; throws `ProtocolError` when it does not fit.
 * @param {unknown} message
 * @returns {Object} the message
 */
export function checkServerMessage(message) {
  if (!message || typeof message !== "object" || !SERVER_TYPES.includes(message.type)) {
    throw new ProtocolError(`unknown message from the engine: ${JSON.stringify(message)?.slice(0, 80)}`);
  }
  if (message.type === "frame" && (!Number.isInteger(message.step) || !message.render || typeof message.render.kind !== "string")) {
    throw new ProtocolError("frame message without step or render");
  }
  if (message.type === "scene" && (!message.scene || typeof message.scene.scene_id !== "string")) {
    throw new ProtocolError("scene message without a scene");
  }
  const check = CHECKS[message.type];
  if (check) check(message);
  return message;
}

const isCount = (v) => v === null || (Number.isInteger(v) && v >= 0);
const isSeconds = (v) => typeof v === "number" && Number.isFinite(v) && v >= 0;
const short = (v) => JSON.stringify(v)?.slice(0, 80);

/** Checks of the match messages (issue 11), by type; each throws `ProtocolError` naming the field. */
const CHECKS = {
  waitroom(m) {
    if (!isCount(m.waiting) || !isCount(m.needed)) throw new ProtocolError(`waitroom message: waiting and needed must be counts or null, got ${short([m.waiting, m.needed])}`);
    if (!isSeconds(m.time_left_s)) throw new ProtocolError(`waitroom message: time_left_s must be seconds >= 0, got ${short(m.time_left_s)}`);
    if (typeof m.message !== "string") throw new ProtocolError(`waitroom message: message must be text, got ${short(m.message)}`);
  },
  paused(m) {
    if (typeof m.reason !== "string") throw new ProtocolError(`paused message: reason must be text, got ${short(m.reason)}`);
    if (!isSeconds(m.time_left_s)) throw new ProtocolError(`paused message: time_left_s must be seconds >= 0, got ${short(m.time_left_s)}`);
    if (typeof m.message !== "string") throw new ProtocolError(`paused message: message must be text, got ${short(m.message)}`);
  },
  p2p_seat_ai(m) {
    if (typeof m.match_id !== "string" || typeof m.seat !== "string") throw new ProtocolError(`p2p_seat_ai message: match_id and seat must be text, got ${short([m.match_id, m.seat])}`);
  },
  notice(m) {
    if (typeof m.code !== "string" || typeof m.message !== "string") throw new ProtocolError(`notice message: code and message must be text, got ${short([m.code, m.message])}`);
  },
  scene(m) {
    const match = matchOf(m);
    if (match === undefined) return;
    if (!match || typeof match !== "object" || typeof match.seat !== "string" || !Number.isInteger(match.seats) || match.seats < 1) {
      throw new ProtocolError(`scene message: match must be {match_id, seat: text, seats: integer >= 1}, got ${short(match)}`);
    }
  },
};

/**
 * The `match` block of a `scene` message (a gym scene played in a match), or `undefined`.
 * Read from the message (`{type: "scene", scene, match}`) or, equally, from its scene metadata.
 * @param {Object} message a `scene` message
 * @returns {{match_id: string, seat: string, seats: number}|undefined}
 */
export function matchOf(message) {
  return message.match ?? message.scene?.match;
}

/**
 * The `visibility` message (page -> server): whether the tab is hidden now; the server timestamps it.
 * @param {boolean} hidden
 * @returns {{type: "visibility", hidden: boolean}}
 */
export function visibilityMessage(hidden) {
  return { type: "visibility", hidden: Boolean(hidden) };
}

/**
 * The `act` message for one step: held keys and browser-side policy results.
 * @param {number} step
 * @param {string[]} keys
 * @param {Object<string, {action: number, logits?: Float32Array|null, states?: Object, rng?: number, steps?: number}>} [results]
 *   `rng`, `steps`: the agent's sampling stream and step count after this step (`PolicyRuntime.position`);
 *   the engine hands them back, with the states, to a page that reloads
 * @param {number} [episode] the frame's episode (lets the engine tell a late act from a future one)
 * @param {number} [dropped] frames this client did not draw since its last act (a newer one overtook them)
 * @returns {{message: Object, buffers: ArrayBufferView[]}}
 */
export function actMessage(step, keys, results = {}, episode = undefined, dropped = 0) {
  const buffers = [];
  const policies = {};
  for (const [agent, r] of Object.entries(results)) {
    const entry = { action: r.action };
    if (r.logits) entry.logits = tensorRef(Float32Array.from(r.logits), "float32", [r.logits.length], buffers);
    const states = {};
    for (const [name, t] of Object.entries(r.states ?? {})) {
      const [data, dtype] = t.data instanceof Float64Array ? [t.data.slice(), "float64"] : [Float32Array.from(t.data), "float32"];
      states[name] = tensorRef(data, dtype, Array.from(t.dims ?? [t.data.length]), buffers);
    }
    entry.states = states;
    if (r.rng !== undefined) Object.assign(entry, { rng: r.rng, steps: r.steps });
    policies[agent] = entry;
  }
  const message = { type: "act", step, keys, policies };
  if (episode !== undefined) message.episode = episode;
  if (dropped) message.dropped = dropped;
  return { message, buffers };
}

/**
 * The saved policy states a `scene` message hands a (re)connecting page:
 * `{agent: {episode, step, rng, steps, states: {name: {data, dims}}}}` with the states' tensors read from `buffers`.
 * @param {Object<string, Object>|undefined} saved the scene message's `you.policy_states`
 * @param {Array<ArrayBufferView>} buffers
 * @returns {Object<string, Object>}
 */
export function policyStatesFromRefs(saved, buffers) {
  const out = {};
  for (const [agent, s] of Object.entries(saved ?? {})) {
    const states = {};
    for (const [name, ref] of Object.entries(s.states ?? {})) {
      const t = tensorFromRef(ref, buffers);
      states[name] = { data: t.data, dims: t.shape };
    }
    out[agent] = { ...s, states };
  }
  return out;
}
