import assert from "node:assert/strict";
import { test } from "node:test";
import { Shim, seededRandom, shimmed } from "../src/p2p/shim.js";

/** A manual clock: timers fire when `advance` passes their time. */
function manualClock() {
  let now = 0;
  const timers = [];
  return {
    now: () => now,
    setTimeout: (fn, ms) => timers.push({ at: now + ms, fn, order: timers.length }),
    advance(ms) {
      now += ms;
      for (;;) {
        const due = timers.filter((t) => t.at <= now && !t.done).sort((a, b) => a.at - b.at || a.order - b.order)[0];
        if (!due) return;
        due.done = true;
        due.fn();
      }
    },
  };
}

test("the seeded generator repeats and spreads over [0, 1)", () => {
  const a = seededRandom(7);
  const b = seededRandom(7);
  const draws = Array.from({ length: 1000 }, () => a());
  assert.deepEqual(draws, Array.from({ length: 1000 }, () => b()));
  assert.ok(draws.every((x) => x >= 0 && x < 1));
  assert.ok(Math.abs(draws.reduce((s, x) => s + x, 0) / 1000 - 0.5) < 0.05);
});

test("latency delays every message; jitter spreads them; nothing arrives early", () => {
  const clock = manualClock();
  const shim = new Shim({ latencyMs: 100, jitterMs: 30, seed: 3, now: clock.now, setTimeout: clock.setTimeout });
  const arrived = [];
  for (let i = 0; i < 200; i++) shim.pass(i, (x) => arrived.push({ x, at: clock.now() }));
  clock.advance(69);
  assert.equal(arrived.length, 0);
  for (let t = 70; t <= 131; t++) clock.advance(1);
  assert.equal(arrived.length, 200);
  assert.ok(arrived.every((a) => a.at >= 70 && a.at <= 131));
  assert.notDeepEqual(arrived.map((a) => a.x), Array.from({ length: 200 }, (_, i) => i)); // jitter reorders
});

test("loss drops about the given share of an unordered channel, the same ones for the same seed", () => {
  const run = () => {
    const kept = [];
    const shim = new Shim({ loss: 0.2, seed: 11 });
    for (let i = 0; i < 5000; i++) shim.pass(i, (x) => kept.push(x));
    return { kept, counts: shim.counts };
  };
  const first = run();
  assert.deepEqual(first.kept, run().kept);
  assert.equal(first.counts.passed + first.counts.dropped, 5000);
  assert.ok(Math.abs(first.counts.dropped / 5000 - 0.2) < 0.03, `${first.counts.dropped} dropped`);
});

test("an ordered channel loses nothing and keeps the order under jitter", () => {
  const clock = manualClock();
  const shim = new Shim({ latencyMs: 50, jitterMs: 40, loss: 0.5, ordered: true, now: clock.now, setTimeout: clock.setTimeout });
  const arrived = [];
  for (let i = 0; i < 100; i++) {
    shim.pass(i, (x) => arrived.push(x));
    clock.advance(1);
  }
  clock.advance(200);
  assert.deepEqual(arrived, Array.from({ length: 100 }, (_, i) => i));
});

test("shimmed() wraps a channel's send; bad settings are refused", () => {
  const sent = [];
  const channel = shimmed({ send: (d) => sent.push(d) }, { loss: 0 });
  channel.send("x");
  assert.deepEqual(sent, ["x"]);
  assert.throws(() => new Shim({ loss: 1 }), /loss/);
  assert.throws(() => new Shim({ latencyMs: -1 }), /latencyMs/);
});
