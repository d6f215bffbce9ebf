import assert from "node:assert/strict";
import { test } from "node:test";
import { CommAssets } from "../src/widget/assets.js";

/** A widget model whose sent messages are kept; `answer` plays the kernel. */
function fakeKernel() {
  const sent = [];
  return { sent, model: { send: (message) => sent.push(message) } };
}
const bytes = (...values) => new DataView(Uint8Array.from(values).buffer);

test("concurrent requests for one asset share one comm request and each resolve", async () => {
  const { sent, model } = fakeKernel();
  const assets = new CommAssets(model);
  const scene = assets.request("models/s/agent_1.onnx");
  const recompute = assets.request("models/s/agent_1.onnx");
  const wasm = assets.request("wasm");
  assert.deepEqual(sent, [
    { type: "asset_request", name: "models/s/agent_1.onnx" },
    { type: "asset_request", name: "wasm" },
  ]);
  assets.receive({ name: "models/s/agent_1.onnx" }, [bytes(1, 2, 3)]);
  assets.receive({ name: "wasm" }, [bytes(9)]);
  const [a, b, w] = await Promise.all([scene, recompute, wasm]);
  assert.deepEqual([...a], [1, 2, 3]);
  assert.deepEqual([...b], [1, 2, 3]);
  assert.notEqual(a, b); // each caller its own copy
  assert.deepEqual([...w], [9]);
});

test("a failed load rejects every waiter and the next request asks again", async () => {
  const { sent, model } = fakeKernel();
  const assets = new CommAssets(model);
  const first = assets.request("models/s/x.onnx");
  const second = assets.request("models/s/x.onnx");
  assets.receive({ name: "models/s/x.onnx", error: "no model at 'models/s/x.onnx'" }, []);
  await assert.rejects(first, /no model at/);
  await assert.rejects(second, /no model at/);
  const retry = assets.request("models/s/x.onnx");
  assert.equal(sent.length, 2);
  assets.receive({ name: "models/s/x.onnx" }, [bytes(7)]);
  assert.deepEqual([...(await retry)], [7]);
});

test("an answer without bytes is an error, not a hang", async () => {
  const { model } = fakeKernel();
  const assets = new CommAssets(model);
  const request = assets.request("wasm");
  assets.receive({ name: "wasm" }, []);
  await assert.rejects(request, /the kernel sent no bytes/);
});
