/**
 * The worker's engine loop (`EngineHost`) in real Pyodide under Node, running the test double of
 * `mug.browser` (tests/e2e/fixtures/browser_double/, until the real one is merged).
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import test from "node:test";
import { fileURLToPath } from "node:url";
import { loadPyodide } from "pyodide";
import { describePythonError, EngineHost, Ticker } from "../src/pyworker/engine-host.js";
import { PyWorker, absoluteEnvironment } from "../src/pyworker/py-worker.js";
import { progressText } from "../src/pyworker/progress-view.js";

const DOUBLE = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "tests", "e2e", "fixtures", "browser_double", "mug");

const pyodide = await loadPyodide();
const site = pyodide.runPython("import site; site.getsitepackages()[0]");
pyodide.FS.mkdirTree(`${site}/mug`);
for (const name of readdirSync(DOUBLE).filter((n) => n.endsWith(".py"))) {
  pyodide.FS.writeFile(`${site}/mug/${name}`, readFileSync(join(DOUBLE, name)));
}

const META = { scene_id: "walk", kind: "gym", width: 100, height: 60, you: { humans: ["human"], runs_policies: ["ai"] } };
const spec = (extra = {}) => ({ scene_id: "walk", seed: 7, max_steps: 3, num_episodes: 1, cells: 5, meta: META, ...extra });

/** An EngineHost whose output is collected; `until(pred)` waits for a message (the ticker runs on real timers). */
function host() {
  const out = [];
  const waiters = [];
  const h = new EngineHost(pyodide, (message, transfer) => {
    out.push({ message, transfer });
    for (const w of waiters.splice(0)) w();
  });
  const until = async (pred) => {
    while (!out.some(({ message }) => pred(message))) await new Promise((resolve) => waiters.push(resolve));
    return out.find(({ message }) => pred(message)).message;
  };
  return { h, out, until };
}
/** An `act` for `step` whose AI result is `action` with `logits` (as `actMessage` builds it). */
const act = (step, action, logits = [0, 0], keys = []) => [
  { type: "act", step, episode: 0, keys, policies: { ai: { action, logits: { buffer: 0, dtype: "float32", shape: [logits.length] } } } },
  [new Uint8Array(new Float32Array(logits).buffer)],
];
const engine = (out, type) => out.map((o) => o.message).filter((m) => m.type === "engine" && m.message.type === type).map((m) => m.message);

test("the engine's messages come out as worker messages, buffers as transferables; acts go in; ticks step it", async () => {
  const { h, out, until } = host();
  h.start(spec(), 100);
  h.receive({ type: "ready" });
  const [scene] = engine(out, "scene");
  assert.deepEqual(scene.scene, META);
  const first = out.find((o) => o.message.message?.type === "frame");
  const obs = first.message.buffers[0];
  assert.ok(obs instanceof Uint8Array && obs.byteLength === 16);
  assert.deepEqual(first.transfer, [obs.buffer]); // handed over, not copied
  assert.equal(first.message.message.step, 0);
  assert.deepEqual(engine(out, "steps")[0].records[0].record.event, "session");
  for (let step = 0; step < 3; step++) {
    await until((m) => m.message?.type === "frame" && m.message.step === step);
    h.receive(...act(step, 1, [0.5, -0.25], ["ArrowRight"]));
  }
  await until((m) => m.message?.type === "scene_end");
  const records = engine(out, "steps").flatMap((m) => m.records);
  assert.deepEqual(records.map((r) => r.seq), [0, 1, 2, 3, 4, 5]);
  assert.deepEqual(records.filter((r) => r.kind === "step").map((r) => [r.step, r.record.actions]), [
    [0, { human: 2, ai: 1 }],
    [1, { human: 2, ai: 1 }],
    [2, { human: 2, ai: 1 }],
  ]);
  assert.deepEqual(records[1].record.policy_outputs.ai.logits, [0.5, -0.25]); // the act's buffers reached Python as bytes
  assert.equal(h.ticker.timer, null); // the scene is over: no more ticks
  h.stop();
});

test("a Python exception in tick stops the game and comes out with its traceback", async () => {
  const { h, out, until } = host();
  h.start(spec({ raise_in_tick_at: 1 }), 100);
  h.receive({ type: "ready" });
  h.receive(...act(0, 0));
  await until((m) => m.message?.type === "frame" && m.message.step === 1);
  h.receive(...act(1, 0));
  const exception = await until((m) => m.type === "exception");
  assert.equal(exception.message, "ZeroDivisionError: the double's tick fails on purpose");
  assert.match(exception.traceback, /Traceback \(most recent call last\)[\s\S]*in tick[\s\S]*ZeroDivisionError/);
  assert.equal(h.game, null);
  h.receive(...act(1, 0)); // ignored, no throw
});

