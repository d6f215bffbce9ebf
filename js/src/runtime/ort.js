/**
 * The one onnxruntime-web entry point: the wasm backend, one thread, no proxy
 * worker (threads need cross-origin isolation; Node breaks otherwise).
 * @module runtime/ort
 */
import * as ort from "onnxruntime-web/wasm";

ort.env.wasm.numThreads = 1;
ort.env.wasm.proxy = false;

/**
 * Tell ORT where its wasm is. Needed wherever the bundle cannot find the
 * `.wasm` beside itself (blob:/data: module URLs, Node). Call before the
 * first session is created.
 * @param {{wasmBinary?: ArrayBuffer|Uint8Array, wasmUrl?: string}} options
 *   the wasm bytes, or an absolute URL of `ort-wasm-simd-threaded.wasm`
 * @returns {typeof ort}
 */
export function configureOrt({ wasmBinary, wasmUrl } = {}) {
  if (wasmBinary) ort.env.wasm.wasmBinary = wasmBinary;
  else if (wasmUrl) ort.env.wasm.wasmPaths = { wasm: wasmUrl };
  return ort;
}

export { ort };
