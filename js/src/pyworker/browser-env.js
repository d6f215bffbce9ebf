/**
 * Browser-side environments in the participant page: the glue between the
 * server's `scene` (with `environment.where == "browser"`), the Pyodide
 * worker and the page's one message dispatch. The worker's engine messages
 * (`scene`, `frame`, ...) go to the same dispatch as the server's, so the
 * ordinary `GameView` plays them; its `act`s come back here and go to the
 * worker. `steps` records go to the server through a `StepUploader`. A peer-to-peer match scene (its
 * spec has `p2p`) runs a `P2PGame` in the worker; its mesh, AI seats and record are a `P2PMatch`'s.
 * @module pyworker/browser-env
 */
import { checkServerMessage } from "../client/messages.js";
import { card, showError } from "../client/pages.js";
import { P2P_ENGINE_TYPES, P2PMatch } from "./p2p-match.js";
import { ProgressView } from "./progress-view.js";
import { absoluteEnvironment, PyWorker } from "./py-worker.js";
import { StepUploader } from "./step-uploader.js";

/** What the participant is told when the game failed in their browser. */
export const ENV_FAILED_TEXT = "Sorry, the game stopped because of an error on our side. This round has ended; what you played so far is saved.";
/** What the participant is told when the game could not be loaded. */
export const LOAD_FAILED_TEXT =
  "Sorry, the game could not be loaded in your browser. Check your internet connection and reload the page; " +
  "if this keeps happening, please contact the researcher.";

/** The browser-side environment scenes of one participant page. */
export class BrowserEnvironments {
  /**
   * @param {{root: HTMLElement, base: string|URL, workerUrl: string|URL, sendToServer: (message: Object) => void,
   *   deliver: (message: Object, buffers: Uint8Array[]) => void, closeGame: () => void,
   *   storage?: Storage|null, storageKey?: string, makeWorker?: Function, events?: EventTarget|null}} options
   *   `deliver`: the page's dispatch for engine messages; `closeGame`: close the page's game view (a browser-side
   *   scene starts, or its game failed); `events`: where a P2P match's `mug-p2p` event comes (the window)
   */
  constructor({ root, base, workerUrl, sendToServer, deliver, closeGame, storage = null, storageKey, makeWorker, events }) {
    Object.assign(this, { root, base, sendToServer, deliver, closeGame });
    this.uploader = new StepUploader({ send: sendToServer, storage, key: storageKey });
    this.p2p = new P2PMatch({
      sendToServer,
      toWorker: (message) => this.worker.send(message),
      fetchAsset: async (path) => {
        const response = await fetch(new URL(path, base));
        if (!response.ok) throw new Error(`GET ${path}: ${response.status} ${response.statusText}`);
        return new Uint8Array(await response.arrayBuffer());
      },
      onError: (text) => this.failed({ message: text, traceback: "" }),
      ...(events !== undefined ? { events } : {}),
    });
    this.worker = new PyWorker(
      workerUrl,
      {
        onProgress: (progress) => this.view?.show(progress),
        onEngine: (message, buffers) => this.fromEngine(message, buffers),
        onFailed: (failure) => this.loadFailed(failure),
        onException: (exception) => this.failed(exception),
      },
      makeWorker,
    );
    /** The running browser-side scene: `{sceneId, sessionId, episode, step, over, failed}`. */
    this.current = null;
  }

  /**
   * Start loading, during this scene, what a later browser-side scene needs: the server `scene` message's
   * `preload` {pyodide, bundles} (top level, as the contract has it; or in the scene's metadata).
   * @param {Object} message a server `scene` message
   */
  preload(message) {
    const preload = message.preload ?? message.scene?.preload;
    if (preload?.pyodide) this.worker.preload(absoluteEnvironment(preload, this.base));
  }

