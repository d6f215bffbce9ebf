/**
 * The notebook preview widget (anywidget module of `mug.widgets.ScenePreview`):
 * the participant's game view, play/pause/step/reset, a speed control, the
 * policy inspector and an error panel; in a scene with several Human agents, a
 * seat menu (each view plays one seat; the kernel tags every engine message
 * with the seat it is for). A P2P scene's preview (`mug.widgets.P2PPreview`, model `_kind` "p2p") is
 * rendered by `widget/p2p.js` instead.
 * @module widget
 */
import { GameView } from "../client/game.js";
import { PolicyRuntime } from "../runtime/index.js";
import { CommAssets, ensureOrt } from "./assets.js";
import { Inspector } from "./inspector.js";
import { renderP2P } from "./p2p.js";

const STYLE = `
.mug-preview { font-family: system-ui, sans-serif; border: 2px solid #ddd; border-radius: 6px; padding: 8px; outline: none; }
.mug-preview:focus, .mug-preview:focus-within { border-color: #3b82f6; }
.mug-preview .mug-focus { font-size: 12px; color: #666; }
.mug-preview:focus .mug-focus, .mug-preview:focus-within .mug-focus { color: #1d4ed8; font-weight: 600; }
.mug-toolbar button { margin-right: 4px; }
.mug-errors { background: #fee2e2; color: #991b1b; white-space: pre-wrap; font: 12px monospace; padding: 6px; margin: 6px 0; }
.mug-errors:empty { display: none; }
.mug-body-row { display: flex; gap: 12px; align-items: flex-start; }
.mug-card { padding: 4px; } .mug-card h1 { font-size: 16px; margin: 4px 0; }
.mug-hud { font-weight: 600; min-height: 1.2em; }
.mug-prob { display: grid; grid-template-columns: minmax(1.5em, max-content) 120px 4em; gap: 4px; font: 12px monospace; }
.mug-bar { background: #60a5fa; height: 10px; display: inline-block; }
.mug-chosen .mug-bar { background: #1d4ed8; }
.mug-heatmap { width: 240px; height: 96px; image-rendering: pixelated; border: 1px solid #ccc; display: block; }
.mug-norm { width: 240px; height: 24px; display: block; border: 1px solid #eee; }
.mug-axis, .mug-scale { width: 240px; display: flex; justify-content: space-between; align-items: center; font: 10px monospace; color: #555; }
.mug-gradient { flex: 1; height: 8px; margin: 0 4px; background: linear-gradient(to right, rgb(0,0,255), rgb(255,255,255), rgb(255,0,0)); }
.mug-norm-label, .mug-state-title { font: 11px monospace; margin-top: 4px; }
.mug-hover { font: 11px monospace; color: #1d4ed8; min-height: 1.2em; }
.mug-signature { font: 11px monospace; border-collapse: collapse; } .mug-signature td { padding: 0 4px; }
.mug-unused { color: #999; } .mug-mismatch { background: #fde68a; }
.mug-diverged { color: #b91c1c; font-weight: 600; }
.mug-fps { font: 12px monospace; color: #374151; margin: 0 6px; }
.mug-status { font-size: 13px; color: #374151; margin: 4px 0; }
.mug-episode { font-size: 12px; color: #4b5563; } .mug-episode:empty { display: none; }
.mug-status[data-status="scene over"] { color: #065f46; font-weight: 600; }
.mug-flash { animation: mug-flash 0.8s; } @keyframes mug-flash { from { background: #fde68a; } to { background: transparent; } }
.mug-load { font-size: 12px; color: #1e40af; } .mug-load:empty { display: none; }
.mug-load.mug-stalled { color: #92400e; } .mug-load.mug-failed { color: #991b1b; font-weight: 600; }
.mug-preview.mug-passive { border-style: dashed; }
.mug-seat { margin: 0 6px; }
`;

