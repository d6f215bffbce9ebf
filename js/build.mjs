/**
 * Build the JS bundles into ../mug/static/ (run by `npm run build`, which
 * hatch-jupyter-builder calls on `pip install`):
 *   client.js          browser ES module: messages, canvas renderer and the policy runtime (onnxruntime-web)
 *   policy-trace.mjs   Node command used by `mug check-policy` and parity tests
 *   ort-wasm-simd-threaded.wasm  ORT's wasm, loaded by both
 */
import { build } from "esbuild";
import { copyFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const outdir = join(here, "..", "mug", "static");
mkdirSync(outdir, { recursive: true });

const common = { bundle: true, format: "esm", target: "es2022", logLevel: "warning", legalComments: "none" };

await build({ ...common, entryPoints: [join(here, "src/client/index.js")], outfile: join(outdir, "client.js"), platform: "browser", minify: true });
await build({
  ...common,
  entryPoints: [join(here, "bin/policy-trace.mjs")],
  outfile: join(outdir, "policy-trace.mjs"),
  platform: "node",
});

const wasm = "ort-wasm-simd-threaded.wasm";
copyFileSync(join(dirname(fileURLToPath(import.meta.resolve("onnxruntime-web/wasm"))), wasm), join(outdir, wasm));
console.log(`built into ${outdir}`);
