/**
 * The participant page: connects to the server and shows each scene it sends.
 * @module client/app
 */
import { BrowserEnvironments } from "../pyworker/browser-env.js";
import { configureOrt } from "../runtime/ort.js";
import { Connection } from "./connection.js";
import { GameView } from "./game.js";
import { showEnd, showError, showSurvey, showText } from "./pages.js";

/**
 * Run the participant page inside `root`.
 * @param {HTMLElement} root
 * @param {{participantId: string, socketPath: string, staticPath: string}} options
 * @returns {Connection}
 */
export function startParticipant(root, { participantId, socketPath, staticPath }) {
  configureOrt({ wasmUrl: new URL(`${staticPath}ort-wasm-simd-threaded.wasm`, window.location.href).href });
  const scheme = window.location.protocol === "https:" ? "wss" : "ws";
  const base = new URL(".", window.location.href);
  const url = `${scheme}://${base.host}${base.pathname}${socketPath}?participant=${encodeURIComponent(participantId)}`;
  let game = null;
  let survey = null;
  let sceneId = null;
  // Messages from the server and, for a scene whose environment runs in the browser, from its engine in the
  // Pyodide worker (`fromWorker`): one dispatch, one GameView.
  const dispatch = (message, buffers, fromWorker = false) => {
    switch (message.type) {
      case "scene": {
        if (!fromWorker) browser.preload(message);
        if (!fromWorker && browser.begin(message)) break;
        game?.close();
        game = survey = null;
        const meta = message.scene;
        sceneId = meta.scene_id;
        if (meta.kind === "gym") {
          game = new GameView(root, meta, {
            send: fromWorker ? (m, b) => browser.send(m, b) : (m, b) => connection.send(m, b),
            fetchAsset: async (path) => {
              const response = await fetch(new URL(path, base));
              if (!response.ok) throw new Error(`GET ${path}: ${response.status} ${response.statusText}`);
              return new Uint8Array(await response.arrayBuffer());
            },
            onError: (text) => showError(root, text),
          });
        } else if (meta.kind === "survey") {
          survey = showSurvey(root, meta, (answers) => connection.send({ type: "response", scene_id: sceneId, answers }));
        } else if (meta.kind === "end") {
          showEnd(root, meta);
        } else {
          showText(root, meta, () => connection.send({ type: "advance", scene_id: sceneId }));
        }
        break;
      }
      case "frame":
        if (fromWorker === browser.active) game?.frame(message, buffers);
        break;
      case "steps_ack":
        browser.ack(message);
        break;
      case "error":
        if (message.code === "bad_response" && survey) survey.showProblem(message.message);
        else if (message.fatal) {
          showError(root, message.message);
          if (["replaced", "forbidden", "unknown_participant"].includes(message.code)) connection.stop();
        } else console.warn("MUG:", message.code, message.message);
        break;
      default:
        break;
    }
  };
  const connection = new Connection(url, {
    onStatus: (status) => {
      if (status === "reconnecting") showError(root, "Connection lost; reconnecting…");
      if (status === "open") browser.reconnected();
    },
    onMessage: (message, buffers) => dispatch(message, buffers),
  });
  const browser = new BrowserEnvironments({
    root,
    base,
    workerUrl: new URL(`${staticPath}pyworker.js`, window.location.href),
    sendToServer: (message) => connection.send(message),
    deliver: (message, buffers) => dispatch(message, buffers, true),
    closeGame: () => {
      game?.close();
      game = null;
    },
    storage: window.sessionStorage,
    storageKey: `mug-steps:${participantId}`,
  });
  connection.open();
  return connection;
}
