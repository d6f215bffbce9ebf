import assert from "node:assert/strict";
import test from "node:test";
import { Bot, frameHash } from "../src/client/bot.js";
import { tensorRef } from "../src/client/messages.js";
import { Player } from "../src/client/player.js";
import { LSTM_CONFIG, model, observation } from "./helpers.js";

function gymMeta(overrides = {}) {
  return {
    kind: "gym",
    scene_id: "g",
    keys: ["ArrowLeft", "ArrowRight"],
    mode: "lockstep",
    input_mode: "single_keystroke",
    policies: {},
    policy_seed: 3,
    you: { humans: ["agent_0"], runs_policies: [], policy_states: {} },
    ...overrides,
  };
}

function frame(step, { episode = 0, render = { kind: "surface", commands: [step] }, hud = "h", observations = {} } = {}) {
  return { type: "frame", scene_id: "g", episode, step, render, hud, observations };
}

/** A bot whose sent messages, stop reason and timers are recorded; its clock is `clock.t` (ms). */
function harness(options = {}, { fetchAsset = async () => new Uint8Array() } = {}) {
  const sent = [];
  const timers = [];
  const clock = { t: 1000 };
  let stopped = null;
  const bot = new Bot(
    { participantId: "p1", ...options },
    {
      send: (message, buffers = []) => sent.push({ message, buffers }),
      fetchAsset,
      stop: (reason) => (stopped = reason),
      now: () => clock.t,
      setTimer: (fn, ms) => timers.push({ fn, ms }),
    },
  );
  return { bot, sent, timers, clock, stopped: () => stopped };
}

const settle = () => new Promise((done) => setTimeout(done, 0));

test("the bot continues text pages, answers surveys (given answers, else defaults) and stops at the end page", () => {
  const { bot, sent, stopped } = harness({ answers: { q2: 7 } });
  bot.start();
  bot.handle({ type: "scene", scene: { kind: "start", scene_id: "s" } }, []);
  const questions = [
    { qid: "q1", kind: "choice", options: ["a", "b"], multiple: true },
    { qid: "q2", kind: "likert" },
    { qid: "q3", kind: "text" },
    { qid: "q4", kind: "choice", options: ["x"], multiple: false },
  ];
  bot.handle({ type: "scene", scene: { kind: "survey", scene_id: "v", questions } }, []);
  bot.handle({ type: "scene", scene: { kind: "end", scene_id: "e", completion_code: "CODE" } }, []);
  assert.deepEqual(
    sent.map((s) => s.message),
    [
      { type: "ready" },
      { type: "advance", scene_id: "s" },
      { type: "response", scene_id: "v", answers: { q1: ["a"], q2: 7, q3: "", q4: "x" } },
    ],
  );
  assert.equal(bot.stats.completion_code, "CODE");
  assert.deepEqual(bot.stats.scenes, ["s", "v", "e"]);
  assert.equal(stopped(), "end");
});

test("in a game the bot presses its keys in turn, one a frame, through the page's Player; unused keys are never pressed", async () => {
  const { bot, sent, clock } = harness({ keys: ["ArrowRight", "x", "ArrowLeft"] });
  bot.handle({ type: "scene", scene: gymMeta() }, []);
  for (let step = 0; step < 3; step++) {
    bot.handle(frame(step), []);
    await settle();
    clock.t += 5;
  }
  const acts = sent.map((s) => s.message).filter((m) => m.type === "act");
  assert.deepEqual(
    acts.map((a) => [a.step, a.keys]),
    [
      [0, ["ArrowRight"]],
      [1, ["ArrowLeft"]],
      [2, ["ArrowRight"]],
    ],
  );
  assert.equal(bot.stats.acked_steps, 2); // the frames of steps 1 and 2 answered the acts of steps 0 and 1
  assert.deepEqual(bot.stats.latency_log.map(([, ms]) => ms), [5, 5]);
  assert.deepEqual(bot.stats.frame_log.map(([episode, step]) => [episode, step]), [[0, 0], [0, 1], [0, 2]]);
});

test("a bot with no key the scene uses says so and presses nothing", async () => {
  const { bot, sent } = harness({ keys: ["q"] });
  bot.handle({ type: "scene", scene: gymMeta({ mode: "realtime" }) }, []);
  bot.handle(frame(0), []);
  await settle();
  assert.match(bot.stats.client_errors[0], /none of the keys \["q"\] is used by scene 'g' \(its keys: ArrowLeft, ArrowRight\)/);
  assert.deepEqual(sent.at(-1).message.keys, []); // realtime: the act goes, with no key
});

test("stop_after_acks stops the bot after that many acknowledged steps", async () => {
  const { bot, stopped } = harness({ stopAfterAcks: 2 });
  bot.handle({ type: "scene", scene: gymMeta() }, []);
  for (let step = 0; step < 5 && !bot.done; step++) {
    bot.handle(frame(step), []);
    await settle();
  }
  assert.equal(stopped(), "acks");
  assert.equal(bot.stats.acked_steps, 2);
});

