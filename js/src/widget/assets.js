/**
 * Getting binary assets into the widget: ORT's wasm (found once per page: from
 * mug's Jupyter server extension when it is there, else over the comm) and model
 * files (over the comm, by name: "wasm", a model path, or any other name the
 * kernel's `ScenePreview._send_asset` serves).
 * @module widget/assets
 */
import { configureOrt } from "../runtime/ort.js";

const WASM = "ort-wasm-simd-threaded.wasm";

function baseUrl() {
  const data = document.getElementById("jupyter-config-data");
  if (!data) return null;
  try {
    return JSON.parse(data.textContent).baseUrl ?? "/";
  } catch {
    return null;
  }
}

/**
 * Asset requests over one widget's comm: `request(name)` resolves with the bytes.
 * Concurrent requests for one name share one comm request and each resolve (with
 * their own copy); a failed request rejects every waiter and is forgotten, so the
 * next request asks again.
 */
export class CommAssets {
  /** @param {{send: Function}} model the widget model */
  constructor(model) {
    this.model = model;
    /** @type {Map<string, {promise: Promise<Uint8Array>, resolve: Function, reject: Function}>} */
    this.waiting = new Map();
  }

  /** Feed an `asset` message from Python. */
  receive(message, buffers) {
    const pending = this.waiting.get(message.name);
    if (!pending) return;
    this.waiting.delete(message.name);
    if (message.error) pending.reject(new Error(message.error));
    else if (!buffers?.length) pending.reject(new Error(`asset ${message.name}: the kernel sent no bytes`));
    else pending.resolve(new Uint8Array(buffers[0].buffer, buffers[0].byteOffset, buffers[0].byteLength).slice());
  }

  /**
   * @param {string} name "wasm", a model path, or another asset name the kernel serves
   * @returns {Promise<Uint8Array>}
   */
  request(name) {
    let pending = this.waiting.get(name);
    if (!pending) {
      pending = {};
      pending.promise = new Promise((resolve, reject) => Object.assign(pending, { resolve, reject }));
      this.waiting.set(name, pending);
      this.model.send({ type: "asset_request", name });
    }
    return pending.promise.then((bytes) => bytes.slice());
  }
}

async function fetchWithProgress(url, onProgress) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`GET ${url}: HTTP ${response.status}`);
  const total = Number(response.headers.get("Content-Length")) || 0;
  const reader = response.body.getReader();
  const chunks = [];
  let loaded = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    loaded += value.byteLength;
    onProgress({ stage: "wasm", loaded, total });
  }
  const bytes = new Uint8Array(loaded);
  let at = 0;
  for (const c of chunks) {
    bytes.set(c, at);
    at += c.byteLength;
  }
  return bytes;
}

/**
 * Configure ORT for this module instance. The wasm is fetched once per page
 * (from mug's server extension, with byte progress, else over the comm); each
 * widget's module (anywidget may load one per widget) points its own ORT at it.
 * A failed load is reported to every widget waiting and retried by the next one.
 * Resolves to how the wasm came: "server-extension" or "comm".
 * @param {CommAssets} assets
 * @param {(progress: {stage: string, loaded?: number, total?: number}) => void} [onProgress]
 * @returns {Promise<string>}
 */
export async function ensureOrt(assets, onProgress = () => {}) {
  const shared = (globalThis.__mugOrt ??= { source: null, listeners: new Set() });
  shared.listeners.add(onProgress);
  const report = (progress) => shared.listeners.forEach((listen) => listen(progress));
  shared.source ??= (async () => {
    const base = baseUrl();
    if (base !== null) {
      const url = new URL(`${base}mug/static/${WASM}`, window.location.href).href;
      const probe = await fetch(url, { method: "HEAD" }).catch(() => null);
      if (probe?.ok) return { how: "server-extension", wasmBinary: await fetchWithProgress(url, report) };
    }
    report({ stage: "wasm-comm" });
    return { how: "comm", wasmBinary: await assets.request("wasm") };
  })();
  const source = shared.source;
  try {
    const { how, wasmBinary } = await source;
    configureOrt({ wasmBinary });
    return how;
  } catch (error) {
    if (shared.source === source) shared.source = null; // the next widget tries again
    throw error;
  } finally {
    shared.listeners.delete(onProgress);
  }
}
