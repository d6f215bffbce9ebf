/**
 * An environment scene in the browser: the canvas, the HUD and the keyboard
 * around this client's `Player` (client/player.js: the keys -> act and the AI
 * agents this client runs, shared with the simulated participants).
 * Host-agnostic: it talks through `send(message, buffers)`, so the participant
 * page and the notebook preview both use it.
 * @module client/game
 */
import { CanvasRenderer } from "../render/canvas.js";
import { card } from "./pages.js";
import { Player } from "./player.js";

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
    const box = card(root, meta);
    this.hud = Object.assign(document.createElement("div"), { className: "mug-hud" });
    this.canvas = Object.assign(document.createElement("canvas"), { id: "mug-canvas", tabIndex: 0 });
    this.status = Object.assign(document.createElement("p"), { className: "mug-loading" });
    box.append(this.hud, this.canvas, this.status);
    if (meta.controls) box.append(Object.assign(document.createElement("p"), { textContent: meta.controls }));
    this.renderer = new CanvasRenderer(this.canvas, { width: meta.width, height: meta.height, background: meta.background });
    const images = this.loadImages(fetchAsset);
    this.player = new Player(meta, {
      send,
      fetchAsset,
      onError: (error) => this.reportError(error),
      onPolicyStep,
      show: async (message, buffers, draw) => {
        await images;
        if (draw) {
          await this.renderer.draw(message.render, buffers);
          this.hud.textContent = message.hud ?? "";
        } else this.renderer.skip(message.render);
      },
    });
    if (meta.you.runs_policies.length) {
      this.status.textContent = "Loading the AI partner…";
      this.player.ready.then(() => (this.status.textContent = ""));
    }
    this.ready = Promise.all([this.player.ready, images]);
    this.listen();
    if (keyTarget === window) this.canvas.focus();
  }

  /** The browser-side policies' runtimes by agent. @returns {Map<string, PolicyRuntime>} */
  get runtimes() {
    return this.player.runtimes;
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
      if (!this.canvas.isConnected || !this.player.keyDown(event.key, event.repeat)) return;
      event.preventDefault();
      event.stopPropagation();
    };
    this.onKeyUp = (event) => this.player.keyUp(event.key);
    this.onBlur = () => this.player.releaseAll();
    this.keyTarget.addEventListener("keydown", this.onKeyDown);
    this.keyTarget.addEventListener("keyup", this.onKeyUp);
    this.keyTarget.addEventListener(this.keyTarget === window ? "blur" : "focusout", this.onBlur);
  }

  /** Stop listening to the keyboard and handling frames. */
  close() {
    this.player.close();
    this.keyTarget.removeEventListener("keydown", this.onKeyDown);
    this.keyTarget.removeEventListener("keyup", this.onKeyUp);
    this.keyTarget.removeEventListener(this.keyTarget === window ? "blur" : "focusout", this.onBlur);
  }

  reportError(error) {
    const text = error?.message ?? String(error);
    this.onError(text);
    this.send({ type: "client_error", message: text.slice(0, 2000) });
  }

  /**
   * Handle one frame: draw it, run this client's policies on their observations, act (see `Player.frame`).
   * @returns {Promise<void>} resolves when every frame received so far is handled
   */
  frame(message, buffers) {
    return this.player.frame(message, buffers);
  }
}
