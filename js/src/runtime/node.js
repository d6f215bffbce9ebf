/**
 * Node-only helpers (never bundled for the browser): load ORT's wasm from disk.
 * @module runtime/node
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { configureOrt } from "./ort.js";

export const WASM_FILE = "ort-wasm-simd-threaded.wasm";

/**
 * Path of ORT's wasm: `explicit` if given, else beside this module (the
 * bundled copy in `mug/static/`), else inside `node_modules/onnxruntime-web`.
 * @param {string} [explicit]
 * @returns {string}
 */
export function findWasm(explicit) {
  if (explicit) return explicit;
  const here = join(dirname(fileURLToPath(import.meta.url)), WASM_FILE);
  if (existsSync(here)) return here;
  return join(dirname(fileURLToPath(import.meta.resolve("onnxruntime-web/wasm"))), WASM_FILE);
}

/**
 * Configure ORT with the wasm bytes read from disk.
 * @param {string} [wasmPath]
 */
export function configureNodeOrt(wasmPath) {
  return configureOrt({ wasmBinary: readFileSync(findWasm(wasmPath)) });
}
