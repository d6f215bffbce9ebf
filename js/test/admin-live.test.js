import assert from "node:assert/strict";
import { test } from "node:test";
import { clockTime, liveTables, membersText } from "../src/client/admin-live.js";

test("the live tables show waiting, running and finished matches per scene, as text", () => {
  const started = new Date(2026, 0, 2, 9, 5, 7).getTime() / 1000;
  const status = {
    duo: {
      waiting: 3,
      longest_wait_s: 61.2,
      running: [{ match_id: "m7", members: { agent_0: "alice", agent_1: "bob" }, episode: 1, step: 42, started }],
      finished: [{ match_id: "m6", members: { 0: "carol", 1: "dan" }, ended: started + 3600, reason: "partner_lost" }],
    },
    trio: { waiting: 0, longest_wait_s: 0, running: [], finished: [] },
  };
  assert.deepEqual(liveTables(status), [
    {
      scene: "duo",
      summary: "3 waiting · longest wait 1:02 · 1 running · 1 finished",
      running: [["m7", "agent_0: alice, agent_1: bob", "1", "42", "09:05:07"]],
      finished: [["m6", "0: carol, 1: dan", "10:05:07", "partner_lost"]],
    },
    { scene: "trio", summary: "0 waiting · longest wait 0:00 · 0 running · 0 finished", running: [], finished: [] },
  ]);
});

test("missing times and members show as dashes and nothing, not as errors", () => {
  assert.equal(clockTime(null), "-");
  assert.equal(clockTime(undefined), "-");
  assert.equal(membersText(undefined), "");
  assert.deepEqual(liveTables({ s: { waiting: 0, longest_wait_s: 0, running: [], finished: [{ match_id: 1, members: {}, ended: null }] } })[0].finished, [["1", "", "-", "-"]]);
});
