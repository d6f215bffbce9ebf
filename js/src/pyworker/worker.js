/**
 * The Pyodide worker (built to `mug/static/pyworker.js`, started as a module
 * Worker by `PyWorker`). Messages are handled one after another, in order.
 *
 * Page -> worker:
 *   `{type: "load", environment}`           load Pyodide and `environment.bundles` (preload; no game yet;
 *                                           Pyodide starts with `environment.package_index_url`, if given:
 *                                           one package index per page)
 *   `{type: "start", environment, fps}`     load what is missing (wheels, packages too), build
 *                                           `BrowserGame(environment.spec, post)` (a `P2PGame` when the spec
 *                                           has `p2p`: see ./p2p-host.js), tick it at `fps`
 *   `{type: "engine", message, buffers}`    a message for the engine (`ready`, `act`; a P2P game's `peer`,
 *                                           `ai` too); buffers transferred
 *   `{type: "stop"}`                        stop ticking, drop the game (Pyodide stays loaded)
 * Worker -> page:
 *   `{type: "progress", stage, loaded, total}`   stage of `STAGES`; bytes fetched so far and expected
 *   `{type: "engine", message, buffers}`          what the engine posted (`scene`, `frame`, `steps`, ...)
 *   `{type: "failed", stage, message}`           loading failed (the game cannot start)
 *   `{type: "exception", message, traceback}`    Python raised in the engine; the game is stopped
 * `environment` is the scene's `environment` client metadata with absolute URLs.
 * @module pyworker/worker
 */
import { EngineHost } from "./engine-host.js";
import { LoadError, PythonLoader } from "./loader.js";
import { P2PHost } from "./p2p-host.js";

const emit = (message, transfer = []) => self.postMessage(message, transfer);
const loader = new PythonLoader((progress) => emit({ type: "progress", ...progress }));
let host = null;
let chain = Promise.resolve();

async function load(environment) {
  try {
    return await loader.load(environment);
  } catch (error) {
    const stage = error instanceof LoadError ? error.stage : "runtime";
    emit({ type: "failed", stage, message: String(error?.message ?? error) });
    return null;
  }
}

async function handle(data) {
  switch (data?.type) {
    case "load":
      await load({ ...data.environment, wheels: [], packages: [] });
      break;
    case "start": {
      host?.stop();
      host = null;
      const pyodide = await load(data.environment);
      if (!pyodide) break;
      host = data.environment.spec?.p2p ? new P2PHost(pyodide, emit) : new EngineHost(pyodide, emit);
      host.start(data.environment.spec, data.fps);
      break;
    }
    case "engine":
      host?.receive(data.message, data.buffers ?? []);
      break;
    case "stop":
      host?.stop();
      host = null;
      break;
    default:
      console.warn("MUG worker: unknown message", data?.type);
  }
}

self.onmessage = ({ data }) => {
  chain = chain.then(() => handle(data));
};
