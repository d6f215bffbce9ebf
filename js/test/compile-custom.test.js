import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const command = join(dirname(fileURLToPath(import.meta.url)), "..", "bin", "compile-custom.mjs");
const compile = (request) => {
  const run = spawnSync(process.execPath, [command], { input: JSON.stringify(request), encoding: "utf8" });
  assert.equal(run.status, 0, run.stderr);
  return JSON.parse(run.stdout);
};

test("a body that compiles is ok, and is not run", () => {
  assert.deepEqual(compile({ body: "throw new Error('run');", policy: "p" }), { ok: true });
});

test("a syntax error comes back with the runtime's message and the policy's name", () => {
  const { error } = compile({ body: "return (;", policy: "partner" });
  assert.match(error, /^policy 'partner': custom_inference_fn does not compile: SyntaxError: /);
});
