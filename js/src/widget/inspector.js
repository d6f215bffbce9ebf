/**
 * The policy inspector: action probabilities as bars, and for every hidden-state
 * tensor a heatmap (units x recent steps) with its norm over time.
 * @module widget/inspector
 */

const HISTORY = 80;

function colour(v, scale) {
  const x = Math.max(-1, Math.min(1, v / scale));
  const r = x > 0 ? 255 : Math.round(255 * (1 + x));
  const b = x < 0 ? 255 : Math.round(255 * (1 - x));
  const g = Math.round(255 * (1 - Math.abs(x)));
  return `rgb(${r},${g},${b})`;
}

/** One agent's panel. */
class AgentPanel {
  constructor(parent, agent, config) {
    this.root = document.createElement("div");
    this.root.className = "mug-agent";
    this.root.innerHTML = `<h4>${agent}</h4>`;
    this.bars = document.createElement("div");
    this.bars.className = "mug-probs";
    this.root.append(this.bars);
    this.states = new Map();
    this.config = config;
    parent.append(this.root);
  }

  update(result) {
    const probs = result.probs ? Array.from(result.probs) : [];
    this.bars.replaceChildren(
      ...probs.map((p, i) => {
        const row = document.createElement("div");
        row.className = "mug-prob";
        row.dataset.action = String(i);
        row.innerHTML = `<span>${i}</span><span class="mug-bar" style="width:${(100 * p).toFixed(1)}%"></span><span>${p.toFixed(3)}</span>`;
        if (i === result.action) row.classList.add("mug-chosen");
        return row;
      }),
    );
    for (const [name, tensor] of Object.entries(result.states ?? {})) this.state(name).push(tensor.data);
  }

  state(name) {
    let entry = this.states.get(name);
    if (!entry) {
      const box = document.createElement("div");
      box.className = "mug-state";
      box.dataset.state = name;
      const title = document.createElement("div");
      const heat = Object.assign(document.createElement("canvas"), { className: "mug-heatmap", width: HISTORY, height: 64 });
      const norm = Object.assign(document.createElement("canvas"), { className: "mug-norm", width: HISTORY, height: 24 });
      box.append(title, heat, norm);
      this.root.append(box);
      entry = { title, heat, norm, history: [], norms: [], push: null };
      entry.push = (data) => {
        const values = Array.from(data);
        entry.history.push(values);
        entry.norms.push(Math.sqrt(values.reduce((s, v) => s + v * v, 0)));
        if (entry.history.length > HISTORY) {
          entry.history.shift();
          entry.norms.shift();
        }
        entry.title.textContent = `${name}: ${values.length} units, norm ${entry.norms.at(-1).toFixed(3)}`;
        this.draw(entry);
      };
      this.states.set(name, entry);
    }
    return entry;
  }

  draw({ heat, norm, history, norms }) {
    const units = history[0].length;
    heat.height = Math.min(units, 256);
    const ctx = heat.getContext("2d");
    const scale = Math.max(1e-6, ...history.flat().map(Math.abs));
    const rowsPerPixel = units / heat.height;
    history.forEach((values, x) => {
      for (let y = 0; y < heat.height; y++) {
        ctx.fillStyle = colour(values[Math.floor(y * rowsPerPixel)], scale);
        ctx.fillRect(x, y, 1, 1);
      }
    });
    const n = norm.getContext("2d");
    n.clearRect(0, 0, norm.width, norm.height);
    const top = Math.max(1e-6, ...norms);
    n.beginPath();
    norms.forEach((v, x) => n.lineTo(x, norm.height - (v / top) * (norm.height - 2)));
    n.stroke();
  }
}

/** The inspector for every browser-side policy of a scene. */
export class Inspector {
  constructor(parent) {
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
      const panel = new AgentPanel(this.root, agent, meta.policies[agent].config);
      this.panels.set(agent, panel);
      const signature = signatures.get(agent);
      if (signature) panel.root.append(signatureTable(signature, meta.policies[agent].config));
    }
  }

  update(agent, result) {
    this.panels.get(agent)?.update(result);
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
