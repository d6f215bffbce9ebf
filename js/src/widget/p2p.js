/**
 * The notebook preview of a peer-to-peer scene (anywidget view of `mug.widgets.P2PPreview`): one game view
 * per Human seat side by side, each the screen of one rollback peer that runs in the kernel; the simulated
 * link between the peers (latency, jitter, loss: the model's `latency_ms`, `jitter_ms`, `loss`, changeable
 * while playing); under each view its peer's rollback statistics (the model's `_stats`). The kernel tags
 * every engine message with the seat it is for; a view's acts (the keys it holds) drive its seat. An episode's
 * end is shown once every peer agreed on it (the peer's `episode_end`).
 * @module widget/p2p
 */
import { GameView } from "../client/game.js";
import { CommAssets } from "./assets.js";

const STYLE = `
.mug-p2p-seats { display: flex; gap: 12px; align-items: flex-start; flex-wrap: wrap; }
.mug-p2p-seat { border: 2px solid #ddd; border-radius: 6px; padding: 6px; outline: none; }
.mug-p2p-seat:focus, .mug-p2p-seat:focus-within { border-color: #3b82f6; }
.mug-p2p-seat h2 { font-size: 13px; margin: 0 0 4px; }
.mug-p2p-seat .mug-focus { font-size: 12px; color: #666; }
.mug-p2p-seat:focus .mug-focus, .mug-p2p-seat:focus-within .mug-focus { color: #1d4ed8; font-weight: 600; }
.mug-p2p-seat .mug-episode { font-size: 12px; color: #4b5563; } .mug-p2p-seat .mug-episode:empty { display: none; }
.mug-netstats { font: 12px monospace; color: #374151; white-space: pre; margin-top: 4px; }
.mug-link { margin: 4px 0; font-size: 12px; } .mug-link label { margin-right: 8px; } .mug-link input { width: 5em; }
`;

const STATUS_TEXT = {
  ready: "Ready: press Play or Step, then click into a seat and use the keys.",
  playing: "Playing.",
  paused: "Paused.",
  "scene over": "The scene is over. Reset plays it again.",
  "stopped by an error": "Stopped by an error (see above). Reset starts again.",
};

/** The statistics line of one peer (the kernel's `_stats[seat]`). */
export function statsText(s) {
  if (!s) return "";
  const depth = s.rollbacks ? ` (depth p50 ${s.depth_p50}, max ${s.depth_max})` : "";
  return [
    `frame ${s.frame} · confirmed ${s.confirmed}`,
    `rollbacks ${s.rollbacks}${depth} · re-simulated ${s.resim_frames} frames`,
    `stalls ${s.stalls} · desyncs ${s.desyncs} · resyncs ${s.resyncs}`,
  ].join("\n");
}

function element(tag, props = {}) {
  return Object.assign(document.createElement(tag), props);
}

/** A number input bound to a model trait (`scale`: the trait's value times it is shown). */
function traitInput(model, name, label, { scale = 1, max, step = 1 }) {
  const box = element("label", { textContent: `${label} ` });
  const input = element("input", { type: "number", min: "0", max: String(max * scale), step: String(step), className: `mug-link-${name}` });
  const show = () => (input.value = String(Math.round(model.get(name) * scale * 1000) / 1000));
  input.addEventListener("change", () => {
    const value = Number(input.value) / scale;
    if (!Number.isFinite(value) || value < 0 || value > max) return show();
    model.set(name, value);
    model.save_changes();
  });
  model.on(`change:${name}`, show);
  show();
  box.append(input);
  return box;
}

/**
 * Render one view of a P2P preview.
 * @param {{model: Object, el: HTMLElement}} host the anywidget model and the output's element
 * @returns {() => void} cleanup
 */
