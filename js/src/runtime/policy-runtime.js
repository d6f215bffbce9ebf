/**
 * `PolicyRuntime`: runs one ONNX policy (a `ModelConfig` as JSON) for any
 * number of agents with onnxruntime-web. Same semantics as the Python
 * `mug.PolicyRuntime`; the parity tests hold both to the same numbers.
 * @module runtime/policy-runtime
 */
import { compileCustomFunction, normalizeCustomResult } from "./custom.js";
import { PolicyError, errorText, table } from "./errors.js";
import { ort } from "./ort.js";
import { Mulberry32, agentSeed, argmaxAction, sampleAction, softmax } from "./sampling.js";
import { ObservationEncoder, fixedTensor, flattenObservation, resolveShape } from "./tensors.js";

/** Agent id used when `step` is called without one. */
export const DEFAULT_AGENT = "agent_0";

const BATCH_HINT =
  "\n  hint: an export whose graph hard-codes a batch size fails like this with batch_size=1; set batch_size to " +
  "that size (the observation is repeated on every row and row 0 is read)";

function stem(path) {
  const base = String(path ?? "policy").split(/[\\/]/).pop();
  return base.replace(/\.onnx$/i, "") || "policy";
}

function shapeText(shape) {
  return shape == null ? "[?...]" : `[${shape.map((d) => (d == null ? "?" : d)).join(", ")}]`;
}

/** Graph inputs/outputs as `{name, type, shape}` lists, read from the session. */
function readSignature(session) {
  const specs = (names, meta) =>
    names.map((name, i) => {
      const m = meta?.[i];
      return { name, type: m?.type ?? "float32", shape: m?.shape ?? null };
    });
  return {
    inputs: specs(session.inputNames, session.inputMetadata),
    outputs: specs(session.outputNames, session.outputMetadata),
  };
}

function checkNames(config, signature, policy) {
  const inputs = new Set(signature.inputs.map((s) => s.name));
  const outputs = new Set(signature.outputs.map((s) => s.name));
  const obsNames = typeof config.obs_input === "string" ? [config.obs_input] : Object.values(config.obs_input);
  const listing = (specs) => specs.map((s) => `${s.name} ${s.type} ${shapeText(s.shape)}`).join(", ");
  const need = (field, name, set, side) => {
    if (!set.has(name)) {
      const specs = side === "input" ? signature.inputs : signature.outputs;
      throw new PolicyError(`policy '${policy}': ${field}: the model has no ${side} '${name}'. Model ${side}s: ${listing(specs)}`, { policy });
    }
  };
  obsNames.forEach((n) => need("obs_input", n, inputs, "input"));
  need("logit_output", config.logit_output, outputs, "output");
  (config.state_inputs ?? []).forEach((n, i) => need(`state_inputs[${i}]`, n, inputs, "input"));
  (config.state_outputs ?? []).forEach((n, i) => need(`state_outputs[${i}]`, n, outputs, "output"));
  Object.keys(config.fixed_inputs ?? {}).forEach((n) => need(`fixed_inputs['${n}']`, n, inputs, "input"));
  if ((config.state_inputs ?? []).length !== (config.state_outputs ?? []).length) {
    throw new PolicyError(`policy '${policy}': state_inputs and state_outputs differ in length; output i feeds input i`, { policy });
  }
  const fed = new Set([...obsNames, ...(config.state_inputs ?? []), ...Object.keys(config.fixed_inputs ?? {})]);
  for (const spec of signature.inputs) {
    if (!fed.has(spec.name)) {
      throw new PolicyError(
        `policy '${policy}': fixed_inputs: the model's input ${spec.name} ${spec.type} ${shapeText(spec.shape)} is not fed by the config`,
        { policy },
      );
    }
  }
}

/** Runs one policy; create with `await PolicyRuntime.create({...})`. */
export class PolicyRuntime {
  /**
   * Load the model and compile the custom function (if any).
   * @param {{model: Uint8Array|ArrayBuffer|string, config: Object, seed?: number, name?: string}} options
   *   `model`: the .onnx bytes or URL; `config`: `ModelConfig.to_dict()`;
   *   `seed`: unsigned 32-bit; `name`: for errors (default: the model file's stem)
   * @returns {Promise<PolicyRuntime>}
   */
  static async create({ model, config, seed = 0, name }) {
    const policy = name ?? stem(config?.onnx_path);
    if (!config || typeof config !== "object") throw new PolicyError(`policy '${policy}': config must be a ModelConfig dict`, { policy });
    if (!Number.isInteger(seed) || seed < 0 || seed >= 2 ** 32) {
      throw new PolicyError(`policy '${policy}': seed must be an integer in [0, 2**32), got ${seed}`, { policy });
    }
    const custom = config.custom_inference_fn == null ? null : compileCustomFunction(config.custom_inference_fn, policy);
    let session;
    try {
      session = await ort.InferenceSession.create(model instanceof ArrayBuffer ? new Uint8Array(model) : model, {
        executionProviders: ["wasm"],
      });
    } catch (error) {
      throw new PolicyError(`policy '${policy}': onnxruntime-web cannot load the model: ${errorText(error)}`, { policy, cause: error });
    }
    return new PolicyRuntime(session, config, seed, policy, custom);
  }