function button(label, onClick) {
  const b = Object.assign(document.createElement("button"), { type: "button", textContent: label });
  b.addEventListener("click", onClick);
  return b;
}

const STATUS_TEXT = {
  "not shown": "",
  loading: "Loading…",
  ready: "Ready: press Play or Step.",
  playing: "Playing.",
  paused: "Paused.",
  "scene over": "The scene is over. Reset plays it again.",
  "stopped by an error": "Stopped by an error (see above). Reset starts again.",
};
const STALL_MS = 10_000;
const MB = (n) => (n / 1e6).toFixed(1);

/** Frames per second over the last two seconds of frame arrivals. */
class RateMeter {
  constructor() {
    this.times = [];
  }
  tick(now) {
    this.times.push(now);
    while (this.times.length && this.times[0] < now - 2000) this.times.shift();
  }
  rate(now) {
    const recent = this.times.filter((t) => t > now - 2000);
    if (recent.length < 2 || now - recent.at(-1) > 1000) return null;
    return (1000 * (recent.length - 1)) / (recent.at(-1) - recent[0]);
  }
}

/** The loading indicator: what is loading, its bytes, and whether it stalled or failed. */
class LoadProgress {
  constructor(node) {
    this.node = node;
    this.text = "";
    this.since = performance.now();
    this.timer = null;
  }
  show(text) {
    if (text !== this.text) this.since = performance.now();
    this.timer ??= setInterval(() => this.render(), 1000);
    this.text = text;
    this.node.classList.remove("mug-failed");
    this.render();
  }
  fail(text) {
    this.text = `Loading failed: ${text}`;
    this.node.classList.add("mug-failed");
    this.stop();
  }
  done() {
    this.text = "";
    this.stop();
  }
  stop() {
    clearInterval(this.timer);
    this.timer = null;
    this.node.classList.remove("mug-stalled");
    this.node.textContent = this.text;
  }
  render() {
    const idle = performance.now() - this.since;
    const stalled = this.text && !this.node.classList.contains("mug-failed") && idle > STALL_MS;
    this.node.classList.toggle("mug-stalled", Boolean(stalled));
    this.node.textContent = stalled ? `${this.text} — no progress for ${Math.round(idle / 1000)} s (is the kernel busy running a cell?)` : this.text;
  }
}

