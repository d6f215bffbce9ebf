import assert from "node:assert/strict";
import test from "node:test";
import { FrameQueue } from "../src/client/frame-queue.js";

function recorder(mustAct, { slow = null } = {}) {
  const seen = [];
  const queue = new FrameQueue(
    async (frame, how) => {
      seen.push({ step: frame.step, ...how });
      if (slow) await slow(frame);
    },
    { mustAct },
  );
  return { queue, seen };
}

test("frames that arrive while one is handled: only the newest is drawn, the rest are counted as dropped", async () => {
  const { queue, seen } = recorder(() => false);
  let done;
  for (let step = 0; step < 10; step++) done = queue.push({ step });
  await done;
  // every frame is taken in (a Surface payload builds on the one before), one is drawn and acted on
  assert.deepEqual(seen.map((s) => s.step), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.deepEqual(seen.filter((s) => s.draw || s.act), [{ step: 9, draw: true, act: true }]);
  assert.equal(queue.takeDropped(), 9);
  assert.equal(queue.takeDropped(), 0); // counted once
});

test("a frame the engine waits on is acted on even when overtaken; in order, drawn only if newest", async () => {
  const { queue, seen } = recorder((frame) => frame.observations);
  const frames = [{ step: 0, observations: true }, { step: 1 }, { step: 2, observations: true }, { step: 3 }];
  let done;
  for (const f of frames) done = queue.push(f);
  await done;
  assert.deepEqual(seen, [
    { step: 0, draw: false, act: true },
    { step: 1, draw: false, act: false },
    { step: 2, draw: false, act: true },
    { step: 3, draw: true, act: true },
  ]);
  assert.equal(queue.takeDropped(), 3);
});

test("a slow device does not fall behind: frames that come during a slow frame are skipped to the newest", async () => {
  let release;
  const gate = new Promise((resolve) => (release = resolve));
  const { queue, seen } = recorder(() => false, { slow: (frame) => frame.step === 0 && gate });
  const first = queue.push({ step: 0 });
  await new Promise((resolve) => setTimeout(resolve, 0)); // step 0 is being handled
  for (let step = 1; step <= 50; step++) queue.push({ step });
  release();
  await first;
  assert.deepEqual(
    seen.filter((s) => s.draw).map((s) => s.step),
    [0, 50],
  );
  assert.equal(queue.takeDropped(), 49);
});

test("frames at the pace they are handled are all drawn and acted on (lockstep, a fast device)", async () => {
  const { queue, seen } = recorder(() => true);
  for (let step = 0; step < 5; step++) await queue.push({ step });
  assert.deepEqual(seen.map((s) => [s.step, s.draw, s.act]), [0, 1, 2, 3, 4].map((s) => [s, true, true]));
  assert.equal(queue.takeDropped(), 0);
});

test("an error in one frame is reported and the next frames are still handled", async () => {
  const errors = [];
  const seen = [];
  const queue = new FrameQueue(
    async (frame) => {
      if (frame.step === 0) throw new Error("boom");
      seen.push(frame.step);
    },
    { mustAct: () => true, onError: (e) => errors.push(e.message) },
  );
  await queue.push({ step: 0 });
  await queue.push({ step: 1 });
  assert.deepEqual(errors, ["boom"]);
  assert.deepEqual(seen, [1]);
});

test("clear forgets the frames not handled yet", async () => {
  const { queue, seen } = recorder(() => true);
  const done = queue.push({ step: 0 });
  queue.push({ step: 1 });
  queue.clear();
  await done;
  assert.deepEqual(seen, []);
});
