import assert from "node:assert/strict";
import { test } from "node:test";
import { SurfaceState } from "../src/render/surface-state.js";

const rect = (id, x, depth = 0) => ({ id, shape: "rect", x, y: 0, w: 1, h: 1, color: "#000", depth });

test("a full payload replaces everything", () => {
  const s = new SurfaceState();
  s.apply({ full: true, set: [rect("a", 1), rect("b", 2)], remove: [], ephemeral: [] });
  s.apply({ full: true, set: [rect("c", 3)], remove: [], ephemeral: [] });
  assert.deepEqual(s.drawList().map((o) => o.id), ["c"]);
});

test("deltas change, add and remove persistent objects", () => {
  const s = new SurfaceState();
  s.apply({ full: true, set: [rect("a", 1), rect("b", 2)], remove: [], ephemeral: [] });
  s.apply({ full: false, set: [rect("a", 9), rect("c", 3)], remove: ["b"], ephemeral: [] });
  assert.deepEqual(s.drawList().map((o) => [o.id, o.x]), [["a", 9], ["c", 3]]);
});

test("ephemeral objects last one frame", () => {
  const s = new SurfaceState();
  s.apply({ full: true, set: [], remove: [], ephemeral: [{ shape: "circle", x: 1, y: 1, r: 1 }] });
  assert.equal(s.drawList().length, 1);
  s.apply({ full: false, set: [], remove: [], ephemeral: [] });
  assert.equal(s.drawList().length, 0);
});

test("drawing order is depth, then first appearance", () => {
  const s = new SurfaceState();
  s.apply({ full: true, set: [rect("top", 0, 2), rect("a", 0), rect("b", 0)], remove: [], ephemeral: [{ shape: "rect", x: 0, y: 0, w: 1, h: 1, depth: 1 }] });
  s.apply({ full: false, set: [rect("a", 5)], remove: [], ephemeral: [] }); // a changes but keeps its place
  assert.deepEqual(s.drawList().map((o) => o.id), ["a", "b", "top"]);
});
