#!/usr/bin/env node
/**
 * Simulated participants: many `Bot`s (js/src/client/bot.js) in one Node
 * process, each joining a deployed study as a browser would: GET the study
 * page (for its participant id and cookie), then the WebSocket.
 *
 *   node simulate.mjs [--wasm W] < spec.json
 *
 * spec.json: {"url": <study URL>, "timeout_s": 120, "hooks": <path of an ES module>|null,
 *   "bots": [{"participant_id": <id>|null, "cookie": <"name=value">|null, "keys": [...]|null,
 *             "answers": {...}, "hidden": [[after_s, for_s], ...], "disconnect": [[after_s, for_s], ...],
 *             "stop_after_acks": <n>|null, "arrive_after_s": 0}, ...]}
 * `disconnect` spans (seconds from joining) close the bot's socket and open it again afterwards with the
 * same cookie, as a reloaded tab or a dropped network would.
 * A bot without a participant id gets a new one from the study's redirect, as a browser does.
 * `hooks` may export `act(message, buffers, n)` returning a replacement `{message, buffers}` for the
 * n-th act a bot would send (tests use it to send what a page never would).
 * Prints one JSON line per bot when it is done, in the order they finish: `Bot.stats` plus `bot` (its index
 * in `bots`), `cookie`, `dropped_messages` (malformed messages dropped, as the page drops them) and
 * `reconnects`.
 * `timeout_s` counts from the start of this command, arrivals included.
 * Python's `mug.server.simulate` runs this command and reads its output.
 */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import WebSocket from "ws";
import { Bot } from "../src/client/bot.js";
import { checkServerMessage, decodeEnvelope, encodeEnvelope } from "../src/client/messages.js";
import { configureNodeOrt } from "../src/runtime/node.js";

const { values } = parseArgs({ options: { wasm: { type: "string" } } });
const spec = JSON.parse(readFileSync(0, "utf8"));
const base = new URL(spec.url);
const hooks = spec.hooks ? await import(pathToFileURL(resolve(spec.hooks)).href) : {};
let ortReady = null;
const models = new Map();

/** A model or asset of the study, fetched once for all bots. */
function fetchAsset(path) {
  if (!models.has(path)) {
    ortReady ??= configureNodeOrt(values.wasm);
    models.set(
      path,
      (async () => {
        await ortReady;
        const response = await fetch(new URL(path, base));
        if (!response.ok) throw new Error(`GET ${path}: ${response.status} ${response.statusText}`);
        return new Uint8Array(await response.arrayBuffer());
      })(),
    );
  }
  return models.get(path);
}

/** GET the study page as a browser would; returns the participant id and the `name=value` cookie. */
async function join(participantId, cookie) {
  const page = new URL(base);
  if (participantId) page.searchParams.set("participant", participantId);
  const headers = cookie ? { Cookie: cookie } : {};
  let response = await fetch(page, { redirect: "manual", headers });
  if (response.status >= 300 && response.status < 400 && !participantId) {
    const next = new URL(response.headers.get("location"), page);
    participantId = next.searchParams.get("participant");
    response = await fetch(next, { redirect: "manual", headers });
  }
  if (response.status !== 200) throw new Error(`GET ${page}: ${response.status} ${response.statusText}`);
  await response.arrayBuffer();
  const set = response.headers.getSetCookie().find((c) => c.startsWith(`mug_${participantId}=`));
  return { participantId, cookie: set ? set.split(";", 1)[0] : cookie };
}

const sleep = (ms) => new Promise((done) => setTimeout(done, ms));

async function runBot(options, deadline) {
  await sleep(1000 * (options.arrive_after_s ?? 0));
  const stats = { participant_id: options.participant_id ?? null };
  let joined;
  try {
    joined = await join(options.participant_id, options.cookie);
  } catch (error) {
    return { ...stats, cookie: options.cookie ?? null, ended: "join_failed", errors: [{ type: "error", code: "join_failed", message: error.message }] };
  }
  return new Promise((finish) => {
    const socketUrl = new URL(`ws?participant=${encodeURIComponent(joined.participantId)}`, new URL(".", base));
    socketUrl.protocol = base.protocol === "https:" ? "wss:" : "ws:";
    const timers = [];
    let socket = null;
    let away = false; // inside a `disconnect` span: the socket was closed on purpose and comes back
    let dropped = 0;
    let reconnects = 0;
    const bot = new Bot(
      {
        participantId: joined.participantId,
        keys: options.keys ?? null,
        answers: options.answers ?? {},
        hidden: options.hidden ?? [],
        stopAfterAcks: options.stop_after_acks ?? null,
        actHook: hooks.act ?? null,
      },
      {
        send: (message, buffers = []) => socket?.readyState === WebSocket.OPEN && socket.send(encodeEnvelope(message, buffers)),
        fetchAsset,
        stop: () => (away ? done("closed") : socket?.close()), // away: its socket is closed already
        setTimer: (fn, ms) => timers.push(setTimeout(fn, ms)),
      },
    );
    const done = (reason) => {
      clearTimeout(giveUp);
      timers.forEach(clearTimeout);
      if (!bot.done) bot.finish(reason);
      finish({ ...bot.stats, cookie: joined.cookie ?? null, dropped_messages: dropped, reconnects });
    };
    const open = () => {
      // no permessage-deflate: ws inflates on a small thread pool, which holds frames back under load
      const current = new WebSocket(socketUrl, { headers: joined.cookie ? { Cookie: joined.cookie } : {}, perMessageDeflate: false });
      socket = current;
      current.binaryType = "arraybuffer";
      current.on("open", () => bot.start());
      current.on("message", (data, isBinary) => {
        let message;
        let buffers = [];
        try {
          if (isBinary) ({ message, buffers } = decodeEnvelope(new Uint8Array(data)));
          else message = JSON.parse(data.toString());
          checkServerMessage(message);
        } catch {
          dropped += 1; // as the page does: a malformed message is dropped, the session goes on
          return;
        }
        bot.handle(message, buffers);
      });
      current.on("error", (error) => bot.stats.errors.push({ type: "error", code: "socket", message: error.message }));
      current.on("close", () => (away && !bot.done ? undefined : done("closed")));
    };
    const giveUp = setTimeout(() => bot.finish("timeout"), Math.max(0, deadline - Date.now()));
    for (const [after, span] of options.disconnect ?? []) {
      timers.push(
        setTimeout(() => {
          away = true;
          socket?.close(); // the tab closed, or the network dropped
        }, after * 1000),
        setTimeout(() => {
          away = false;
          reconnects += 1;
          if (!bot.done) open(); // the same browser (cookie) comes back
        }, (after + span) * 1000),
      );
    }
    open();
  });
}

const deadline = Date.now() + 1000 * (spec.timeout_s ?? 120);
await Promise.all(
  spec.bots.map(async (options, index) => {
    const stats = await runBot(options, deadline);
    process.stdout.write(JSON.stringify({ bot: index, ...stats }) + "\n");
  }),
);
process.stdout.write("", () => process.exit(0)); // exit once every line is out (a pipe may still hold some)