  /** @private use `PolicyRuntime.create` */
  constructor(session, config, seed, name, custom) {
    this.session = session;
    this.config = config;
    this.seed = seed >>> 0;
    this.name = name;
    this.custom = custom;
    this.signature = readSignature(session);
    this.batchSize = config.batch_size ?? 1;
    this.temperature = config.temperature ?? 1;
    this.argmax = config.action === "argmax";
    /** @type {Map<string, {states: Array, rng: Mulberry32, steps: number, custom: Object}>} */
    this.agents = new Map();
    if (custom) return;

    checkNames(config, this.signature, name);
    const specs = new Map(this.signature.inputs.map((s) => [s.name, s]));
    this.encoder = new ObservationEncoder(ort, config.obs_input, specs, this.batchSize);
    this.fixed = {};
    for (const [key, value] of Object.entries(config.fixed_inputs ?? {})) {
      this.fixed[key] = fixedTensor(ort, value, specs.get(key), this.batchSize);
    }
    this.stateInputs = config.state_inputs ?? [];
    this.stateOutputs = config.state_outputs ?? [];
    this.zeroStates = this.stateInputs.map((input, i) => {
      const spec = specs.get(input);
      const dims = config.state_shapes?.[i] ?? resolveShape(spec.shape, this.batchSize);
      const size = dims.reduce((a, b) => a * b, 1);
      return new ort.Tensor(spec.type, new (spec.type === "float64" ? Float64Array : Float32Array)(size), dims);
    });
    this.fetches = [config.logit_output, ...this.stateOutputs];
  }

  agent(agentId) {
    const key = String(agentId);
    let agent = this.agents.get(key);
    if (!agent) {
      agent = { states: this.zeroStates ? [...this.zeroStates] : [], rng: new Mulberry32(agentSeed(this.seed, key)), steps: 0, custom: {} };
      this.agents.set(key, agent);
    }
    return agent;
  }

  /**
   * Set hidden state (and a custom function's `context.state`) back to the
   * start, for one agent or every agent. Sampling streams continue.
   * @param {string|number} [agentId] omit for every agent
   */
  reset(agentId) {
    const targets = agentId === undefined ? [...this.agents.values()] : [this.agent(agentId)];
    for (const agent of targets) {
      agent.states = this.zeroStates ? [...this.zeroStates] : [];
      agent.custom = {};
      agent.steps = 0;
    }
  }

  /**
   * An "episode" or "scene" starts: reset as the config's `reset_state` says.
   * @param {"episode"|"scene"} kind
   * @param {string|number} [agentId]
   * @returns {boolean} whether state was reset
   */
  boundary(kind, agentId) {
    if (kind !== "episode" && kind !== "scene") throw new Error(`boundary: expected 'episode' or 'scene', got ${kind}`);
    const mode = this.config.reset_state ?? "episode";
    if (mode === "never" || (mode === "scene" && kind === "episode")) return false;
    this.reset(agentId);
    return true;
  }

  choose(logits, agent) {
    return this.argmax ? argmaxAction(logits, this.temperature) : sampleAction(logits, this.temperature, agent.rng);
  }

  /**
   * Run one step for `agentId`.
   * @param {unknown} observation number, (nested) array, typed array, or object of those
   * @param {string|number} [agentId]
   * @returns {Promise<{action: number, logits: Float32Array|null, probs: Float64Array|null, states: Object<string, {data: ArrayBufferView, dims: number[]}>}>}
   *   `states`: hidden state this step produced, by state output name
   */
  async step(observation, agentId = DEFAULT_AGENT) {
    const agent = this.agent(agentId);
    const where = `policy '${this.name}', agent '${agentId}', step ${agent.steps}`;
    if (this.custom) return this.stepCustom(observation, agent, agentId, where);
    let feeds;
    try {
      feeds = this.encoder.encode(observation);
    } catch (error) {
      throw new PolicyError(`${where}: ${error.message}`, { policy: this.name, cause: error });
    }
    Object.assign(feeds, this.fixed);
    for (let i = 0; i < this.stateInputs.length; i++) feeds[this.stateInputs[i]] = agent.states[i];
    let out;
    try {
      out = await this.session.run(feeds, this.fetches);
    } catch (error) {
      throw this.runError(error, feeds, where);
    }
    const data = out[this.config.logit_output].data;
    const logits = this.batchSize === 1 ? data : data.subarray(0, data.length / this.batchSize);
    let choice;
    try {
      choice = this.choose(logits, agent);
    } catch (error) {
      throw new PolicyError(`${where}: ${error.message}`, { policy: this.name, cause: error });
    }
    const states = {};
    for (let i = 0; i < this.stateOutputs.length; i++) {
      const tensor = out[this.stateOutputs[i]];
      agent.states[i] = tensor;
      states[this.stateOutputs[i]] = tensor;
    }
    agent.steps++;
    return { action: choice.action, logits, probs: choice.probs, states };
  }

