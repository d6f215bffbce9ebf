/**
 * The worker's side of a P2P match (`P2PHost`) in real Pyodide under Node: two members' `mug.browser.P2PGame`s,
 * from the bundles the server ships (`mug.server.pybundle`) and the spec of a real two-human browser-side scene,
 * tick on real timers; their peer messages reach each other after a delay, through JSON (as the mesh carries them).
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import test from "node:test";
import { fileURLToPath } from "node:url";
import { loadPyodide } from "pyodide";
import { P2PHost } from "../src/pyworker/p2p-host.js";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const BUILD = `
import json, sys
from pathlib import Path
import mug
from mug.examples.browser_grid import PyCoinGrid, draw
from mug.server.pybundle import env_bundle, mug_bundle

scene = (mug.GymScene("duo").environment(PyCoinGrid, {"max_steps": 12}, seed=7)
    .policies({"agent_0": mug.Human, "agent_1": mug.Human})
    .gameplay(action_mapping={"ArrowRight": 4, "ArrowDown": 2}, num_episodes=1)
    .rendering(mode="surface", draw=draw, width=100, height=100, fps=30).runtime(environment="browser"))
for i, bundle in enumerate((mug_bundle(), env_bundle(scene))):
    (Path(sys.argv[1]) / f"{i}.zip").write_bytes(bundle.data)
print(json.dumps(scene.browser_spec()))
`;
const DIR = mkdtempSync(join(tmpdir(), "mug-p2p-host-"));
writeFileSync(join(DIR, "build.py"), BUILD);
const SPEC = JSON.parse(execFileSync(join(ROOT, ".venv", "bin", "python"), [join(DIR, "build.py"), DIR], { cwd: ROOT, encoding: "utf8" }));

const pyodide = await loadPyodide();
for (let i = 0; i < 2; i++) pyodide.unpackArchive(new Uint8Array(readFileSync(join(DIR, `${i}.zip`))), "zip", { extractDir: "/mug-bundles" });
pyodide.runPython("import sys; sys.path.insert(0, '/mug-bundles')");

const SEATS = ["agent_0", "agent_1"];
const spec = (seat) => ({
  ...SPEC,
  session_id: "m1",
  p2p: { match_id: "m1", seat, owners: { agent_0: "agent_0", agent_1: "agent_1" }, ai_seats: [], input_delay: 2, max_prediction: 8, hash_interval: 1 },
});

test("two members' games confirm the same frames over delayed peer messages and end the scene together", async () => {
  const out = { agent_0: [], agent_1: [] };
  const hosts = {};
  const ended = SEATS.map((seat) => new Promise((resolve) => (out[seat].ended = resolve)));
  for (const seat of SEATS) {
    const other = SEATS.find((s) => s !== seat);
    hosts[seat] = new P2PHost(pyodide, (message) => {
      const m = message.message;
      if (message.type === "exception") assert.fail(message.message);
      out[seat].push(m);
      if (m.type === "peer") {
        for (const [to, , body] of m.messages) {
          assert.ok(to === null || to === other);
          const text = JSON.stringify(body);
          setTimeout(() => hosts[other].receive({ type: "peer", from: seat, message: JSON.parse(text) }), 40);
        }
      }
      if (m.type === "scene_end") out[seat].ended();
    });
  }
  for (const seat of SEATS) {
    hosts[seat].start(spec(seat), 30);
    hosts[seat].receive({ type: "ready" });
  }
  hosts.agent_0.receive({ type: "act", step: 0, keys: ["ArrowRight"], policies: {} }); // the GameView's act: keys held
  hosts.agent_1.receive({ type: "act", step: 0, keys: ["ArrowDown"], policies: {} });
  await Promise.all(ended);
  const records = (seat) => out[seat].filter((m) => m.type === "p2p_frames").flatMap((m) => m.records);
  const steps = (seat) => records(seat).filter((r) => r.result.kind === "step");
  assert.equal(steps("agent_0").length, 12);
  assert.deepEqual(steps("agent_0").map((r) => r.chain), steps("agent_1").map((r) => r.chain));
  assert.deepEqual(steps("agent_0").at(-1).inputs, { agent_0: 4, agent_1: 2 });
  for (const seat of SEATS) {
    const types = out[seat].map((m) => m.type);
    assert.equal(types[0], "scene");
    assert.ok(types.includes("frame"));
    assert.deepEqual(types.slice(-2), ["p2p_done", "scene_end"]);
    assert.equal(hosts[seat].ticker.timer, null); // the scene is over: no more ticks
    hosts[seat].stop();
  }
});
