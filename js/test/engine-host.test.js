/**
 * The worker's engine loop (`EngineHost`) in real Pyodide under Node, running the real `mug.browser.BrowserGame`
 * from the bundles the server ships (built by the project's Python: `mug.server.pybundle`), on the spec of a real
 * browser-side scene (`GymScene.browser_spec()`): the pure-Python coin grid with a model partner.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import test from "node:test";
import { fileURLToPath } from "node:url";
import { loadPyodide } from "pyodide";
import { describePythonError, EngineHost, Ticker } from "../src/pyworker/engine-host.js";
import { PyWorker, absoluteEnvironment } from "../src/pyworker/py-worker.js";
import { progressText } from "../src/pyworker/progress-view.js";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
/** Writes the bundles of two browser-side scenes (the grid, and one whose env raises at step 5) and prints their specs. */
const BUILD = `
import json, sys
from pathlib import Path
import mug
from mug.examples.browser_grid import PyCoinGrid, draw
from mug.examples.demo import PARTNER_MODEL
from mug.server.pybundle import env_bundle, mug_bundle
from tests.e2e.fixtures.failing_grid import FailingGrid

out = Path(sys.argv[1])
def scene(creator, steps):
    return (mug.GymScene("grid").environment(creator, {"max_steps": steps}, seed=7)
        .policies({"agent_0": mug.Human, "agent_1": mug.ModelConfig.from_onnx(PARTNER_MODEL)})
        .gameplay(action_mapping={"ArrowRight": 4}, num_episodes=1)
        .rendering(mode="surface", draw=draw, width=100, height=100).runtime(environment="browser"))
specs, bundles = [], [mug_bundle()]
for creator, steps in ((PyCoinGrid, 3), (FailingGrid, 10)):
    specs.append(scene(creator, steps).browser_spec())
    bundles.append(env_bundle(scene(creator, steps)))
for i, b in enumerate(bundles):
    (out / f"{i}.zip").write_bytes(b.data)
print(json.dumps({"specs": specs, "bundles": len(bundles)}))
`;
const DIR = mkdtempSync(join(tmpdir(), "mug-engine-host-"));
writeFileSync(join(DIR, "build.py"), BUILD);
const built = JSON.parse(execFileSync(join(ROOT, ".venv", "bin", "python"), [join(DIR, "build.py"), DIR], { cwd: ROOT, encoding: "utf8" }));
const [GRID, FAILING] = built.specs;

const pyodide = await loadPyodide();
for (let i = 0; i < built.bundles; i++) pyodide.unpackArchive(new Uint8Array(readFileSync(join(DIR, `${i}.zip`))), "zip", { extractDir: "/mug-bundles" });
pyodide.runPython("import sys; sys.path.insert(0, '/mug-bundles')");

const spec = (base, extra = {}) => ({ ...base, session_id: "s1", ...extra });

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
const act = (step, action, logits = [0, 0, 0, 0, 0], keys = []) => [
  {
    type: "act",
    scene_id: "grid",
    step,
    episode: 0,
    keys,
    policies: { agent_1: { action, logits: { buffer: 0, dtype: "float32", shape: [logits.length] } } },
  },
  [new Uint8Array(new Float32Array(logits).buffer)],
];
const engine = (out, type) => out.map((o) => o.message).filter((m) => m.type === "engine" && m.message.type === type).map((m) => m.message);

