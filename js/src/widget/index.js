/**
 * The notebook preview widget (anywidget module of `mug.widgets.ScenePreview`):
 * the participant's game view, play/pause/step/reset, a speed control, the
 * policy inspector and an error panel.
 * @module widget
 */
import { GameView } from "../client/game.js";
import { PolicyRuntime } from "../runtime/index.js";
import { CommAssets, ensureOrt } from "./assets.js";
import { Inspector } from "./inspector.js";

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
.mug-prob { display: grid; grid-template-columns: 1.5em 120px 4em; font: 12px monospace; }
.mug-bar { background: #60a5fa; height: 10px; display: inline-block; }
.mug-chosen .mug-bar { background: #1d4ed8; }
.mug-heatmap { width: 240px; height: 96px; image-rendering: pixelated; border: 1px solid #ccc; display: block; }
.mug-norm { width: 240px; height: 24px; display: block; }
.mug-signature { font: 11px monospace; border-collapse: collapse; } .mug-signature td { padding: 0 4px; }
.mug-unused { color: #999; } .mug-mismatch { background: #fde68a; }
.mug-diverged { color: #b91c1c; font-weight: 600; }
`;

function button(label, onClick) {
  const b = Object.assign(document.createElement("button"), { type: "button", textContent: label });
  b.addEventListener("click", onClick);
  return b;
}

function render({ model, el }) {
  const root = Object.assign(document.createElement("div"), { className: "mug-preview", tabIndex: 0 });
  root.append(Object.assign(document.createElement("style"), { textContent: STYLE }));
  const control = (action) => () => {
    model.send({ type: "control", action });
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
  toolbar.append(button("Play", control("play")), button("Pause", control("pause")), button("Step", control("step")), button("Reset", control("reset")), speed, focusNote);
  const errors = Object.assign(document.createElement("div"), { className: "mug-errors", role: "alert" });
  const row = Object.assign(document.createElement("div"), { className: "mug-body-row" });
  const stage = document.createElement("div");
  const side = document.createElement("div");
  row.append(stage, side);
  root.append(toolbar, errors, row);
  el.append(root);

  const showErrors = () => {
    errors.textContent = model.get("errors").join("\n");
  };
  model.on("change:errors", showErrors);
  showErrors();
  const addError = (text) => {
    errors.textContent = errors.textContent ? `${errors.textContent}\n${text}` : text;
  };

  const assets = new CommAssets(model);
  let game = null;
  let inspector = null;
  let sceneMeta = null;

  const onEngine = async (message, buffers) => {
    if (message.type === "scene") {
      game?.close();
      sceneMeta = message.scene;
      side.replaceChildren();
      inspector = new Inspector(side);
      game = new GameView(stage, sceneMeta, {
        send: (m, b) => model.send(m, undefined, b),
        fetchAsset: (path) => assets.request(path),
        onError: addError,
        keyTarget: root,
        onPolicyStep: (agent, result) => inspector.update(agent, result),
      });
      await game.ready;
      inspector.showPolicies(sceneMeta, new Map([...game.runtimes].map(([a, r]) => [a, r.signature])));
    } else if (message.type === "frame") {
      game?.frame(message, buffers);
    } else if (message.type === "error") {
      addError(`${message.code}: ${message.message}`);
    }
  };

  const recompute = async (message, buffers) => {
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
    model.send({ type: "recomputed", agent: message.agent, actions }, undefined, [Float32Array.from(logits)]);
  };

  model.on("msg:custom", (message, buffers) => {
    const run = async () => {
      if (message.channel === "asset") assets.receive(message, buffers);
      else if (message.channel === "engine") await onEngine(message, buffers);
      else if (message.channel === "recompute") await recompute(message, buffers);
      else if (message.channel === "parity") inspector?.showParity(message, new Float32Array(buffers[0].buffer.slice(buffers[0].byteOffset)));
    };
    run().catch((error) => {
      addError(error?.message ?? String(error));
      model.send({ type: "client_error", message: String(error?.message ?? error).slice(0, 2000) });
    });
  });

  ensureOrt(assets)
    .then((how) => {
      root.dataset.ort = how;
      model.send({ type: "ready" });
    })
    .catch((error) => addError(`could not load ONNX Runtime: ${error.message}`));
  return () => game?.close();
}

export default { render };
