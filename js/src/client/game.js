/**
 * An environment scene in the browser: the canvas, the HUD, the keyboard, and
 * the AI agents this client runs (the same PolicyRuntime as everywhere).
 * Host-agnostic: it talks through `send(message, buffers)`, so the participant
 * page and the notebook preview both use it.
 * @module client/game
 */
import { CanvasRenderer } from "../render/canvas.js";
import { PolicyRuntime } from "../runtime/index.js";
import { FrameQueue } from "./frame-queue.js";
import { actMessage, observationFromRef } from "./messages.js";
import { card } from "./pages.js";

/** One running environment scene. */
export class GameView {
  /**
   * @param {HTMLElement} root
   * @param {Object} meta the scene message's `scene`
   * @param {{send: Function, fetchAsset: (path: string) => Promise<Uint8Array>, onError: (text: string) => void,
   *   keyTarget?: EventTarget, onPolicyStep?: (agent: string, result: Object, step: number) => void}} host
   *   `fetchAsset`: the bytes of a model (`models/<scene>/<agent>.onnx`) or a declared image
   *   (`assets/<scene>/<name>`); `keyTarget`: where keys are listened to (default: the window; the
   *   notebook widget passes itself, so keys only play while it has focus); `onPolicyStep`: sees every
   *   browser-side policy result
   */
  constructor(root, meta, { send, fetchAsset, onError, keyTarget = window, onPolicyStep = () => {} }) {
    this.meta = meta;
    this.send = send;
    this.onError = onError;
    this.keyTarget = keyTarget;
    this.onPolicyStep = onPolicyStep;
    const box = card(root, meta);
    this.hud = Object.assign(document.createElement("div"), { className: "mug-hud" });
    this.canvas = Object.assign(document.createElement("canvas"), { id: "mug-canvas", tabIndex: 0 });
    this.status = Object.assign(document.createElement("p"), { className: "mug-loading" });
    box.append(this.hud, this.canvas, this.status);
    if (meta.controls) box.append(Object.assign(document.createElement("p"), { textContent: meta.controls }));
    this.renderer = new CanvasRenderer(this.canvas, { width: meta.width, height: meta.height, background: meta.background });
    this.keys = new Set(meta.keys);
    this.held = new Set();
    this.presses = [];
    this.humans = meta.you.humans.length > 0;
    this.pending = null;
    this.episode = -1;
    this.runtimes = new Map();
    this.queue = new FrameQueue((frame, how) => this.handleFrame(frame, how), {
      mustAct: ({ message }) => meta.mode === "lockstep" || Object.keys(message.observations ?? {}).length > 0,
      onError: (error) => this.reportError(error),
    });
    this.ready = Promise.all([this.loadPolicies(fetchAsset), this.loadImages(fetchAsset)]);
    this.listen();
    if (keyTarget === window) this.canvas.focus();
  }

  async loadPolicies(fetchAsset) {
    const agents = this.meta.you.runs_policies;
    if (!agents.length) return;
    this.status.textContent = "Loading the AI partner…";
    const saved = this.meta.you.policy_states ?? {};
    for (const agent of agents) {
      const policy = this.meta.policies[agent];
      try {
        const model = await fetchAsset(policy.model_url);
        const runtime = await PolicyRuntime.create({ model, config: policy.config, seed: this.meta.policy_seed, name: agent });
        this.runtimes.set(agent, runtime);
        if (saved[agent]) {
          // the page reloaded mid-episode: the agent goes on from its last step, as if nothing happened
          runtime.resume(agent, saved[agent]);
          this.episode = saved[agent].episode;
        }
      } catch (error) {
        this.reportError(error);
      }
    }
    this.status.textContent = "";
  }

  /** Fetch and decode the scene's declared images (`surface.image` draws them by name). */
  async loadImages(fetchAsset) {
    await Promise.all(
      (this.meta.images ?? []).map(async (name) => {
        const path = `assets/${encodeURIComponent(this.meta.scene_id)}/${encodeURIComponent(name)}`;
        try {
          this.renderer.images.set(name, await createImageBitmap(new Blob([await fetchAsset(path)])));
        } catch (error) {
          this.reportError(new Error(`image '${name}' (${path}) could not be loaded: ${error?.message ?? error}`));
        }
      }),
    );
  }

  listen() {
    this.onKeyDown = (event) => {
      if (!this.keys.has(event.key) || !this.canvas.isConnected) return;
      event.preventDefault();
      event.stopPropagation();
      if (!event.repeat) this.presses.push(event.key);
      this.held.add(event.key);
      if (this.pending && this.humans) this.flushLockstep();
    };
    this.onKeyUp = (event) => this.held.delete(event.key);
    this.onBlur = () => this.held.clear();
    this.keyTarget.addEventListener("keydown", this.onKeyDown);
    this.keyTarget.addEventListener("keyup", this.onKeyUp);
    this.keyTarget.addEventListener(this.keyTarget === window ? "blur" : "focusout", this.onBlur);
  }

  /** Stop listening to the keyboard and handling frames. */
  close() {
    this.queue.clear();
    this.keyTarget.removeEventListener("keydown", this.onKeyDown);
    this.keyTarget.removeEventListener("keyup", this.onKeyUp);
    this.keyTarget.removeEventListener(this.keyTarget === window ? "blur" : "focusout", this.onBlur);
  }

  reportError(error) {
    const text = error?.message ?? String(error);
    this.onError(text);
    this.send({ type: "client_error", message: text.slice(0, 2000) });
  }

  keysForAct() {
    if (this.meta.input_mode === "single_keystroke") return this.presses.splice(0, this.presses.length);
    return [...this.held];
  }

  /**
   * Handle one frame: draw it, run this client's policies on their observations, act.
   * Frames are handled one after another, in order; one overtaken by a newer frame is
   * not drawn (counted in the next act's `dropped`) and, unless the engine waits for
   * its act (it carries observations, or the scene is lockstep), not acted on.
   * @returns {Promise<void>} resolves when every frame received so far is handled
   */
  frame(message, buffers) {
    return this.queue.push({ message, buffers });
  }

  async handleFrame({ message, buffers }, { draw, act }) {
    await this.ready;
    if (draw) {
      await this.renderer.draw(message.render, buffers);
      this.hud.textContent = message.hud ?? "";
    } else this.renderer.skip(message.render);
    if (!act) return;
    if (message.episode !== this.episode) {
      this.episode = message.episode;
      for (const runtime of this.runtimes.values()) runtime.boundary("episode");
    }
    const results = {};
    for (const [agent, ref] of Object.entries(message.observations ?? {})) {
      const runtime = this.runtimes.get(agent);
      if (runtime) {
        results[agent] = { ...(await runtime.step(observationFromRef(ref, buffers), agent)), ...runtime.position(agent) };
        this.onPolicyStep(agent, results[agent], message.step);
      }
    }
    if (this.meta.mode === "lockstep" && this.humans) {
      this.pending = { step: message.step, episode: message.episode, results };
      if (this.meta.input_mode === "single_keystroke" ? this.presses.length : this.held.size) this.flushLockstep();
      return;
    }
    this.act(message.step, message.episode, this.keysForAct(), results);
  }

  flushLockstep() {
    const { step, episode, results } = this.pending;
    const keys = this.meta.input_mode === "single_keystroke" ? this.presses.splice(0, 1) : [...this.held];
    this.pending = null;
    this.act(step, episode, keys, results);
  }

  act(step, episode, keys, results) {
    const { message, buffers } = actMessage(step, keys, results, episode, this.queue.takeDropped());
    this.send(message, buffers);
  }
}
