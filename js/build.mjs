/**
 * Build the JS bundles into ../mug/static/ (run by `npm run build`, which
 * hatch-jupyter-builder calls on `pip install`):
 *   client.js          browser ES module: the participant page (messages, canvas renderer, policy runtime)
 *   widget.js          browser ES module: the notebook preview widget (anywidget), same client code
 *   admin.js           browser ES module: the admin page's live view of the matches
 *   pyworker.js        browser module Worker: Pyodide and the engine of environments that run in the browser
 *   policy-trace.mjs   Node command used by `mug check-policy` and parity tests
 *   compile-custom.mjs Node command compiling a custom_inference_fn for `ModelConfig.validate()`
 *   simulate.mjs       Node command running simulated participants (`mug.server.simulate`), ws bundled
 *   pyodide-run.mjs    Node command running a mug function in Pyodide (`mug check-env`, Pyodide tests, benchmarks)
 *   ort-wasm-simd-threaded.wasm  ORT's wasm, loaded by both
 *   pyodide/           Pyodide's core files (npm `pyodide`), for environments that run in the browser
 *                      and for `mug check-env` under Node; `pyodide/VERSION` names the release
 */
import { build } from "esbuild";
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const outdir = join(here, "..", "mug", "static");
mkdirSync(outdir, { recursive: true });

const common = { bundle: true, format: "esm", target: "es2022", logLevel: "warning", legalComments: "none" };

for (const [entry, out] of [
  ["src/client/index.js", "client.js"],
  ["src/widget/index.js", "widget.js"],
  ["src/client/admin.js", "admin.js"],
  ["src/pyworker/worker.js", "pyworker.js"],
]) {
  await build({ ...common, entryPoints: [join(here, entry)], outfile: join(outdir, out), platform: "browser", minify: true });
}
// CommonJS packages bundled into a Node ES module (ws) need a `require` for Node's built-in modules
const nodeRequire = 'import { createRequire as __mugCreateRequire } from "node:module"; const require = __mugCreateRequire(import.meta.url);';
for (const command of ["policy-trace.mjs", "compile-custom.mjs", "simulate.mjs", "pyodide-run.mjs"]) {
  await build({ ...common, entryPoints: [join(here, "bin", command)], outfile: join(outdir, command), platform: "node", banner: { js: nodeRequire } });
}

const wasm = "ort-wasm-simd-threaded.wasm";
copyFileSync(join(dirname(fileURLToPath(import.meta.resolve("onnxruntime-web/wasm"))), wasm), join(outdir, wasm));
const pyodideDir = dirname(fileURLToPath(import.meta.resolve("pyodide/package.json")));
const pyodideOut = join(outdir, "pyodide");
mkdirSync(pyodideOut, { recursive: true });
for (const file of ["pyodide.mjs", "pyodide.asm.mjs", "pyodide.asm.wasm", "python_stdlib.zip", "pyodide-lock.json"]) {
  copyFileSync(join(pyodideDir, file), join(pyodideOut, file));
}
writeFileSync(join(pyodideOut, "VERSION"), JSON.parse(readFileSync(join(pyodideDir, "package.json"), "utf8")).version);
console.log(`built into ${outdir}`);
