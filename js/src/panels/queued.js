// Runs a stopped kernel left stored but never sent: nothing sends them until the person
// says so.

import { actionBar, button } from "../dom.js";
import { scope } from "../scope.js";

/** @type {import("../types.js").Panel} */
export function mountQueued(ctx, box) {
  const s = scope(ctx.model);
  const { get, send } = ctx;
  const go = button("Send", { class: "fpw-primary" });
  const drop = button("Discard");
  const { section, text } = actionBar(box, "fpw-queued", "Queued runs", go, drop);
  /** One answer per question: both buttons wait for the kernel's next word. */
  const tell = (/** @type {string} */ action) => {
    go.disabled = drop.disabled = true;
    send({ type: "queued", action });
  };
  s.on(go, "click", () => tell("send"));
  s.on(drop, "click", () => tell("discard"));
  function sync() {
    const q = get("_queued") || {};
    section.hidden = !q.count;
    go.disabled = drop.disabled = false;
    text.textContent = [q.text, q.refused].filter(Boolean).join(" ");
  }
  s.follow("_queued", sync);
  return s.close;
}
