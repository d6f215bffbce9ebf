/**
 * What the server tells a participant about their match: `notice` banners (above whatever the page
 * shows next; `hidden_warning` as a banner that goes by itself) and the seat they play.
 * @module client/notices
 */

/** Milliseconds a transient banner stays. */
const TRANSIENT_MS = 8000;

/**
 * Whether a notice is a passing warning (a banner that goes by itself) rather than news that
 * stays above the next page (a partner lost, an exclusion, a timed-out waitroom, an interruption).
 * @param {string} code the notice's code
 * @returns {boolean}
 */
export function isTransient(code) {
  return code === "hidden_warning";
}

/**
 * "You are player k of n": k counts the scene's human agents in the env's order.
 * @param {{seat: string, seats: number}} match the scene message's `match`
 * @param {Object} meta the scene's metadata (`agents`, `policies` by agent with their `kind`)
 * @returns {string}
 */
export function seatLabel(match, meta) {
  const humans = (meta.agents ?? []).map(String).filter((a) => meta.policies?.[a]?.kind === "human");
  const k = humans.indexOf(String(match.seat));
  return k < 0 ? `You are one of ${match.seats} players` : `You are player ${k + 1} of ${match.seats}`;
}

/**
 * Show the seat label, subtly, at the top of a game's card.
 * @param {HTMLElement} box the game's card
 * @param {{seat: string, seats: number}} match
 * @param {Object} meta
 */
export function showSeat(box, match, meta) {
  const label = Object.assign(document.createElement("p"), { className: "mug-seat", textContent: seatLabel(match, meta) });
  label.dataset.seat = String(match.seat);
  box.prepend(label);
}

/** The notices of one page: each shown at once; a lasting one is shown again above the next page. */
export class NoticeBoard {
  /** @param {HTMLElement} root the page root */
  constructor(root) {
    this.root = root;
    this.lasting = [];
  }

  /**
   * Show a `notice` message.
   * @param {{code: string, message: string}} notice
   */
  post(notice) {
    const banner = this.place(notice);
    if (isTransient(notice.code)) setTimeout(() => banner.remove(), TRANSIENT_MS);
    else this.lasting.push(notice);
  }

  /** A new page replaced the root's content: put the lasting notices above it (once: they go with the next page). */
  pageShown() {
    for (const notice of this.lasting.splice(0)) this.place(notice);
  }

  place(notice) {
    const banner = Object.assign(document.createElement("div"), { className: `mug-notice mug-notice-${notice.code}`, textContent: notice.message });
    banner.setAttribute("role", "status");
    banner.dataset.code = notice.code;
    this.root.prepend(banner);
    return banner;
  }
}
