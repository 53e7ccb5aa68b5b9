// A sweep waiting for confirmation (nothing starts before Start sweep), then its progress.

import { actionBar, button } from "../dom.js";
import { stageName } from "../format.js";
import { scope } from "../scope.js";

/** @type {import("../types.js").Panel} */
export function mountSweep(ctx, box) {
  const s = scope(ctx.model);
  const { get, send } = ctx;
  const go = button("Start sweep", { class: "fpw-primary" });
  const stop = button("Discard sweep");
  const { section, text } = actionBar(box, "fpw-sweep", "Sweep", go, stop);
  /** @param {string} action */
  const tell = (action) => send({ type: "sweep", action, sweep_id: get("_sweep_info")?.sweep_id });
  s.on(go, "click", () => tell("confirm"));
  s.on(stop, "click", () => tell("cancel"));
  function sync() {
    const sw = get("_sweep_info") || {};
    section.hidden = !sw.sweep_id;
    if (!sw.sweep_id) return;
    section.dataset.state = sw.state;
    const progress = Object.entries(sw.progress || {})
      .map(([stage, n]) => `${n} ${stageName(stage).toLowerCase()}`)
      .join(", ");
    const where = sw.state === "pending"
      ? " Nothing starts until you press Start sweep."
      : ` — ${sw.state}: ${progress}`;
    text.textContent = `Sweep: ${sw.description || ""}${where}${sw.error ? ` ${sw.error}` : ""}`;
    go.hidden = sw.state !== "pending";
    stop.hidden = sw.state === "done" || sw.state === "cancelled";
    stop.textContent = sw.state === "pending" ? "Discard sweep" : "Cancel sweep";
  }
  s.follow("_sweep_info", sync);
  return s.close;
}