export function renderP2P({ model, el }) {
  const send = (message, buffers) => model.send(message, undefined, buffers);
  const root = element("div", { className: "mug-preview mug-p2p" });
  root.append(element("style", { textContent: STYLE }));
  const toolbar = element("div", { className: "mug-toolbar" });
  for (const action of ["play", "pause", "step", "reset"]) {
    const b = element("button", { type: "button", textContent: action[0].toUpperCase() + action.slice(1) });
    b.addEventListener("click", () => send({ type: "control", action }));
    toolbar.append(b);
  }
  const speed = element("select", { className: "mug-speed", title: "Multiplies the scene's frame rate in live play" });
  for (const s of [0.25, 0.5, 1, 2]) speed.append(new Option(`${s}x`, String(s), s === 1, s === model.get("speed")));
  speed.addEventListener("change", () => {
    model.set("speed", Number(speed.value));
    model.save_changes();
  });
  toolbar.append(speed);
  const link = element("div", { className: "mug-link", textContent: "Link between the peers: " });
  link.append(
    traitInput(model, "latency_ms", "latency (ms)", { max: 5000 }),
    traitInput(model, "jitter_ms", "jitter ± (ms)", { max: 5000 }),
    traitInput(model, "loss", "loss (%)", { scale: 100, max: 1, step: 0.5 }),
  );
  const statusLine = element("div", { className: "mug-status" });
  const errors = element("div", { className: "mug-errors", role: "alert" });
  const row = element("div", { className: "mug-p2p-seats" });
  root.append(toolbar, link, statusLine, errors, row);
  el.append(root);

  const local = [];
  const showErrors = () => {
    const shown = model.get("errors");
    errors.textContent = [...shown, ...local.filter((e) => !shown.includes(e))].join("\n");
  };
  const addError = (text) => {
    local.push(text);
    showErrors();
    send({ type: "client_error", message: text.slice(0, 2000) });
  };
  const showStatus = () => {
    const status = model.get("status");
    statusLine.textContent = STATUS_TEXT[status] ?? status;
    statusLine.dataset.status = status;
  };
  model.on("change:errors", showErrors);
  model.on("change:status", showStatus);
  showErrors();
  showStatus();

  const assets = new CommAssets(model);
  /** seat -> {panel, stage, stats, episode, game, release} */
  const seats = new Map();
  for (const seat of model.get("_seats")) {
    const panel = element("div", { className: "mug-p2p-seat", tabIndex: 0 });
    panel.dataset.seat = seat;
    const title = element("h2", { textContent: `peer ${seat} ` });
    title.append(element("span", { className: "mug-focus", textContent: "click here, then use the keys" }));
    const stage = element("div");
    const stats = element("div", { className: "mug-netstats" });
    const episode = element("div", { className: "mug-episode" });
    panel.append(title, stage, episode, stats);
    row.append(panel);
    // only the focused view of a seat acts (another view of this preview, shown too, would hold no key), and once
    // more after the focus left: its keys released
    const view = { panel, stage, stats, episode, game: null, release: false };
    panel.addEventListener("focusout", () => (view.release = true));
    seats.set(seat, view);
  }
  const showStats = () => {
    const all = model.get("_stats");
    for (const [seat, view] of seats) view.stats.textContent = statsText(all[seat]);
  };
  model.on("change:_stats", showStats);
  showStats();

  const onEngine = async (message, buffers) => {
    const view = seats.get(message.seat);
    if (!view) return;
    if (message.type === "scene") {
      view.game?.close();
      view.stage.replaceChildren();
      view.game = new GameView(view.stage, message.scene, {
        send: (m, b) => {
          if (m.type !== "act" || view.panel.contains(document.activeElement) || view.release) send({ ...m, seat: message.seat }, b);
          if (m.type === "act") view.release = false;
        },
        fetchAsset: (path) => assets.request(path),
        onError: addError,
        keyTarget: view.panel,
      });
      await view.game.ready;
    } else if (message.type === "frame") {
      view.game?.frame(message, buffers);
    } else if (message.type === "episode_end") {
      const returns = Object.entries(message.rewards).map(([a, r]) => `${a} ${Number(r.toPrecision(6))}`);
      view.episode.textContent = `Episode ${message.episode + 1} ended (all peers agreed): return ${returns.join(", ")}`;
    }
  };

  model.on("msg:custom", (message, buffers) => {
    const run = async () => {
      if (message.channel === "asset") assets.receive(message, buffers);
      else if (message.channel === "engine") await onEngine(message, buffers);
    };
    run().catch((error) => addError(String(error?.message ?? error).slice(0, 2000)));
  });
  send({ type: "ready" });
  return () => {
    for (const view of seats.values()) view.game?.close();
  };
}
