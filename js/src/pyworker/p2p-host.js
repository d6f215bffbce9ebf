/**
 * The worker's side of a peer-to-peer match: builds `mug.browser.P2PGame(spec, post)` in a loaded Pyodide
 * and ticks it at the scene's frame rate with the host clock and the keys held (the `keys` of the
 * `GameView`'s latest `act`, which answers every frame it draws). The page's messages (`ready`, `act`,
 * `peer`, `ai`) go to the game; what it posts (`scene`, `frame`, `peer`, `ai_request`, `p2p_frames`,
 * `p2p_events`, `p2p_done`, ...) goes to the page as `{type: "engine", message, buffers}`, as the
 * `EngineHost` does for a single participant's game. No DOM and no `self`.
 * @module pyworker/p2p-host
 */
import { EngineHost } from "./engine-host.js";

/** Python glue for a P2P game (JSON across the boundary). */
const P2P_GLUE = `
import json as _mug_json

def _mug_new_p2p_game(spec_json, js_post):
    from mug.browser.p2p_game import P2PGame

    def post(message, buffers=()):
        js_post(_mug_json.dumps(message), [bytes(b) for b in buffers])

    return P2PGame(_mug_json.loads(spec_json), post)

def _mug_p2p_receive(game, message_json):
    game.receive(_mug_json.loads(message_json))

def _mug_p2p_tick(game, now_s):
    game.tick(now_s)
`;

/** A `P2PGame` in a Pyodide, and its ticker. */
export class P2PHost extends EngineHost {
  /**
   * @param {Object} pyodide a loaded Pyodide whose `sys.path` finds `mug.browser` and `mug.netcode`
   * @param {(message: Object, transfer?: ArrayBuffer[]) => void} emit see `EngineHost`
   * @param {{now?: () => number}} [clock] the host clock in milliseconds (default `performance.now`)
   */
  constructor(pyodide, emit, { now = () => performance.now() } = {}) {
    super(pyodide, emit);
    if (!pyodide.globals.has("_mug_new_p2p_game")) pyodide.runPython(P2P_GLUE);
    this.now = now;
    this.newGame = pyodide.globals.get("_mug_new_p2p_game");
    this.receiveFn = pyodide.globals.get("_mug_p2p_receive");
    this.tickP2P = pyodide.globals.get("_mug_p2p_tick");
  }

  /** A tick gives the game the page's clock (seconds). */
  ticking(game) {
    return () => this.tickP2P(game, this.now() / 1000);
  }

  /**
   * A message from the page for the game: `ready`, `act`, `peer` {from, message} or `ai` (see `mug.browser.p2p_game`).
   * @param {Object} message
   */
  receive(message) {
    if (!this.game) return;
    this.guard(() => this.receiveFn(this.game, JSON.stringify(message)));
  }
}
