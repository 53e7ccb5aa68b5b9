// The widget in a class (the classroom service on a JupyterHub): the class budget beside
// the header's balance, and "Share with class" on each finished run's card. Drawn from the
// `_class` trait, which is {} outside a class: then nothing of this shows.

import { button, h } from "../dom.js";
import { money } from "../format.js";
import { scope } from "../scope.js";

/**
 * "Class budget: $2.10 of $3.00 left", after `after` in the header; returns its cleanup.
 * @param {import("../types.js").Ctx} ctx @param {HTMLElement} after
 */
export function mountClassBudget(ctx, after) {
  const s = scope(ctx.model);
  const el = h("span.fpw-class");
  after.after(el);
  s.follow("_class", () => {
    const c = ctx.get("_class") || {};
    el.textContent = c.total != null
      ? `Class budget: ${money(c.left)} of ${money(c.total)} left${c.paused ? " (class paused)" : ""}`
      : "";
  });
  return s.close;
}

/**
 * "Share with class" in the links of each finished card in `cards` (History's list): the
 * kernel shares the run's task at the class service; the button shows when it is shared.
 * @param {import("../types.js").Ctx} ctx @param {HTMLElement} cards
 */
export function mountClassShare(ctx, cards) {
  const s = scope(ctx.model);
  // After History has drawn its cards (it hears the same changes).
  s.follow("_class _history", () => queueMicrotask(() => {
    const c = ctx.get("_class") || {};
    const runs = new Map(ctx.runs().map((/** @type {any} */ r) => [r.id, r]));
    for (const card of /** @type {any} */ (cards.children)) {
      const r = runs.get(card.dataset.runId);
      let b = card.querySelector(".fpw-class-share");
      if (!c.active || !r?.has_video || !r.task_id) {
        b?.remove();
        continue;
      }
      if (!b) {
        const made = (b = button("", { class: "fpw-class-share" }));
        s.on(made, "click", () => {
          made.disabled = true;
          ctx.send({ type: "class_share", run_id: r.id, shared: made.getAttribute("aria-pressed") !== "true" });
        });
        card.querySelector(".fpw-card-links").append(made);
      }
      const on = (c.shared || []).includes(r.task_id);
      b.textContent = on ? "Shared with class" : "Share with class";
      b.setAttribute("aria-pressed", String(on));
      b.disabled = false;
    }
  }));
  return s.close;
}
