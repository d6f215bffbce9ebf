import assert from "node:assert/strict";
import { test } from "node:test";

import { statsText } from "../src/widget/p2p.js";

test("a peer's statistics line: frames, rollbacks with their depth, re-simulation, stalls and desyncs", () => {
  const stats = { frame: 120, confirmed: 117, rollbacks: 12, depth_p50: 2, depth_max: 4, resim_frames: 30, stalls: 1, desyncs: 0, resyncs: 0 };
  assert.equal(
    statsText(stats),
    "frame 120 · confirmed 117\nrollbacks 12 (depth p50 2, max 4) · re-simulated 30 frames\nstalls 1 · desyncs 0 · resyncs 0",
  );
  assert.equal(statsText({ ...stats, rollbacks: 0 }).split("\n")[1], "rollbacks 0 · re-simulated 30 frames"); // no depth without rollbacks
  assert.equal(statsText(undefined), ""); // a seat the kernel has not reported yet
});
