/**
 * The admin page's live view of the matches: asks `/admin/live` every 2 s and redraws, per
 * multi-human scene, the waitroom (waiting now, the longest wait), the running matches (members,
 * episode, step) and the finished ones (when and why), without reloading the page.
 * @module client/admin-live
 */
import { formatSeconds } from "./waitroom.js";

/** Milliseconds between two requests. */
const REFRESH_MS = 2000;

/**
 * A match's seats as text: `agent: participant` pairs.
 * @param {Object<string, string>} members
 * @returns {string}
 */
export function membersText(members) {
  return Object.entries(members ?? {})
    .map(([agent, pid]) => `${agent}: ${pid}`)
    .join(", ");
}

/**
 * A server time (Unix seconds) as the admin's local `HH:MM:SS` (`-` when missing).
 * @param {number|null|undefined} seconds
 * @returns {string}
 */
export function clockTime(seconds) {
  if (typeof seconds !== "number" || !Number.isFinite(seconds)) return "-";
  const d = new Date(seconds * 1000);
  return [d.getHours(), d.getMinutes(), d.getSeconds()].map((n) => String(n).padStart(2, "0")).join(":");
}

/**
 * The tables of the live view for one `/admin/live` answer: per scene a summary line and rows
 * (cells as text) of running and finished matches.
 * @param {Object<string, {waiting: number, longest_wait_s: number, running: Object[], finished: Object[]}>} status
 * @returns {{scene: string, summary: string, running: string[][], finished: string[][]}[]}
 */
export function liveTables(status) {
  return Object.entries(status).map(([scene, s]) => ({
    scene,
    summary: `${s.waiting} waiting · longest wait ${formatSeconds(s.longest_wait_s)} · ${s.running.length} running · ${s.finished.length} finished`,
    running: s.running.map((m) => [String(m.match_id), membersText(m.members), String(m.episode), String(m.step), clockTime(m.started)]),
    finished: s.finished.map((m) => [String(m.match_id), membersText(m.members), clockTime(m.ended), String(m.reason ?? "-")]),
  }));
}

const RUNNING = ["match", "members", "episode", "step", "started"];
const FINISHED = ["match", "members", "ended", "reason"];

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  return node;
}

function table(className, head, rows) {
  const t = el("table", undefined, className);
  const tr = el("tr");
  tr.append(...head.map((h) => el("th", h)));
  t.append(el("thead"), el("tbody"));
  t.tHead.append(tr);
  for (const row of rows) {
    const line = el("tr");
    line.append(...row.map((cell) => el("td", cell)));
    t.tBodies[0].append(line);
  }
  return t;
}

/** Draw one answer into `body` (participant ids are text, never HTML). */
function draw(body, status) {
  const scenes = liveTables(status);
  if (!scenes.length) {
    body.replaceChildren(el("p", "No scene of this study is played by several participants."));
    return;
  }
  body.replaceChildren(
    ...scenes.map((s) => {
      const section = el("section", undefined, "mug-live-scene");
      section.dataset.scene = s.scene;
      section.append(el("h2", s.scene), el("p", s.summary, "mug-live-summary"));
      section.append(el("h3", "Running"), s.running.length ? table("mug-live-running", RUNNING, s.running) : el("p", "none"));
      section.append(el("h3", "Finished"), s.finished.length ? table("mug-live-finished", FINISHED, s.finished) : el("p", "none"));
      return section;
    }),
  );
}

/**
 * Keep `box` showing the live state: one request, a redraw, the next request `REFRESH_MS` later.
 * A failed request shows why in the status line and the view tries again.
 * @param {HTMLElement} box the live view's card
 * @param {{url?: string}} [options] `url`: the live route, relative to the admin page
 */
export function startAdminLive(box, { url = "admin/live" } = {}) {
  const body = el("div", undefined, "mug-live-body");
  const line = el("p", "Loading…", "mug-live-status");
  box.replaceChildren(box.querySelector("h1") ?? el("h1", "Matches, live"), line, body);
  const refresh = async () => {
    try {
      const response = await fetch(url, { cache: "no-store", credentials: "same-origin" });
      if (!response.ok) throw new Error(`${response.status} ${response.statusText}`);
      draw(body, await response.json());
      line.textContent = `updated ${clockTime(Date.now() / 1000)}`;
    } catch (error) {
      line.textContent = `live view not updated: ${error?.message ?? error}`;
    }
    setTimeout(refresh, REFRESH_MS);
  };
  refresh();
}
