#!/usr/bin/env node
/**
 * Run one Python function of mug inside Pyodide under Node and print its JSON result.
 *
 *   node pyodide-run.mjs < job.json
 *
 * job.json: {"bundles": ["/abs/mug.zip", "/abs/env.zip"], "call": "package.module:function", "args": {...}}.
 * Each zip is unpacked into the Pyodide file system (on sys.path), then
 * `function(args)` runs and its JSON-able result is printed as one line:
 * {"result": ..., "load_s": seconds to load Pyodide, "call_s": seconds of the call}.
 * A Python exception prints {"error": message, "traceback": text} and exits 1.
 * Used by `mug check-env`, the benchmarks and the Pyodide tests; Pyodide's
 * core files are read from ./pyodide/ next to this file (mug/static/pyodide/).
 */
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const job = JSON.parse(readFileSync(0, "utf8"));
const started = performance.now();
const { loadPyodide } = await import(pathToFileURL(join(here, "pyodide", "pyodide.mjs")).href);
const pyodide = await loadPyodide({ indexURL: join(here, "pyodide") + "/" });
const root = "/mug-bundles";
for (const path of job.bundles) {
  pyodide.unpackArchive(new Uint8Array(readFileSync(path)), "zip", { extractDir: root });
}
const loaded = performance.now();
pyodide.globals.set("job_json", JSON.stringify(job));
try {
  const out = pyodide.runPython(`
import importlib, json, sys
sys.path.insert(0, ${JSON.stringify(root)})
job = json.loads(job_json)
module, _, name = job["call"].partition(":")
json.dumps(getattr(importlib.import_module(module), name)(job.get("args") or {}))
`);
  const done = performance.now();
  process.stdout.write(
    JSON.stringify({ result: JSON.parse(out), load_s: (loaded - started) / 1000, call_s: (done - loaded) / 1000 }) + "\n",
  );
} catch (error) {
  process.stdout.write(JSON.stringify({ error: String(error.message).split("\n").slice(-2).join(" "), traceback: String(error.message) }) + "\n");
  process.exit(1);
}
