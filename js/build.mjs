/**
 * Build the JS bundles into ../mug/static/ (run by `npm run build`, which
 * hatch-jupyter-builder calls on `pip install`):
 *   client.js          browser ES module: the participant page (messages, canvas renderer, policy runtime)
 *   widget.js          browser ES module: the notebook preview widget (anywidget), same client code
 *   policy-trace.mjs   Node command used by `mug check-policy` and parity tests
 *   compile-custom.mjs Node command compiling a custom_inference_fn for `ModelConfig.validate()`
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
]) {
  await build({ ...common, entryPoints: [join(here, entry)], outfile: join(outdir, out), platform: "browser", minify: true });
}
for (const command of ["policy-trace.mjs", "compile-custom.mjs", "pyodide-run.mjs"]) {
  await build({ ...common, entryPoints: [join(here, "bin", command)], outfile: join(outdir, command), platform: "node" });
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