  /**
   * Whether `message` (a server `scene`) is a browser-side scene; if so, it starts here (or, for the scene
   * already running, such as after a reconnect, goes on).
   * @param {Object} message
   * @returns {boolean}
   */
  begin(message) {
    const meta = message.scene;
    if (meta.environment?.where !== "browser") {
      this.leave();
      return false;
    }
    // the scene again (a reconnect): the game in this page goes on in its own session (the server offers every
    // `ready` a new one, which only a reloaded page takes), or stays over (a failed game is not restarted)
    if (this.current?.sceneId === meta.scene_id) return true;
    this.leave();
    this.closeGame();
    this.current = { sceneId: meta.scene_id, sessionId: null, episode: null, step: null };
    this.view = new ProgressView(card(this.root, meta));
    if (this.worker.progress) this.view.show(this.worker.progress);
    if (meta.environment.spec?.p2p) this.p2p.begin(meta);
    this.worker.start(absoluteEnvironment(meta.environment, this.base), meta.fps);
    this.worker.send({ type: "ready" });
    return true;
  }

  /** The participant left the browser-side scene (the server moved on): stop its game. */
  leave() {
    if (!this.current) return;
    // the page that follows a failed game says why the game ended (after the dispatch has shown that page)
    if (this.current.failed) queueMicrotask(() => showError(this.root, ENV_FAILED_TEXT));
    this.p2p.leave();
    this.worker.stop();
    this.current = null;
    this.view = null;
  }

  /** The `send` of the `GameView` playing a browser-side scene: to the worker's engine. */
  send(message, buffers) {
    this.worker.send(message, buffers);
  }

  fromEngine(message, buffers) {
    const current = this.current;
    if (!current) return;
    if (message.type === "steps") {
      this.uploader.add(message);
      return;
    }
    if (P2P_ENGINE_TYPES.includes(message.type)) {
      this.p2p.fromEngine(message);
      return;
    }
    if (message.type === "env_error") {
      // the engine's own report of its failure (with the Python traceback): for the server
      this.stopped();
      this.sendToServer(message);
      return;
    }
    try {
      checkServerMessage(message);
    } catch (error) {
      this.failed({ message: `the engine sent a malformed message: ${error.message}`, traceback: "" });
      return;
    }
    if (message.type === "scene") {
      current.sessionId = message.session_id ?? null;
      this.view = null;
    } else if (message.type === "frame") Object.assign(current, { episode: message.episode, step: message.step });
    else if (message.type === "scene_end") current.over = true;
    else if (message.type === "error" && message.fatal) {
      this.stopped(); // the engine's `env_error` report follows (BrowserGame posts one for every failure)
      return;
    }
    this.deliver(message, buffers);
  }

  /** The game stopped in failure: tell the participant (also on the page the study goes on to); whether it was
   * still running. */
  stopped() {
    const current = this.current;
    if (!current || current.over) return false;
    current.over = true;
    current.failed = true;
    this.worker.stop();
    this.closeGame();
    showError(this.root, ENV_FAILED_TEXT);
    return true;
  }

  /** Python raised past the engine, or the engine sent what the page cannot read: tell the participant and the
   * server. */
  failed({ message, traceback }) {
    const current = this.current;
    if (!this.stopped()) return;
    this.sendToServer({
      type: "env_error",
      session_id: current.sessionId,
      episode: current.episode,
      step: current.step,
      message: String(message).slice(0, 2000),
      traceback: String(traceback).slice(0, 20000),
    });
  }

  loadFailed({ stage, message }) {
    if (!this.current || this.current.over) return; // a preload failed: the scene that needs it reports it
    this.current.over = true;
    showError(this.root, LOAD_FAILED_TEXT);
    this.sendToServer({ type: "client_error", message: `loading Python (${stage}) failed: ${message}`.slice(0, 2000) });
  }

  /** The server's `steps_ack` or `p2p_ack`. */
  ack(message) {
    if (message.type === "p2p_ack") this.p2p.ack(message);
    else this.uploader.ack(message);
  }

  /** The socket (re)opened: send the records not acknowledged again (after the page's `ready`, which the
   * connection sends once its status handlers have run: a restarted server resumes the participant first). */
  reconnected() {
    queueMicrotask(() => {
      this.uploader.resend();
      this.p2p.reconnected();
    });
    if (this.current && !this.current.over) this.root.querySelector(":scope > .mug-error")?.remove(); // the game went on
  }

  /** Whether a browser-side scene is being played here (server frames are not for it). */
  get active() {
    return this.current !== null;
  }
}
