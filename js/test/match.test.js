import assert from "node:assert/strict";
import { test } from "node:test";
import { ProtocolError, checkServerMessage, matchOf, visibilityMessage } from "../src/client/messages.js";
import { isTransient, seatLabel } from "../src/client/notices.js";
import { Countdown, formatSeconds, pausedText, waitroomText } from "../src/client/waitroom.js";

const waitroom = { type: "waitroom", scene_id: "duo", waiting: 1, needed: 2, time_left_s: 118.2, message: "Waiting for other participants…" };

test("the match messages of the contract pass the check", () => {
  for (const message of [
    waitroom,
    { ...waitroom, waiting: null, needed: null },
    { type: "paused", scene_id: "duo", reason: "partner_lost", message: "Your partner left", time_left_s: 30 },
    { type: "resumed", scene_id: "duo" },
    { type: "notice", code: "partner_lost", message: "Your partner left." },
    { type: "notice", code: "something_new", message: "a code this page does not know is still shown" },
    { type: "scene", scene: { scene_id: "duo", kind: "gym" }, match: { match_id: "m1", seat: "agent_1", seats: 2 } },
    { type: "scene", scene: { scene_id: "duo", kind: "gym" } },
    { type: "p2p_seat_ai", match_id: "duo-1", seat: "agent_0" },
  ]) {
    assert.equal(checkServerMessage(message), message);
  }
});

test("malformed match messages are refused, naming the field", () => {
  const bad = [
    [{ ...waitroom, waiting: "1" }, /waitroom message: waiting and needed/],
    [{ ...waitroom, needed: -2 }, /waiting and needed/],
    [{ ...waitroom, time_left_s: "soon" }, /time_left_s/],
    [{ ...waitroom, time_left_s: Infinity }, /time_left_s/],
    [{ ...waitroom, message: 3 }, /waitroom message: message/],
    [{ type: "paused", reason: "partner_lost", message: "x" }, /paused message: time_left_s/],
    [{ type: "paused", time_left_s: 3, message: "x" }, /paused message: reason/],
    [{ type: "notice", code: "partner_lost" }, /notice message/],
    [{ type: "p2p_seat_ai", match_id: "duo-1", seat: 0 }, /p2p_seat_ai message: match_id and seat/],
    [{ type: "p2p_seat_ai", seat: "agent_0" }, /p2p_seat_ai message/],
    [{ type: "scene", scene: { scene_id: "duo" }, match: { seat: 1, seats: 2 } }, /match must be/],
    [{ type: "scene", scene: { scene_id: "duo" }, match: { seat: "a", seats: 0 } }, /match must be/],
    [{ type: "scene", scene: { scene_id: "duo", match: null } }, /match must be/],
  ];
  for (const [message, pattern] of bad) assert.throws(() => checkServerMessage(message), (e) => e instanceof ProtocolError && pattern.test(e.message));
});

test("the match block is read from the scene message or its metadata", () => {
  const match = { match_id: "m", seat: "0", seats: 3 };
  assert.equal(matchOf({ type: "scene", scene: {}, match }), match);
  assert.equal(matchOf({ type: "scene", scene: { match } }), match);
  assert.equal(matchOf({ type: "scene", scene: {} }), undefined);
});

test("countdowns show m:ss rounded up and never go below zero", () => {
  assert.equal(formatSeconds(118.2), "1:59");
  assert.equal(formatSeconds(60), "1:00");
  assert.equal(formatSeconds(0.01), "0:01");
  assert.equal(formatSeconds(0), "0:00");
  assert.equal(formatSeconds(-5), "0:00");
  assert.equal(formatSeconds(NaN), "0:00");
  assert.equal(formatSeconds(3725), "62:05");
  const countdown = new Countdown(10, 5000);
  assert.equal(countdown.left(5000), 10);
  assert.equal(countdown.left(7500), 7.5);
  assert.equal(countdown.left(60000), 0);
});

test("the waitroom says how many wait of how many are needed, unless the scene hides the count", () => {
  assert.deepEqual(waitroomText(waitroom, 118.2), { message: "Waiting for other participants…", count: "1 of 2 participants waiting", time: "Time left: 1:59" });
  assert.equal(waitroomText({ ...waitroom, waiting: null, needed: null }, 3).count, null);
  assert.equal(waitroomText({ ...waitroom, waiting: 3 }, 3).count, "2 of 2 participants waiting"); // the rest are matched next
  assert.deepEqual(pausedText({ message: "Your partner lost the connection" }, 29.5), { message: "Your partner lost the connection", time: "Waiting at most 0:30" });
});

test("a hidden-tab warning is a passing banner; other notices stay above the next page", () => {
  assert.equal(isTransient("hidden_warning"), true);
  for (const code of ["partner_lost", "excluded", "waitroom_timeout", "interrupted"]) assert.equal(isTransient(code), false);
});

test("the seat label counts the human agents in the env's order", () => {
  const meta = { agents: ["agent_0", "agent_1", "agent_2"], policies: { agent_0: { kind: "human" }, agent_1: { kind: "model" }, agent_2: { kind: "human" } } };
  assert.equal(seatLabel({ seat: "agent_2", seats: 2 }, meta), "You are player 2 of 2");
  assert.equal(seatLabel({ seat: "agent_0", seats: 2 }, meta), "You are player 1 of 2");
  const ints = { agents: [0, 1, 2], policies: { 0: { kind: "human" }, 1: { kind: "human" }, 2: { kind: "human" } } };
  assert.equal(seatLabel({ seat: "1", seats: 3 }, ints), "You are player 2 of 3"); // int ids travel as text
  assert.equal(seatLabel({ seat: "ghost", seats: 3 }, ints), "You are one of 3 players");
});

test("the visibility message carries only whether the tab is hidden", () => {
  assert.deepEqual(visibilityMessage(true), { type: "visibility", hidden: true });
  assert.deepEqual(visibilityMessage(0), { type: "visibility", hidden: false });
});
