/**
 * Waiting in a match: the waitroom page and the overlay over a paused match. Both show the
 * server's message and count down locally from the server's `time_left_s` between its updates
 * (display only: the server owns every timeout and decides what happens when it runs out).
 * @module client/waitroom
 */
import { card } from "./pages.js";

/** Milliseconds between redraws of a countdown. */
const TICK_MS = 250;

/**
 * Seconds as `m:ss`, rounded up (a countdown shows 0:00 only once the time is up), never negative.
 * @param {number} seconds
 * @returns {string}
 */
export function formatSeconds(seconds) {
  const whole = Math.max(0, Math.ceil(Number.isFinite(seconds) ? seconds : 0));
  return `${Math.floor(whole / 60)}:${String(whole % 60).padStart(2, "0")}`;
}

/** A deadline the server gave as seconds left, kept on the page's own clock (milliseconds). */
export class Countdown {
  /**
   * @param {number} timeLeftS seconds left when the server's message arrived
   * @param {number} now the page's clock then, in ms (`performance.now()`)
   */
  constructor(timeLeftS, now) {
    this.end = now + 1000 * timeLeftS;
  }

  /**
   * Seconds left at `now` (never below 0).
   * @param {number} now ms on the same clock as the constructor's
   * @returns {number}
   */
  left(now) {
    return Math.max(0, (this.end - now) / 1000);
  }
}

/**
 * What the waitroom page says for a `waitroom` message: the researcher's message, the count
 * (`null` when the scene hides it: `waiting` or `needed` is null) and the time left.
 * @param {{waiting: number|null, needed: number|null, message: string}} message
 * @param {number} secondsLeft
 * @returns {{message: string, count: string|null, time: string}}
 */
export function waitroomText(message, secondsLeft) {
  const { waiting, needed } = message;
  const count = waiting === null || needed === null ? null : `${Math.min(waiting, needed)} of ${needed} participants waiting`;
  return { message: message.message, count, time: `Time left: ${formatSeconds(secondsLeft)}` };
}

/**
 * What the overlay over a paused match says.
 * @param {{message: string}} message a `paused` message
 * @param {number} secondsLeft
 * @returns {{message: string, time: string}}
 */
export function pausedText(message, secondsLeft) {
  return { message: message.message, time: `Waiting at most ${formatSeconds(secondsLeft)}` };
}

const text = (tag, className) => Object.assign(document.createElement(tag), { className });

/** Redraw `draw(secondsLeft)` until stopped; `restart(timeLeftS)` takes a new deadline from the server. */
class Ticker {
  constructor(draw) {
    this.draw = draw;
    this.timer = setInterval(() => this.redraw(), TICK_MS);
  }

  restart(timeLeftS) {
    this.countdown = new Countdown(timeLeftS, performance.now());
    this.redraw();
  }

  redraw() {
    if (this.countdown) this.draw(this.countdown.left(performance.now()));
  }

  stop() {
    clearInterval(this.timer);
  }
}

/** The waitroom page: the message, how many are waiting of how many needed, the time left. */
export class WaitroomView {
  /**
   * @param {HTMLElement} root
   * @param {Object} message the first `waitroom` message
   */
  constructor(root, message) {
    this.sceneId = message.scene_id;
    const box = card(root, {});
    box.classList.add("mug-waitroom");
    this.message = text("p", "mug-waitroom-message");
    this.count = text("p", "mug-waitroom-count");
    this.time = text("p", "mug-waitroom-time");
    box.append(this.message, this.count, this.time);
    this.ticker = new Ticker((left) => this.draw(left));
    this.update(message);
  }

  /**
   * Take a newer `waitroom` message (counts and time left from the server).
   * @param {Object} message
   */
  update(message) {
    this.last = message;
    this.ticker.restart(message.time_left_s);
  }

  draw(secondsLeft) {
    const lines = waitroomText(this.last, secondsLeft);
    this.message.textContent = lines.message;
    this.count.hidden = lines.count === null;
    this.count.textContent = lines.count ?? "";
    this.time.textContent = lines.time;
  }

  /** Stop the clock (the page moves on). */
  close() {
    this.ticker.stop();
  }
}

/**
 * The overlay over a paused match: its message and countdown. While it shows, key presses do not
 * reach the game (a capturing listener on the window stops them), so no keys are sent; key releases
 * still do, so nothing stays held that was let go during the pause.
 */
export class PausedOverlay {
  /**
   * @param {HTMLElement} root the page root (the overlay covers it)
   * @param {Object} message the `paused` message
   */
  constructor(root, message) {
    this.sceneId = message.scene_id;
    this.element = text("div", "mug-paused");
    this.element.setAttribute("role", "alertdialog");
    this.message = text("p", "mug-paused-message");
    this.time = text("p", "mug-paused-time");
    this.element.append(this.message, this.time);
    root.append(this.element);
    this.swallow = (event) => event.stopPropagation();
    window.addEventListener("keydown", this.swallow, true);
    this.ticker = new Ticker((left) => {
      const lines = pausedText(this.last, left);
      this.message.textContent = lines.message;
      this.time.textContent = lines.time;
    });
    this.update(message);
  }

  /**
   * Take a newer `paused` message for the same pause.
   * @param {Object} message
   */
  update(message) {
    this.last = message;
    this.ticker.restart(message.time_left_s);
  }

  /** Remove the overlay and let keys through again. */
  close() {
    this.ticker.stop();
    window.removeEventListener("keydown", this.swallow, true);
    this.element.remove();
  }
}
