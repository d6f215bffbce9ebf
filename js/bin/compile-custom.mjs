#!/usr/bin/env node
/**
 * Compile a `custom_inference_fn` body with the browser runtime's own compile
 * step (`compileCustomFunction` of runtime/custom.js), without running it.
 *
 *   node compile-custom.mjs < request.json
 *
 * The request on stdin is `{"body": <string>, "policy": <name>}`; the answer is
 * one JSON line, `{"ok": true}` or `{"error": <the runtime's message>}`.
 * `ModelConfig.validate()` uses it so that a syntax error fails in the
 * notebook, not first in a participant's browser.
 */
import { readFileSync } from "node:fs";
import { compileCustomFunction } from "../src/runtime/custom.js";

let answer;
try {
  const { body, policy } = JSON.parse(readFileSync(0, "utf8"));
  compileCustomFunction(body, policy ?? "policy");
  answer = { ok: true };
} catch (error) {
  answer = { error: error.message };
}
process.stdout.write(JSON.stringify(answer) + "\n");
