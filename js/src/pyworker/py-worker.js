/**
 * The page's handle on the Pyodide worker (`pyworker/worker.js`): starts it
 * once, preloads, starts a game and relays messages both ways (buffers as
 * transferables). See the worker module for the message protocol.
 * @module pyworker/py-worker
 */

/**
 * `environment` with every URL absolute (the worker's base URL is its own script's, not the page's).
 * @param {Object} environment `{pyodide, bundles, wheels, ...}` as the server sent it
 * @param {string|URL} base the page's URL
 * @returns {Object}
 */
export function absoluteEnvironment(environment, base) {
  const abs = (url) => new URL(url, base).href;
  const out = { ...environment, pyodide: abs(environment.pyodide), bundles: (environment.bundles ?? []).map(abs) };
  if (!out.pyodide.endsWith("/")) out.pyodide += "/";
  out.wheels = (environment.wheels ?? []).map(abs);
  out.packages = environment.packages ?? [];
  return out;
}

/** The Pyodide worker of one page. */
export class PyWorker {
  /**
   * @param {string|URL} scriptUrl the worker bundle (`static/pyworker.js`)
   * @param {{onProgress?: Function, onEngine?: (message: Object, buffers: Uint8Array[]) => void,
   *   onFailed?: (failure: {stage: string, message: string}) => void,
   *   onException?: (exception: {message: string, traceback: string}) => void}} handlers
   * @param {(url: string|URL, options: Object) => Worker} [makeWorker]
   */
  constructor(scriptUrl, handlers, makeWorker = (url, options) => new Worker(url, options)) {
    this.scriptUrl = scriptUrl;
    this.handlers = handlers;
    this.makeWorker = makeWorker;
    this.worker = null;
    this.progress = null;
    this.failure = null;
    this.preloaded = new Set();
  }

  ensure() {
    if (this.worker) return this.worker;
    this.worker = this.makeWorker(this.scriptUrl, { type: "module", name: "mug-python" });
    this.worker.onmessage = ({ data }) => this.dispatch(data);
    this.worker.onerror = (event) => {
      event.preventDefault?.();
      this.dispatch({ type: "failed", stage: "runtime", message: `the Python worker failed to start: ${event.message ?? event}` });
    };
    return this.worker;
  }

  dispatch(data) {
    const { onProgress = () => {}, onEngine = () => {}, onFailed = () => {}, onException = () => {} } = this.handlers;
    if (data.type === "progress") {
      this.progress = data;
      onProgress(data);
    } else if (data.type === "engine") onEngine(data.message, data.buffers ?? []);
    else if (data.type === "failed") {
      this.failure = data;
      onFailed(data);
    } else if (data.type === "exception") onException(data);
  }

  /**
   * Start loading Pyodide and bundles ahead of the scene that needs them (again: nothing).
   * @param {{pyodide: string, bundles: string[], package_index_url?: string}} environment absolute URLs
   */
  preload(environment) {
    const key = JSON.stringify([environment.pyodide, environment.bundles]);
    if (this.preloaded.has(key)) return;
    this.preloaded.add(key);
    this.ensure().postMessage({ type: "load", environment });
  }

  /**
   * Load what is missing and start the scene's game, ticking at `fps`.
   * @param {Object} environment the scene's `environment`, absolute URLs
   * @param {number} fps
   */
  start(environment, fps) {
    this.failure = null;
    this.ensure().postMessage({ type: "start", environment, fps });
  }

  /**
   * Send a message to the engine (the `send` a `GameView` is given). Buffers are copied, then transferred.
   * @param {Object} message
   * @param {ArrayBufferView[]} [buffers]
   */
  send(message, buffers = []) {
    const copies = buffers.map((b) => new Uint8Array(b.buffer, b.byteOffset, b.byteLength).slice());
    this.worker?.postMessage({ type: "engine", message, buffers: copies }, copies.map((c) => c.buffer));
  }

  /** Stop the running game (Pyodide stays loaded for the next browser-side scene). */
  stop() {
    this.worker?.postMessage({ type: "stop" });
  }
}
