/**
 * The participant page: connects to the server and shows each scene it sends.
 * @module client/app
 */
import { MatchPeers } from "../p2p/page.js";
import { BrowserEnvironments } from "../pyworker/browser-env.js";
import { configureOrt } from "../runtime/ort.js";
import { Connection } from "./connection.js";
import { GameView } from "./game.js";
import { matchOf, visibilityMessage } from "./messages.js";
import { NoticeBoard, showSeat } from "./notices.js";
import { showEnd, showError, showSurvey, showText } from "./pages.js";
import { PausedOverlay, WaitroomView } from "./waitroom.js";

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
  let waitroom = null;
  let paused = null;
  const notices = new NoticeBoard(root);
  // a peer-to-peer match's mesh; whatever runs the game gets it with the `mug-p2p` event on window
  const peers = new MatchPeers({
    send: (message) => connection.send(message),
    onMesh: (mesh, start) => window.dispatchEvent(new CustomEvent("mug-p2p", { detail: { mesh, start } })),
  });
  const leave = (keepMesh = false) => {
    if (!keepMesh) peers.close();
    game?.close();
    waitroom?.close();
    paused?.close();
    game = survey = waitroom = paused = null;
  };
  const sendVisibility = () => connection.send(visibilityMessage(document.hidden));
  // Messages from the server and, for a scene whose environment runs in the browser, from its engine in the
  // Pyodide worker (`fromWorker`): one dispatch, one GameView.
  const dispatch = (message, buffers, fromWorker = false) => {
    switch (message.type) {
      case "scene": {
        if (!fromWorker) browser.preload(message);
        if (!fromWorker && browser.begin(message)) break;
        leave(fromWorker); // the engine's own scene message: a P2P match's mesh stays open for its game
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
          const match = matchOf(message);
          if (match) showSeat(root.querySelector(".mug-card"), match, meta);
        } else if (meta.kind === "survey") {
          survey = showSurvey(root, meta, (answers) => connection.send({ type: "response", scene_id: sceneId, answers }));
        } else if (meta.kind === "end") {
          showEnd(root, meta);
        } else if (meta.kind === "screening") {
          showText(root, meta, null);
        } else {
          showText(root, meta, () => connection.send({ type: "advance", scene_id: sceneId }));
        }
        notices.pageShown();
        break;
      }
      case "waitroom":
        if (waitroom?.sceneId === message.scene_id) waitroom.update(message);
        else {
          leave();
          waitroom = new WaitroomView(root, message);
          notices.pageShown();
        }
        break;
      case "paused":
        if (paused) paused.update(message);
        else paused = new PausedOverlay(root, message);
        break;
      case "resumed":
        paused?.close();
        paused = null;
        break;
      case "notice":
        notices.post(message);
        break;
      case "frame":
        if (fromWorker === browser.active) game?.frame(message, buffers);
        break;
      case "p2p":
      case "p2p_peers":
      case "signal":
      case "relay":
      case "p2p_relay":
        peers.receive(message);
        break;
      case "steps_ack":
      case "p2p_ack":
        browser.ack(message);
        break;
      case "p2p_seat_ai":
        browser.p2p.seatToAI(message);
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
      if (status === "open") {
        if (document.hidden) sendVisibility(); // after `ready`: the server learns the tab is hidden
        browser.reconnected();
      }
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
  document.addEventListener("visibilitychange", sendVisibility);
  connection.open();
  return connection;
}