test("the frame hash covers what is shown, not the observations only this client gets", () => {
  const shown = new Uint8Array([1, 2, 3]);
  const own = [];
  tensorRef(shown, "uint8", [3], own);
  const obsA = tensorRef(Float32Array.from([1, 2]), "float32", [2], own);
  const withObs = frame(4, { render: { kind: "rgb", buffer: 0 }, observations: { agent_1: obsA } });
  const withoutObs = frame(4, { render: { kind: "rgb", buffer: 0 } });
  assert.equal(frameHash(withObs, own), frameHash(withoutObs, [shown]));
  assert.notEqual(frameHash(withoutObs, [new Uint8Array([1, 2, 4])]), frameHash(withoutObs, [shown]));
  assert.notEqual(frameHash(frame(4, { hud: "other" }), []), frameHash(frame(4), []));
  assert.match(frameHash(frame(4), []), /^[0-9a-f]{8}$/);
});

test("hidden spans: visibility reported hidden then visible, and no key pressed meanwhile", async () => {
  const { bot, sent, timers } = harness({ hidden: [[2, 3]] });
  bot.start();
  assert.deepEqual(timers.map((t) => t.ms), [2000, 5000]);
  bot.handle({ type: "scene", scene: gymMeta({ mode: "realtime", input_mode: "hold" }) }, []);
  timers[0].fn();
  bot.handle(frame(0), []);
  await settle();
  timers[1].fn();
  bot.handle(frame(1), []);
  await settle();
  const messages = sent.map((s) => s.message);
  assert.deepEqual(
    messages.filter((m) => m.type === "visibility"),
    [
      { type: "visibility", hidden: true },
      { type: "visibility", hidden: false },
    ],
  );
  assert.deepEqual(messages.filter((m) => m.type === "act").map((a) => a.keys), [[], ["ArrowLeft"]]);
  assert.deepEqual(bot.stats.visibility.map((v) => v.hidden), [true, false]);
});

test("waitroom, the match block of a scene, paused/resumed and notice messages are recorded", () => {
  const { bot, clock } = harness();
  bot.handle({ type: "waitroom", scene_id: "duo", waiting: 1, needed: 2, time_left_s: 60, message: "wait" }, []);
  clock.t += 1500;
  bot.handle({ type: "scene", scene: { scene_id: "duo", kind: "screening" }, match: { match_id: "m1", seat: "agent_1", seats: 2 } }, []);
  bot.handle({ type: "paused", scene_id: "duo", reason: "partner_lost", message: "…", time_left_s: 30 }, []);
  clock.t += 500;
  bot.handle({ type: "resumed", scene_id: "duo" }, []);
  bot.handle({ type: "notice", code: "partner_lost", message: "gone" }, []);
  assert.deepEqual(bot.stats.waitroom, [{ t: 1, waiting: 1, needed: 2, time_left_s: 60 }]);
  assert.deepEqual(bot.stats.matches, [{ match_id: "m1", seat: "agent_1", seats: 2, t: 2.5 }]);
  assert.deepEqual(bot.stats.pauses, [{ reason: "partner_lost", t: 2.5, resumed: 3 }]);
  assert.deepEqual(bot.stats.notices, [{ code: "partner_lost", message: "gone", t: 3 }]);
});

test("an act hook replaces the n-th act", async () => {
  const actHook = (message, buffers, n) => (n === 2 ? { message: { ...message, keys: ["forged"] }, buffers } : undefined);
  const { bot, sent } = harness({ actHook });
  bot.handle({ type: "scene", scene: gymMeta() }, []);
  for (let step = 0; step < 3; step++) {
    bot.handle(frame(step), []);
    await settle();
  }
  assert.deepEqual(sent.map((s) => s.message.keys), [["ArrowLeft"], ["forged"], ["ArrowLeft"]]);
});

test("the Player runs this client's browser-side policies on their observations and acts with the results", async () => {
  const sent = [];
  const meta = gymMeta({
    mode: "realtime",
    policies: { agent_1: { model_url: "models/g/agent_1/x.onnx", config: LSTM_CONFIG } },
    you: { humans: [], runs_policies: ["agent_1"], policy_states: {} },
  });
  const player = new Player(meta, {
    send: (message, buffers) => sent.push({ message, buffers }),
    fetchAsset: async (path) => (assert.equal(path, "models/g/agent_1/x.onnx"), model("overcooked_lstm_rllib.onnx")),
    onError: (error) => assert.fail(error),
  });
  assert.equal(player.keyDown("x"), false); // not a key of the scene
  const buffers = [];
  const obs = tensorRef(observation(116, 0), "float32", [116], buffers);
  await player.frame(frame(0, { observations: { agent_1: obs } }), buffers);
  const [{ message }] = sent;
  assert.equal(message.type, "act");
  assert.ok(Number.isInteger(message.policies.agent_1.action));
  assert.deepEqual(Object.keys(message.policies.agent_1.states).sort(), ["state_out_0", "state_out_1"]);
  assert.equal(message.policies.agent_1.steps, 1);
});
