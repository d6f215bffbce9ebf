/**
 * Frames waiting to be handled, one at a time and in order, without falling
 * behind: a frame that a newer one has overtaken is not drawn (it is
 * "dropped" and counted), and it is not acted on unless it must be (it
 * carries observations for this client's policies, whose result the engine
 * waits for, or the scene is lockstep).
 * @module client/frame-queue
 */

/** The frames a client has received and not handled yet. */
export class FrameQueue {
  /**
   * @param {(frame: Object, how: {draw: boolean, act: boolean}) => Promise<void>} handle
   *   handles one frame: `draw` when it is the newest, `act` when an `act` must answer it
   * @param {{mustAct: (frame: Object) => boolean, onError?: (error: unknown) => void}} options
   *   `mustAct`: whether an overtaken frame still needs its act
   */
  constructor(handle, { mustAct, onError = () => {} }) {
    this.handle = handle;
    this.mustAct = mustAct;
    this.onError = onError;
    this.waiting = [];
    this.dropped = 0;
    this.running = null;
  }

  /**
   * Queue a frame; resolves once every frame queued so far is handled.
   * @param {Object} frame
   * @returns {Promise<void>}
   */
  push(frame) {
    this.waiting.push(frame);
    this.running ??= this.run();
    return this.running;
  }

  async run() {
    await null; // frames pushed in the same task as the first are queued before it is handled
    while (this.waiting.length) {
      const frame = this.waiting.shift();
      const draw = this.waiting.length === 0;
      if (!draw) this.dropped++;
      try {
        await this.handle(frame, { draw, act: draw || Boolean(this.mustAct(frame)) });
      } catch (error) {
        this.onError(error);
      }
    }
    this.running = null;
  }

  /** Forget the frames not handled yet (the scene is over for this view). */
  clear() {
    this.waiting.length = 0;
  }

  /**
   * Frames dropped since the last call (what the next `act` reports).
   * @returns {number}
   */
  takeDropped() {
    const n = this.dropped;
    this.dropped = 0;
    return n;
  }
}