  async stepCustom(observation, agent, agentId, where) {
    const context = {
      ort,
      state: agent.custom,
      random: () => agent.rng.random(),
      agentId: String(agentId),
      step: agent.steps,
      batchSize: this.batchSize,
      flatten: flattenObservation,
    };
    let result;
    try {
      result = await this.custom(this.session, observation, this.config, context);
    } catch (error) {
      throw new PolicyError(`${where}: custom_inference_fn threw ${errorText(error)}`, { policy: this.name, cause: error });
    }
    const out = normalizeCustomResult(result, { where, policy: this.name, numActions: this.config.num_actions ?? null });
    let { action, probs } = out;
    if (action === undefined) ({ action, probs } = this.choose(out.logits, agent));
    else if (!probs && out.logits) probs = softmax(out.logits, this.temperature);
    agent.steps++;
    return { action, logits: out.logits, probs: probs ?? null, states: out.states };
  }

  runError(error, feeds, where) {
    const sent = Object.entries(feeds).map(([n, t]) => [n, t.type, `[${t.dims.join(", ")}]`]);
    const rows = (specs) => specs.map((s) => [s.name, s.type, shapeText(s.shape)]);
    return new PolicyError(
      `${where}: onnxruntime-web failed: ${errorText(error)}\n` +
        `  feeds sent (batch_size=${this.batchSize}):\n${table(sent)}\n` +
        `  the model expects:\n${table(rows(this.signature.inputs))}\n` +
        `  and returns:\n${table(rows(this.signature.outputs))}` +
        (this.batchSize === 1 ? BATCH_HINT : ""),
      { policy: this.name, cause: error },
    );
  }

  /**
   * A copy of every agent's hidden state, sampling stream, step count and
   * custom-function state.
   * @returns {{agents: Object}}
   */
  snapshot() {
    const agents = {};
    for (const [id, a] of this.agents) {
      agents[id] = {
        states: a.states.map((t) => ({ type: t.type, data: t.data.slice(), dims: [...t.dims] })),
        rng: a.rng.state,
        steps: a.steps,
        custom: structuredClone(a.custom),
      };
    }
    return { agents };
  }

  /**
   * Return to a `snapshot()`; agents not in it are dropped.
   * @param {{agents: Object}} snapshot
   */
  restore(snapshot) {
    if (!snapshot || typeof snapshot.agents !== "object") throw new Error("restore: not a snapshot of a PolicyRuntime");
    this.agents = new Map();
    for (const [id, a] of Object.entries(snapshot.agents)) {
      this.agents.set(id, {
        states: a.states.map((t) => new ort.Tensor(t.type, t.data.slice(), t.dims)),
        rng: new Mulberry32(a.rng),
        steps: a.steps,
        custom: structuredClone(a.custom),
      });
    }
  }

  /**
   * Where `agentId`'s sampling stream and step count stand (sent with every
   * `act`, so that a reloaded page can `resume` the agent).
   * @param {string|number} agentId
   * @returns {{rng: number, steps: number}}
   */
  position(agentId) {
    const agent = this.agent(agentId);
    return { rng: agent.rng.state, steps: agent.steps };
  }

  /**
   * Continue `agentId` from where another runtime of the same policy left it
   * (the last `act` its page sent): hidden state by state output name (output
   * i feeds state input i), the sampling stream, the step count. A custom
   * function's `context.state` starts empty.
   * @param {string|number} agentId
   * @param {{states: Object<string, {data: ArrayLike<number>, dims: number[]}>, rng: number, steps: number}} saved
   */
  resume(agentId, { states, rng, steps }) {
    const where = `policy '${this.name}', agent '${agentId}': resume`;
    if (!Number.isInteger(rng) || rng < 0 || rng >= 2 ** 32 || !Number.isInteger(steps) || steps < 0) {
      throw new PolicyError(`${where}: expected an unsigned 32-bit rng and a step count, got ${rng}, ${steps}`, { policy: this.name });
    }
    const restored = (this.stateOutputs ?? []).map((name, i) => {
      const zero = this.zeroStates[i];
      const saved = states?.[name];
      const size = zero.dims.reduce((a, b) => a * b, 1);
      if (!saved || saved.data.length !== size) {
        throw new PolicyError(`${where}: state '${name}' needs ${size} values [${zero.dims.join(", ")}], got ${saved ? saved.data.length : "none"}`, {
          policy: this.name,
        });
      }
      return new ort.Tensor(zero.type, (zero.type === "float64" ? Float64Array : Float32Array).from(saved.data), zero.dims);
    });
    const agent = this.agent(agentId);
    agent.states = restored;
    agent.rng = new Mulberry32(rng);
    agent.steps = steps;
    agent.custom = {};
  }

  /** Release the ORT session. */
  async dispose() {
    await this.session.release();
  }
}
