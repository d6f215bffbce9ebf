/**
 * One client's part of an environment scene, without a screen: the keys it
 * holds and presses, the browser-side policies it runs (the same
 * PolicyRuntime as everywhere), and the `act` it answers each frame with.
 * DOM-free: the participant page and the notebook preview (through
 * `GameView`) and the simulated participants (`client/bot.js`, under Node)
 * all act through it, so an act is built in one place.
 * @module client/player
 */
import { PolicyRuntime } from "../runtime/index.js";
import { FrameQueue } from "./frame-queue.js";
import { actMessage, observationFromRef } from "./messages.js";

/** A client's seat in one running environment scene. */
export class Player {
  /**
   * @param {Object} meta the scene message's `scene`
   * @param {{send: (message: Object, buffers?: ArrayBufferView[]) => void,
   *   fetchAsset: (path: string) => Promise<Uint8Array>,
   *   onError: (error: unknown) => void,
   *   show?: (message: Object, buffers: Uint8Array[], draw: boolean) => (Promise<void>|void),
   *   onPolicyStep?: (agent: string, result: Object, step: number) => void}} host
   *   `send`: where acts go; `fetchAsset`: a model's bytes by its `model_url`; `onError`: a policy that
   *   failed to load or step; `show`: sees every handled frame before its act (`draw` false for one a
   *   newer frame overtook); `onPolicyStep`: sees every browser-side policy result
   */
  constructor(meta, { send, fetchAsset, onError, show = () => {}, onPolicyStep = () => {} }) {
    this.meta = meta;
    this.send = send;
    this.onError = onError;
    this.show = show;
    this.onPolicyStep = onPolicyStep;
    this.keys = new Set(meta.keys);
    this.held = new Set();
    this.presses = [];
    this.humans = meta.you.humans.length > 0;
    this.pending = null;
    this.episode = -1;
    this.runtimes = new Map();
    this.queue = new FrameQueue((frame, how) => this.handleFrame(frame, how), {
      mustAct: ({ message }) => meta.mode === "lockstep" || Object.keys(message.observations ?? {}).length > 0,
      onError: (error) => this.onError(error),
    });
    this.ready = this.loadPolicies(fetchAsset);
  }

  /** Load the policies this client runs (resuming the saved state a reconnecting client is handed). */
  async loadPolicies(fetchAsset) {
    const saved = this.meta.you.policy_states ?? {};
    for (const agent of this.meta.you.runs_policies) {
      const policy = this.meta.policies[agent];
      try {
        const model = await fetchAsset(policy.model_url);
        const runtime = await PolicyRuntime.create({ model, config: policy.config, seed: this.meta.policy_seed, name: agent });
        this.runtimes.set(agent, runtime);
        if (saved[agent]) {
          // the client reloaded mid-episode: the agent goes on from its last step, as if nothing happened
          runtime.resume(agent, saved[agent]);
          this.episode = saved[agent].episode;
        }
      } catch (error) {
        this.onError(error);
      }
    }
  }

  /**
   * A key went down; returns whether the scene uses it (the page then keeps it from the browser).
   * @param {string} key `KeyboardEvent.key`
   * @param {boolean} [repeat] an auto-repeat of a held key (not a new press)
   * @returns {boolean}
   */
  keyDown(key, repeat = false) {
    if (!this.keys.has(key)) return false;
    if (!repeat) this.presses.push(key);
    this.held.add(key);
    if (this.pending && this.humans) this.flushLockstep();
    return true;
  }

  /** A key went up. @param {string} key */
  keyUp(key) {
    this.held.delete(key);
  }

  /** Every key is up (the page lost focus). */
  releaseAll() {
    this.held.clear();
  }

  /**
   * Queue one frame from the engine: shown, then answered by an act (see `FrameQueue`).
   * @returns {Promise<void>} resolves when every frame received so far is handled
   */
  frame(message, buffers) {
    return this.queue.push({ message, buffers });
  }

  /** Forget the frames not handled yet (the scene is over for this client). */
  close() {
    this.queue.clear();
  }

  keysForAct() {
    if (this.meta.input_mode === "single_keystroke") return this.presses.splice(0, this.presses.length);
    return [...this.held];
  }

  async handleFrame({ message, buffers }, { draw, act }) {
    await this.ready;
    await this.show(message, buffers, draw);
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
