/**
 * What the participant sees while Python loads for a browser-side scene: a
 * progress bar with the stage and the megabytes fetched.
 * @module pyworker/progress-view
 */

/** What each loading stage is called on the page. */
export const STAGE_LABELS = {
  runtime: "Downloading the game engine",
  python: "Starting the game engine",
  bundles: "Downloading the game",
  env: "Preparing the game",
  ready: "Starting the game",
};

const mb = (n) => (n / 1e6).toFixed(1);

/**
 * The text under the bar for one progress report.
 * @param {{stage: string, loaded: number, total: number}} progress
 * @returns {string}
 */
export function progressText({ stage, loaded, total }) {
  const label = STAGE_LABELS[stage] ?? "Loading";
  return total > 0 ? `${label}… ${mb(loaded)} of ${mb(total)} MB` : `${label}…`;
}

/** A progress bar appended to a scene's card. */
export class ProgressView {
  /** @param {HTMLElement} box where the bar goes (the scene's card) */
  constructor(box) {
    this.bar = Object.assign(document.createElement("progress"), { className: "mug-progress", max: 1, value: 0 });
    this.bar.style.width = "100%";
    this.text = Object.assign(document.createElement("p"), { className: "mug-loading", textContent: "Loading the game…" });
    this.text.setAttribute("role", "status");
    box.append(this.bar, this.text);
  }

  /** @param {{stage: string, loaded: number, total: number}} progress */
  show(progress) {
    this.bar.value = progress.total > 0 ? Math.min(1, progress.loaded / progress.total) : 0;
    this.bar.dataset.stage = progress.stage;
    this.text.textContent = progressText(progress);
  }
}
