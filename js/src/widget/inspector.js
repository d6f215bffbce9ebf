/**
 * The policy inspector: action probabilities as labelled bars, and for every
 * hidden-state tensor a heatmap (units x recent steps, with its colour scale and
 * step axis) and its norm over time; hovering either shows the values under the pointer.
 * @module widget/inspector
 */

const HISTORY = 80;

/** Blue (-scale) through white (0) to red (+scale), as [r, g, b]. */
function colour(v, scale) {
  const x = Math.max(-1, Math.min(1, v / scale));
  const r = x > 0 ? 255 : Math.round(255 * (1 + x));
  const b = x < 0 ? 255 : Math.round(255 * (1 - x));
  const g = Math.round(255 * (1 - Math.abs(x)));
  return [r, g, b];
}

function el(tag, className, text = "") {
  return Object.assign(document.createElement(tag), { className, textContent: text });
}

/** Column under the pointer of a canvas `columns` wide. */
function column(event, canvas, columns) {
  const rect = canvas.getBoundingClientRect();
  return Math.min(columns - 1, Math.max(0, Math.floor(((event.clientX - rect.left) / rect.width) * canvas.width)));
}

/** One agent's panel. */
class AgentPanel {
  constructor(parent, agent, labels) {
    this.root = el("div", "mug-agent");
    this.root.append(el("h4", "", agent));
    this.labels = labels ?? [];
    this.bars = el("div", "mug-probs");
    this.root.append(this.bars);
    this.states = new Map();
    parent.append(this.root);
  }

  update(result, step) {
    const probs = result.probs ? Array.from(result.probs) : [];
    this.bars.replaceChildren(
      ...probs.map((p, i) => {
        const row = el("div", "mug-prob");
        row.dataset.action = String(i);
        const label = this.labels[i] ? `${i} ${this.labels[i]}` : String(i);
        row.append(el("span", "mug-action", label), el("span", "mug-bar"), el("span", "", p.toFixed(3)));
        row.children[1].style.width = `${(100 * p).toFixed(1)}%`;
        row.title = `action ${label}: probability ${p.toFixed(4)}`;
        if (i === result.action) row.classList.add("mug-chosen");
        return row;
      }),
    );
    for (const [name, tensor] of Object.entries(result.states ?? {})) this.state(name).push(tensor.data, step);
  }

  state(name) {
    let entry = this.states.get(name);
    if (!entry) {
      entry = new StatePlot(name);
      this.root.append(entry.root);
      this.states.set(name, entry);
    }
    return entry;
  }
}

/** A hidden-state tensor over the recent steps: heatmap with colour scale and step axis, norm plot, hover read-out. */
class StatePlot {
  constructor(name) {
    this.name = name;
    this.root = el("div", "mug-state");
    this.root.dataset.state = name;
    this.title = el("div", "mug-state-title");
    this.heat = Object.assign(el("canvas", "mug-heatmap"), { width: HISTORY, height: 64 });
    this.axis = el("div", "mug-axis");
    this.scale = el("div", "mug-scale");
    this.normLabel = el("div", "mug-norm-label");
    this.norm = Object.assign(el("canvas", "mug-norm"), { width: HISTORY, height: 24 });
    this.hover = el("div", "mug-hover");
    this.root.append(this.title, this.heat, this.axis, this.scale, this.normLabel, this.norm, this.hover);
    this.history = [];
    this.norms = [];
    this.steps = [];
    this.heat.addEventListener("mousemove", (event) => this.showHeat(event));
    this.norm.addEventListener("mousemove", (event) => this.showNorm(event));
    for (const c of [this.heat, this.norm]) c.addEventListener("mouseleave", () => (this.hover.textContent = ""));
  }

  push(data, step) {
    const values = Array.from(data);
    this.history.push(values);
    this.norms.push(Math.sqrt(values.reduce((s, v) => s + v * v, 0)));
    this.steps.push(step);
    if (this.history.length > HISTORY) {
      this.history.shift();
      this.norms.shift();
      this.steps.shift();
    }
    this.title.textContent = `${this.name}: ${values.length} units, norm ${this.norms.at(-1).toFixed(3)}`;
    this.draw();
  }

