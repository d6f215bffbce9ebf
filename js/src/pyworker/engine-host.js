/**
 * The Python engine inside the worker: builds `mug.browser.BrowserGame(spec, post)`
 * in a loaded Pyodide, ticks it at the scene's frame rate on a steady clock,
 * handing it the page's messages with each tick (an `act` at once when the
 * game waits for it), and turns what it posts into worker messages.
 * No DOM and no `self`: the worker entry and the Node tests both drive it.
 * @module pyworker/engine-host
 */

/**
 * Python glue, run once per Pyodide. JSON across the boundary, buffers as `bytes` both ways; one call into
 * Python per frame (`_mug_step`: the page's messages since the last call, then the tick) and one call out
 * (`js_post`: everything the game posted meanwhile, as a JSON batch `[[message, bufferCount], ...]` and the
 * buffers in order, or `None` when there are none), so no per-message proxies cross.
 */
const GLUE = `
import json as _mug_json

# one encoder for every batch: compact, and no cycle check (the engine's messages are plain trees)
_mug_encode = _mug_json.JSONEncoder(separators=(",", ":"), check_circular=False).encode

class _MugWorkerGame:
    def __init__(self, spec_json, js_post):
        from mug.browser import BrowserGame

        self.js_post, self.out, self.blobs = js_post, [], []
        self.game = BrowserGame(_mug_json.loads(spec_json), self.post)
        self.send()

    def post(self, message, buffers=()):
        self.out.append([message, len(buffers)])
        self.blobs.extend(bytes(b) for b in buffers)

    def send(self):
        if self.out:
            out, blobs, self.out, self.blobs = self.out, self.blobs, [], []
            self.js_post(_mug_encode(out), blobs or None)

def _mug_new_game(spec_json, js_post):
    return _MugWorkerGame(spec_json, js_post)

def _mug_step(worker, messages_json, buffers, tick):
    blobs = [b.to_bytes() for b in buffers] if buffers is not None else []
    messages, at = [], 0
    for message, count in _mug_json.loads(messages_json) if messages_json is not None else ():
        messages.append((message, blobs[at : at + count]))
        at += count
    try:
        return worker.game.step(messages, tick)
    finally:
        worker.send()
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
    this.stepFn = pyodide.globals.get("_mug_step");
    /** The page's messages waiting for the next call into Python: `[message, buffers]` pairs. */
    this.queue = [];
    /** Whether the game wants an `act` as soon as it comes (lockstep; a due step awaiting an AI result). */
    this.atOnce = true;
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
   * What one tick calls: the page's waiting messages and the tick, in one call into Python.
   * @param {Object} game the Python game
   * @returns {Function}
   */
  ticking(game) {
    return () => this.deliver(true);
  }

  /**
   * A message from the page for the engine (`ready`, `act`). An `act` waits for the next tick (which takes it
   * first), unless the game wants it at once; any other message goes in now, after the acts waiting.
   * @param {Object} message
   * @param {Uint8Array[]} [buffers]
   */
  receive(message, buffers = []) {
    if (!this.game) return;
    this.queue.push([message, buffers]);
    if (this.atOnce || message.type !== "act") this.guard(() => this.deliver(false));
  }

  /**
   * Hand the waiting messages to the game, then (`tick`) tick it: one call into Python.
   * @param {boolean} tick
   */
  deliver(tick) {
    const queue = this.queue;
    this.queue = [];
    const buffers = queue.flatMap(([, b]) => b);
    const messages = queue.length ? JSON.stringify(queue.map(([m, b]) => [m, b.length])) : undefined; // None
    this.atOnce = this.stepFn(this.game, messages, buffers.length ? buffers : undefined, tick);
  }

  /**
   * What Python posted: one message (`json` an object) or a batch (`[[message, bufferCount], ...]`), with the
   * buffers (a Python list, or none) in order.
   */
  post(json, buffers) {
    const views = buffers ? buffers.toJs() : [];
    buffers?.destroy();
    const parsed = JSON.parse(json);
    let at = 0;
    for (const [message, count] of Array.isArray(parsed) ? parsed : [[parsed, views.length]]) {
      const own = views.slice(at, (at += count));
      this.emit(
        { type: "engine", message, buffers: own },
        own.map((v) => v.buffer),
      );
      if (message.type === "scene_end" || (message.type === "error" && message.fatal)) this.ticker?.stop();
    }
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
    this.queue = [];
    this.tickFn?.destroy?.();
    this.tickFn = null;
    game?.destroy?.();
  }
}
