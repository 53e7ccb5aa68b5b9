// What the panels of one view share.

import { mediaStore } from "./media.js";

/**
 * The context of one view: model accessors, the view's id and root, its media store and
 * the run cards paged in beyond the history trait. Close it with ctx.media.close().
 * @param {import("./types.js").Model} model
 * @param {HTMLElement} root
 * @returns {import("./types.js").Ctx}
 */
export function context(model, root) {
  /** @type {object[]} */
  const older = [];
  const id = "fpw" + Math.random().toString(36).slice(2, 8);
  /** @param {object} msg @param {ArrayBuffer[]} [buffers] */
  const send = (msg, buffers) => model.send(msg, undefined, buffers);
  return {
    model,
    root,
    older,
    id,
    get: (k) => model.get(k),
    save(k, v) {
      model.set(k, v);
      model.save_changes();
    },
    send,
    runs() {
      const hist = model.get("_history") || [];
      const ids = new Set(hist.map((/** @type {any} */ c) => c.id));
      return [...hist, ...older.filter((/** @type {any} */ c) => !ids.has(c.id))];
    },
    media: mediaStore({ model, root, id, send }),
  };
}