test("the engine's messages come out as worker messages, buffers as transferables; acts go in; ticks step it", async () => {
  const { h, out, until } = host();
  h.start(spec(GRID), 100);
  h.receive({ type: "ready" });
  const [scene] = engine(out, "scene");
  assert.equal(scene.scene.scene_id, "grid");
  const first = await until((m) => m.message?.type === "frame");
  assert.equal(first.message.step, 0);
  const withBuffers = out.find((o) => o.message.message?.type === "frame" && o.message.buffers.length);
  if (withBuffers) assert.deepEqual(withBuffers.transfer, withBuffers.message.buffers.map((b) => b.buffer)); // handed over
  assert.deepEqual(engine(out, "steps")[0].records[0].name, "session");
  const logits = [0.5, -0.25, 0, 0, 1];
  for (let step = 0; step < 3; step++) {
    await until((m) => m.message?.type === "frame" && m.message.step === step);
    h.receive(...act(step, 1, logits, ["ArrowRight"]));
  }
  await until((m) => m.message?.type === "scene_end");
  const records = engine(out, "steps").flatMap((m) => m.records);
  assert.deepEqual(records.map((r) => r.seq), [...records.keys()]);
  const steps = records.filter((r) => r.kind === "step");
  assert.deepEqual(steps.map((r) => [r.step, r.record.actions]), [
    [0, { agent_0: 4, agent_1: 1 }],
    [1, { agent_0: 4, agent_1: 1 }],
    [2, { agent_0: 4, agent_1: 1 }],
  ]);
  assert.deepEqual(steps[0].record.policy_outputs.agent_1.logits, logits); // the act's buffers reached Python as bytes
  assert.equal(records.at(-1).name, "scene_end");
  assert.equal(h.ticker.timer, null); // the scene is over: no more ticks
  h.stop();
});

test("one call into Python per tick: an act waits for the tick, unless the game waits for it (lockstep)", async () => {
  const counted = (h) => {
    const calls = [];
    const step = h.stepFn;
    h.stepFn = (...args) => (calls.push(args[3]), step(...args));
    return calls;
  };
  const frames = (out) => engine(out, "frame").map((m) => m.step);
  const realtime = host();
  const calls = counted(realtime.h);
  realtime.h.start(spec(GRID), 0.01); // no tick of its own during the test: the test ticks
  realtime.h.receive({ type: "ready" }); // not an act: in at once
  assert.deepEqual(frames(realtime.out), [0, 0]);
  realtime.h.receive(...act(0, 1));
  assert.deepEqual([frames(realtime.out), realtime.h.queue.length], [[0, 0], 1]); // waits for the tick
  realtime.h.tickFn();
  assert.deepEqual([frames(realtime.out), realtime.h.queue.length], [[0, 0, 1], 0]); // taken, then stepped
  assert.deepEqual(calls, [false, true]);
  realtime.h.stop();

  const lockstep = host();
  const base = spec(GRID);
  lockstep.h.start({ ...base, gameplay: { ...base.gameplay, step_mode: "lockstep" } }, 0.01);
  lockstep.h.receive({ type: "ready" });
  lockstep.h.receive(...act(0, 1));
  assert.deepEqual(frames(lockstep.out), [0, 0, 1]); // the act steps the env as it comes
  lockstep.h.stop();
});

test("an env that raises stops the ticks; the engine reports it with the Python traceback (env_error)", async () => {
  const { h, out, until } = host();
  h.start(spec(FAILING), 100);
  h.receive({ type: "ready" });
  for (let step = 0; step < 6; step++) {
    await until((m) => m.message?.type === "frame" && m.message.step === step);
    h.receive(...act(step, 0));
  }
  const report = (await until((m) => m.message?.type === "env_error")).message;
  assert.match(report.message, /RuntimeError: the grid fails on purpose/);
  assert.match(report.traceback, /Traceback \(most recent call last\)[\s\S]*failing_grid\.py[\s\S]*RuntimeError/);
  assert.deepEqual([report.session_id, report.episode, report.step], ["s1", 0, 5]);
  assert.ok(engine(out, "error").some((m) => m.fatal)); // the page's message: the game stopped
  assert.equal(h.ticker.timer, null);
  h.stop();
});

test("a game that cannot be built (BrowserGame raises) is reported as an exception, and never ticks", () => {
  const { h, out } = host();
  const { scene_id: _, ...bad } = spec(GRID);
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
    h.start(spec(GRID), fps);
    assert.deepEqual(out.map((o) => o.message.type), ["exception"]);
    assert.match(out[0].message.message, /fps must be a positive number/);
    assert.equal(h.game, null);
  }
});
