// How the widget words and formats what the kernel tells it.

/** What each run stage is called on screen. */
export const STAGES = {
  idle: "Ready",
  queued: "Queued",
  waiting: "Waiting",
  submitting: "Submitting",
  pending: "Pending: waiting in the queue",
  processing: "Processing",
  downloading: "Downloading the video",
  completed: "Done",
  failed: "Failed",
  cancelled: "Cancelled",
  submission_unknown: "Submission unknown",
  timed_out: "Timed out",
  error: "Error",
};

/**
 * A stage's name on screen (an unknown stage shows as it is).
 * @param {string | undefined} stage
 */
export const stageName = (stage) => STAGES[/** @type {keyof STAGES} */ (stage)] || stage || "";

/** @param {unknown} x dollars */
export const money = (x) => "$" + (Number(x) || 0).toFixed(2);

/**
 * m:ss of a number of seconds.
 * @param {unknown} seconds
 */
export function clock(seconds) {
  const s = Math.max(0, Math.floor(Number(seconds) || 0));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

/**
 * "1 run" / "3 runs".
 * @param {number} n
 * @param {string} word
 */
export const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

/**
 * " · $0.30" for `secs` at the model's rate; without a rate, no figure rather than a guess.
 * @param {(name: string) => any} get
 * @param {number} secs
 */
export function price(get, secs) {
  const rate = get("_cost_per_second");
  return Number.isFinite(rate) ? ` · ${money(secs * rate)}` : "";
}

/**
 * " (simulated, nothing charged)" on the offline simulator, else "".
 * @param {(name: string) => any} get
 */
export const simulated = (get) =>
  get("backend") === "simulator" ? " (simulated, nothing charged)" : "";

/**
 * A prompt cut to `most` characters for a label.
 * @param {string} text
 * @param {number} most
 */
export const excerpt = (text, most) =>
  text.length > most ? text.slice(0, most - 1) + "\u2026" : text;