test("a game that cannot be built (BrowserGame raises) is reported the same way, and never ticks", () => {
  const { h, out } = host();
  const { scene_id: _, ...bad } = spec();
  h.start(bad, 100);
  const exception = out.find((o) => o.message.type === "exception").message;
  assert.equal(exception.message, "KeyError: 'scene_id'");
  assert.match(exception.traceback, /in __init__/);
  assert.equal(h.ticker, null);
});

test("a JS error (not Python's) keeps its stack as the traceback", () => {
  const error = new TypeError("x is undefined");
  assert.deepEqual(describePythonError(error), { message: "x is undefined", traceback: error.stack });
});

test("PyWorker: relative URLs made absolute; messages relayed; buffers copied and transferred", () => {
  const env = absoluteEnvironment({ pyodide: "pyodide/abc", bundles: ["pybundle/1.zip"], spec: {} }, "http://127.0.0.1:5/study/?participant=x");
  assert.equal(env.pyodide, "http://127.0.0.1:5/study/pyodide/abc/");
  assert.deepEqual(env.bundles, ["http://127.0.0.1:5/study/pybundle/1.zip"]);
  assert.deepEqual([env.wheels, env.packages], [[], []]);
  const posted = [];
  const fake = { postMessage: (data, transfer) => posted.push({ data, transfer }) };
  const seen = [];
  const worker = new PyWorker("w.js", { onEngine: (m, b) => seen.push([m, b]), onProgress: (p) => seen.push(p) }, () => fake);
  worker.preload(env);
  worker.preload(env); // once
  worker.start(env, 30);
  const shared = new Float32Array([1, 2, 3, 4]);
  worker.send({ type: "act", step: 0 }, [shared.subarray(1, 3)]);
  assert.deepEqual(posted.map((p) => p.data.type), ["load", "start", "engine"]);
  const sent = posted[2];
  assert.deepEqual(Array.from(new Float32Array(sent.data.buffers[0].buffer)), [2, 3]);
  assert.deepEqual(sent.transfer, [sent.data.buffers[0].buffer]);
  assert.equal(shared.byteLength, 16); // the page's own array is not detached
  fake.onmessage({ data: { type: "progress", stage: "runtime", loaded: 1, total: 2 } });
  fake.onmessage({ data: { type: "engine", message: { type: "frame" }, buffers: [] } });
  assert.deepEqual(seen, [{ type: "progress", stage: "runtime", loaded: 1, total: 2 }, [{ type: "frame" }, []]]);
  assert.deepEqual(worker.progress.stage, "runtime");
});

test("progress text names the stage and the megabytes", () => {
  assert.equal(progressText({ stage: "runtime", loaded: 4_100_000, total: 13_400_000 }), "Downloading the game engine… 4.1 of 13.4 MB");
  assert.equal(progressText({ stage: "env", loaded: 0, total: 0 }), "Preparing the game…");
});

test("the ticker keeps a fixed schedule, and after a stall starts a fresh one instead of a burst", () => {
  let now = 0;
  const delays = [];
  let pending = null;
  const ticker = new Ticker(10, () => {}, { now: () => now, setTimer: (fn, ms) => ((pending = fn), delays.push(ms), 1), clearTimer: () => {} });
  const fire = (at) => {
    now = at;
    pending();
  };
  ticker.start(); // due at 100
  fire(100);
  fire(230); // 30 ms late: the next is still due at 300
  fire(300);
  fire(900); // stalled 5 periods: next due at 1000, not five ticks at once
  ticker.stop();
  assert.deepEqual(delays, [100, 100, 70, 100, 100]);
  assert.equal(ticker.timer, null);
});

test("a scene without a usable fps is refused before anything runs (no busy ticking)", () => {
  for (const fps of [undefined, 0, -5, Number.NaN]) {
    const { h, out } = host();
    h.start(spec(), fps);
    assert.deepEqual(out.map((o) => o.message.type), ["exception"]);
    assert.match(out[0].message.message, /fps must be a positive number/);
    assert.equal(h.game, null);
  }
});
