// What an export button says beside itself: "Exporting…" once pressed, then the file the
// kernel saved (its name, never its folder) as it downloads, or why it failed.

import { h } from "./dom.js";

/**
 * A note for `btn`, which exports `what` ("comparison", "card" or "gallery"); place it
 * beside the button.
 * @param {import("./scope.js").Scope} s
 * @param {HTMLElement} btn
 * @param {string} what
 */
export function exportNote(s, btn, what) {
  const note = h("span.fpw-export-note", { "aria-live": "polite" });
  /** @param {string} text @param {boolean} [failed] */
  const say = (text, failed = false) => {
    note.textContent = text;
    note.classList.toggle("fpw-error", failed);
  };
  s.on(btn, "click", () => say("Exporting…"));
  s.messages({
    exported(msg) {
      if (msg.what === what) say(msg.error || `Saved ${msg.name} · downloading`, !!msg.error);
    },
  });
  return note;
}
