/**
 * Getting binary assets into the widget: ORT's wasm (found once per page: from
 * mug's Jupyter server extension when it is there, else over the comm) and model
 * files (over the comm).
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

/** Asset requests over one widget's comm: `request(name)` resolves with the bytes. */
export class CommAssets {
  constructor(model) {
    this.model = model;
    this.waiting = new Map();
  }

  /** Feed an `asset` message from Python. */
  receive(message, buffers) {
    const pending = this.waiting.get(message.name);
    if (!pending) return;
    this.waiting.delete(message.name);
    if (message.error) pending.reject(new Error(message.error));
    else pending.resolve(new Uint8Array(buffers[0].buffer, buffers[0].byteOffset, buffers[0].byteLength).slice());
  }

  /**
   * @param {string} name "wasm" or a model path
   * @returns {Promise<Uint8Array>}
   */
  request(name) {
    return new Promise((resolve, reject) => {
      this.waiting.set(name, { resolve, reject });
      this.model.send({ type: "asset_request", name });
    });
  }
}

/**
 * Configure ORT for this module instance. The wasm is located (or fetched over
 * the comm) once per page; each widget's module (anywidget may load one per
 * widget) points its own ORT at it. Resolves to how the wasm came:
 * "server-extension" or "comm".
 * @param {CommAssets} assets
 * @returns {Promise<string>}
 */
export async function ensureOrt(assets) {
  globalThis.__mugOrtSource ??= (async () => {
    const base = baseUrl();
    if (base !== null) {
      const url = new URL(`${base}mug/static/${WASM}`, window.location.href).href;
      const probe = await fetch(url, { method: "HEAD" }).catch(() => null);
      if (probe?.ok) return { how: "server-extension", options: { wasmUrl: url } };
    }
    return { how: "comm", options: { wasmBinary: await assets.request("wasm") } };
  })();
  const { how, options } = await globalThis.__mugOrtSource;
  configureOrt(options);
  return how;
}