  draw() {
    const { heat, norm, history, norms } = this;
    const units = history[0].length;
    heat.height = Math.min(units, 256);
    const ctx = heat.getContext("2d");
    this.range = Math.max(1e-6, ...history.flat().map(Math.abs));
    const rowsPerPixel = units / heat.height;
    const image = ctx.createImageData(history.length, heat.height);
    history.forEach((values, x) => {
      for (let y = 0; y < heat.height; y++) {
        const at = 4 * (y * history.length + x);
        image.data.set(colour(values[Math.floor(y * rowsPerPixel)], this.range), at);
        image.data[at + 3] = 255;
      }
    });
    ctx.clearRect(0, 0, heat.width, heat.height);
    ctx.putImageData(image, 0, 0);
    const first = this.steps[0];
    const last = this.steps.at(-1);
    this.axis.replaceChildren(el("span", "", `step ${first ?? ""}`), el("span", "", "units top to bottom, steps left to right"), el("span", "", `step ${last ?? ""}`));
    const r = this.range.toPrecision(2);
    this.scale.replaceChildren(el("span", "", `-${r}`), el("span", "mug-gradient"), el("span", "", `+${r}`));
    const n = norm.getContext("2d");
    n.clearRect(0, 0, norm.width, norm.height);
    const top = Math.max(1e-6, ...norms);
    this.normLabel.textContent = `norm (L2) over the same steps, 0 to ${top.toFixed(3)}`;
    n.beginPath();
    norms.forEach((v, x) => n.lineTo(x, norm.height - (v / top) * (norm.height - 2)));
    n.stroke();
  }

  showHeat(event) {
    if (!this.history.length) return;
    const x = column(event, this.heat, this.history.length);
    const rect = this.heat.getBoundingClientRect();
    const units = this.history[x].length;
    const unit = Math.min(units - 1, Math.floor(((event.clientY - rect.top) / rect.height) * units));
    this.hover.textContent = `step ${this.steps[x]}, unit ${unit}: ${this.history[x][unit].toFixed(4)}`;
  }

  showNorm(event) {
    if (!this.norms.length) return;
    const x = column(event, this.norm, this.norms.length);
    this.hover.textContent = `step ${this.steps[x]}: norm ${this.norms[x].toFixed(4)}`;
  }
}

/** The inspector for every browser-side policy of a scene. */
export class Inspector {
  /**
   * @param {HTMLElement} parent
   * @param {Object<string, string[]>} [actionNames] per agent, a label per action
   */
  constructor(parent, actionNames = {}) {
    this.actionNames = actionNames;
    this.root = document.createElement("div");
    this.root.className = "mug-inspector";
    parent.append(this.root);
    this.panels = new Map();
    this.parity = document.createElement("div");
    this.parity.className = "mug-parity";
    this.root.append(this.parity);
  }

  /** A signature/config table per policy, with config names missing from the model highlighted. */
  showPolicies(meta, signatures) {
    for (const agent of meta.you.runs_policies) {
      const panel = new AgentPanel(this.root, agent, this.actionNames[agent]);
      this.panels.set(agent, panel);
      const signature = signatures.get(agent);
      if (signature) panel.root.append(signatureTable(signature, meta.policies[agent].config));
    }
  }

  /** One policy result of `agent` at `step` (the step within its episode). */
  update(agent, result, step) {
    this.panels.get(agent)?.update(result, step);
  }

  showParity(message, deltas) {
    const flag = message.max_delta > 1e-4 || message.differing_actions > 0;
    this.parity.textContent = `JS vs Python over ${deltas.length} steps: max |Δ| ${message.max_delta.toExponential(2)}, differing actions ${message.differing_actions}${flag ? " — DIVERGED" : ""}`;
    this.parity.classList.toggle("mug-diverged", flag);
  }
}

function signatureTable(signature, config) {
  const used = new Set([
    ...(typeof config.obs_input === "string" ? [config.obs_input] : Object.values(config.obs_input)),
    config.logit_output,
    ...(config.state_inputs ?? []),
    ...(config.state_outputs ?? []),
    ...Object.keys(config.fixed_inputs ?? {}),
  ]);
  const names = new Set([...signature.inputs, ...signature.outputs].map((s) => s.name));
  const table = document.createElement("table");
  table.className = "mug-signature";
  const rows = [...signature.inputs.map((s) => ["in", s]), ...signature.outputs.map((s) => ["out", s])];
  table.innerHTML = rows
    .map(([side, s]) => `<tr class="${used.has(s.name) ? "" : "mug-unused"}"><td>${side}</td><td>${s.name}</td><td>${s.type}</td><td>[${(s.shape ?? []).join(", ")}]</td></tr>`)
    .join("");
  for (const name of used) {
    if (!names.has(name)) table.insertAdjacentHTML("beforeend", `<tr class="mug-mismatch"><td>config</td><td>${name}</td><td colspan="2">not in the model</td></tr>`);
  }
  return table;
}
