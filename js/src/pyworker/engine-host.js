/**
 * The Python engine inside the worker: builds `mug.browser.BrowserGame(spec, post)`
 * in a loaded Pyodide, hands it the page's messages, ticks it at the scene's
 * frame rate on a steady clock, and turns what it posts into worker messages.
 * No DOM and no `self`: the worker entry and the Node tests both drive it.
 * @module pyworker/engine-host
 */

/** Python glue, run once per Pyodide: JSON across the boundary, buffers as `bytes` both ways. */
const GLUE = `
import json as _mug_json

def _mug_new_game(spec_json, js_post):
    from mug.browser import BrowserGame

    def post(message, buffers=()):
        js_post(_mug_json.dumps(message), [bytes(b) for b in buffers])

    return BrowserGame(_mug_json.loads(spec_json), post)

def _mug_receive(game, message_json, buffers):
    game.receive(_mug_json.loads(message_json), [b.to_bytes() for b in buffers])
`;

/**
 * A Python exception as the page reports it: its last line and the whole traceback.
 * @param {unknown} error a Pyodide `PythonError` (or any JS error from the glue)
 * @returns {{message: string, traceback: string}}
 */
export function describePythonError(error) {
  const text = String(error?.message ?? error);
  if (error?.type) {
    const lines = text.trimEnd().split("\n");
    return { message: lines[lines.length - 1], traceback: text };
  }
  return { message: text, traceback: error?.stack ?? text };
}

/**
 * A steady timer: `tick()` every `1000 / fps` ms on a fixed schedule (a late
 * tick does not shift the ones after it; after a stall of more than one
 * period it starts a fresh schedule rather than running a burst of ticks).
 */
export class Ticker {
  /**
   * @param {number} fps
   * @param {() => void} tick
   * @param {{now?: () => number, setTimer?: Function, clearTimer?: Function}} [clock] `now` in milliseconds
   *   (default `performance.now`), and the timer functions (default `setTimeout`/`clearTimeout`)
   */
  constructor(
    fps,
    tick,
    { now = () => performance.now(), setTimer = (fn, ms) => setTimeout(fn, ms), clearTimer = (id) => clearTimeout(id) } = {},
  ) {
    this.period = 1000 / fps;
    this.tick = tick;
    Object.assign(this, { now, setTimer, clearTimer });
    this.timer = null;
    this.next = 0;
  }

  /** Start ticking (the first tick after one period). */
  start() {
    this.next = this.now() + this.period;
    this.schedule();
  }

  schedule() {
    this.timer = this.setTimer(() => {
      if (this.timer === null) return;
      this.tick();
      if (this.timer === null) return;
      this.next += this.period;
      const now = this.now();
      if (now - this.next > this.period) this.next = now + this.period;
      this.schedule();
    }, Math.max(0, this.next - this.now()));
  }

  /** Stop for good. */
  stop() {
    this.clearTimer(this.timer);
    this.timer = null;
  }
}

/** One `BrowserGame` in a Pyodide, and its ticker. */
export class EngineHost {
  /**
   * @param {Object} pyodide a loaded Pyodide whose `sys.path` finds `mug.browser`
   * @param {(message: Object, transfer?: ArrayBuffer[]) => void} emit sends a worker message to the page:
   *   `{type: "engine", message, buffers}` for what the engine posts, `{type: "exception", message, traceback}`
   *   when Python raises (the game is then stopped)
   */
  constructor(pyodide, emit) {
    this.pyodide = pyodide;
    this.emit = emit;
    this.game = null;
    this.ticker = null;
    if (!pyodide.globals.has("_mug_new_game")) pyodide.runPython(GLUE);
    this.newGame = pyodide.globals.get("_mug_new_game");
    this.receiveFn = pyodide.globals.get("_mug_receive");
  }

  /**
   * Build the game and start ticking it at `fps`.
   * @param {Object} spec the scene's portable spec (`environment.spec`)
   * @param {number} fps
   */
  start(spec, fps) {
    if (!(Number.isFinite(fps) && fps > 0)) {
      this.emit({ type: "exception", message: `the scene's fps must be a positive number, got ${fps}`, traceback: "" });
      return;
    }
    this.guard(() => {
      this.game = this.newGame(JSON.stringify(spec), (json, buffers) => this.post(json, buffers));
    });
    if (!this.game) return;
    this.tickFn = this.ticking(this.game);
    this.ticker = new Ticker(fps, () => this.guard(() => this.tickFn()));
    this.ticker.start();
  }

  /**
   * What one tick calls (fetched once: a Python attribute lookup per frame costs).
   * @param {Object} game the Python game
   * @returns {Function}
   */
  ticking(game) {
    return game.tick;
  }

  /**
   * A message from the page for the engine (`ready`, `act`).
   * @param {Object} message
   * @param {Uint8Array[]} [buffers]
   */
  receive(message, buffers = []) {
    if (!this.game) return;
    this.guard(() => this.receiveFn(this.game, JSON.stringify(message), buffers));
  }

  post(json, buffers) {
    const views = buffers.toJs();
    buffers.destroy();
    const message = JSON.parse(json);
    this.emit(
      { type: "engine", message, buffers: views },
      views.map((v) => v.buffer),
    );
    if (message.type === "scene_end" || (message.type === "error" && message.fatal)) this.ticker?.stop();
  }

  guard(run) {
    try {
      run();
    } catch (error) {
      this.stop();
      this.emit({ type: "exception", ...describePythonError(error) });
    }
  }

  /** Stop ticking and let the game go. */
  stop() {
    this.ticker?.stop();
    this.ticker = null;
    const game = this.game;
    this.game = null;
    this.tickFn?.destroy?.();
    this.tickFn = null;
    game?.destroy?.();
  }
}