function render({ model, el }) {
  if (model.get("_kind") === "p2p") return renderP2P({ model, el });
  const view = Math.random().toString(36).slice(2, 10);
  const send = (message, buffers) => model.send({ ...message, view }, undefined, buffers);
  const root = Object.assign(document.createElement("div"), { className: "mug-preview", tabIndex: 0 });
  root.append(Object.assign(document.createElement("style"), { textContent: STYLE }));
  const control = (action) => () => {
    send({ type: "control", action });
    if (action === "step" && model.get("status") === "scene over") flash(statusLine);
    root.focus();
  };
  const toolbar = Object.assign(document.createElement("div"), { className: "mug-toolbar" });
  const speed = Object.assign(document.createElement("select"), { className: "mug-speed" });
  for (const s of [0.25, 0.5, 1, 2, 4]) speed.append(new Option(`${s}x`, String(s), s === 1, s === model.get("speed")));
  speed.addEventListener("change", () => {
    model.set("speed", Number(speed.value));
    model.save_changes();
  });
  const focusNote = Object.assign(document.createElement("span"), { className: "mug-focus", textContent: " click here, then use the keys" });
  const fps = Object.assign(document.createElement("span"), { className: "mug-fps" });
  const seatMenu = Object.assign(document.createElement("select"), { className: "mug-seat", title: "The seat this view plays" });
  for (const seat of model.get("_seats")) seatMenu.append(new Option(`seat: ${seat}`, seat));
  seatMenu.hidden = model.get("_seats").length < 2;
  seatMenu.addEventListener("change", () => {
    game?.close();
    game = null;
    stage.replaceChildren();
    send({ type: "ready", seat: seatMenu.value }); // the kernel sends this seat's scene and frame
    root.focus();
  });
  toolbar.append(button("Play", control("play")), button("Pause", control("pause")), button("Step", control("step")), button("Reset", control("reset")), speed, seatMenu, fps, focusNote);
  const statusLine = Object.assign(document.createElement("div"), { className: "mug-status" });
  const loading = Object.assign(document.createElement("div"), { className: "mug-load" });
  const lastEpisode = Object.assign(document.createElement("div"), { className: "mug-episode" });
  const errors = Object.assign(document.createElement("div"), { className: "mug-errors", role: "alert" });
  const row = Object.assign(document.createElement("div"), { className: "mug-body-row" });
  const stage = document.createElement("div");
  const side = document.createElement("div");
  row.append(stage, side);
  root.append(toolbar, statusLine, lastEpisode, loading, errors, row);
  el.append(root);

  const local = []; // errors of this view that the kernel may never hear of (a dead comm)
  const showErrors = () => {
    const shown = model.get("errors");
    errors.textContent = [...shown, ...local.filter((e) => !shown.includes(e))].join("\n");
  };
  model.on("change:errors", showErrors);
  showErrors();
  const addError = (text) => {
    local.push(text);
    showErrors();
  };
  const showStatus = () => {
    const status = model.get("status");
    statusLine.textContent = STATUS_TEXT[status] ?? status;
    statusLine.dataset.status = status;
  };
  model.on("change:status", showStatus);
  showStatus();
  const mySeat = () => model.get("_view_seats")[view];
  const driving = () => model.get("_drivers")[mySeat()] === view;
  const runsPolicies = () => model.get("_drivers")[model.get("_seats")[0]] === view; // the first seat's view runs them
  const showDriver = () => {
    const passive = Boolean(model.get("_drivers")[mySeat()]) && !driving();
    root.classList.toggle("mug-passive", passive);
    if (mySeat() !== undefined) seatMenu.value = mySeat();
    focusNote.textContent = passive ? " another view of this preview drives it: click here to drive from this one" : " click here, then use the keys";
  };
  model.on("change:_drivers", showDriver);
  model.on("change:_view_seats", showDriver);
  root.addEventListener("focusin", () => {
    if (!driving()) send({ type: "control", action: "drive" });
  });

  const assets = new CommAssets(model);
  const progress = new LoadProgress(loading);
  const meter = new RateMeter();
  const fpsTimer = setInterval(() => {
    const rate = meter.rate(performance.now());
    fps.textContent = rate === null ? "" : ` ${rate.toFixed(1)} fps (scene ${sceneMeta?.fps ?? "?"})`;
    fps.title =
      root.dataset.ort === "comm"
        ? "Each step waits for the browser's result over the kernel comm. mug's Jupyter server extension is not loaded here, so kernel WebSockets keep Nagle's algorithm on and each step waits about 40 ms for a delayed ACK."
        : "Each step waits for the browser's result over the kernel comm: this is the rate the comm allows.";
  }, 250);
  let game = null;
  let inspector = null;
  let sceneMeta = null;

  /** A browser-side policy's model (with progress) or a declared image, over the comm. */
  const fetchAsset = async (path) => {
    const agent = Object.entries(sceneMeta.policies).find(([, p]) => p.model_url === path)?.[0];
    if (agent === undefined) return assets.request(path);
    progress.show(`Loading the policy of ${agent}: the model from the kernel…`);
    const bytes = await assets.request(path);
    progress.show(`Loading the policy of ${agent}: starting an ONNX Runtime session (model ${MB(bytes.byteLength)} MB)…`);
    return bytes;
  };

  const onEngine = async (message, buffers) => {
    if (message.seat !== mySeat()) return; // another seat's view plays it
    if (message.type === "scene") {
      game?.close();
      sceneMeta = message.scene;
      side.replaceChildren();
      inspector = new Inspector(side, model.get("_action_names"));
      game = new GameView(stage, sceneMeta, {
        send: (m, b) => {
          if (m.type !== "act" || driving()) send({ ...m, generation: message.generation }, b); // passive views only watch
        },
        fetchAsset,
        onError: addError,
        keyTarget: root,
        onPolicyStep: (agent, result, step) => inspector.update(agent, result, step),
      });
      await game.ready;
      const missing = sceneMeta.you.runs_policies.filter((a) => !game.runtimes.has(a));
      if (missing.length) progress.fail(`the policy of ${missing.join(", ")} did not load (see the error above)`);
      else progress.done();
      inspector.showPolicies(sceneMeta, new Map([...game.runtimes].map(([a, r]) => [a, r.signature])));
    } else if (message.type === "frame") {
      meter.tick(performance.now());
      game?.frame(message, buffers);
    } else if (message.type === "episode_end") {
      const returns = Object.entries(message.rewards).map(([a, r]) => `${a} ${Number(r.toPrecision(6))}`);
      lastEpisode.textContent = `Episode ${message.episode + 1} ended (${message.reason}) after ${message.steps} steps: return ${returns.join(", ")}`;
    }
  };

  const recompute = async (message, buffers) => {
    if (!runsPolicies()) return; // one view answers
    const policy = sceneMeta.policies[message.agent];
    const runtime = await PolicyRuntime.create({ model: await assets.request(policy.model_url), config: policy.config, seed: message.seed, name: message.agent });
    const [steps, size] = message.shape;
    const obs = new Float32Array(buffers[0].buffer.slice(buffers[0].byteOffset, buffers[0].byteOffset + buffers[0].byteLength));
    const resets = new Set(message.resets);
    const actions = [];
    const logits = [];
    for (let i = 0; i < steps; i++) {
      if (resets.has(i)) runtime.boundary("episode", message.agent);
      const out = await runtime.step(obs.subarray(i * size, (i + 1) * size), message.agent);
      actions.push(out.action);
      logits.push(...out.logits);
    }
    send({ type: "recomputed", agent: message.agent, actions }, [Float32Array.from(logits)]);
  };

  model.on("msg:custom", (message, buffers) => {
    const run = async () => {
      if (message.channel === "asset") assets.receive(message, buffers);
      else if (message.channel === "engine") await onEngine(message, buffers);
      else if (message.channel === "recompute") await recompute(message, buffers);
      else if (message.channel === "parity") inspector?.showParity(message, new Float32Array(buffers[0].buffer.slice(buffers[0].byteOffset)));
    };
    run().catch((error) => {
      const text = String(error?.message ?? error).slice(0, 2000);
      addError(text);
      if (message.channel === "engine" && message.type === "scene") progress.fail(text);
      send({ type: "client_error", message: text });
    });
  });

  send({ type: "shown" });
  progress.show("Loading ONNX Runtime…");
  ensureOrt(assets, ({ stage: what, loaded, total }) => {
    if (what === "wasm") progress.show(`Loading ONNX Runtime's wasm: ${MB(loaded)}${total ? ` / ${MB(total)}` : ""} MB`);
    else progress.show("Loading ONNX Runtime's wasm from the kernel (about 14 MB)…");
  })
    .then((how) => {
      root.dataset.ort = how;
      progress.show("Waiting for the scene from the kernel…");
      send({ type: "ready" });
    })
    .catch((error) => {
      const text = `could not load ONNX Runtime: ${error.message}`;
      progress.fail(text);
      addError(text);
      send({ type: "client_error", message: text });
    });
  return () => {
    clearInterval(fpsTimer);
    progress.stop();
    game?.close();
    if (driving()) send({ type: "control", action: "release" });
  };
}

function flash(node) {
  node.classList.remove("mug-flash");
  void node.offsetWidth; // restart the animation
  node.classList.add("mug-flash");
}

export default { render };
