// The title line: which backend answers (simulator or PiAPI), the balance, this session's
// and today's spend (of the day's budget), the kernel's notice, and the line a view shows
// when no kernel answers it.

import { h } from "../dom.js";
import { money, simulated } from "../format.js";
import { scope } from "../scope.js";
import { mountClassBudget } from "./classroom.js";

export const QUIET = "No answer from the kernel: run this cell to use the widget again.";

/** How long a view waits for the kernel's answer to its "hello". */
const HELLO_WAIT_MS = 5000;

/** @type {import("../types.js").Panel} */
export function mountHeader(ctx, box) {
  const s = scope(ctx.model);
  const { get } = ctx;
  const badge = h("span.fpw-badge");
  const balance = h("span.fpw-balance");
  const spend = h("span.fpw-session");
  const notice = h("p.fpw-notice", { "aria-live": "polite" });
  box.append(
    h("div.fpw-head", {}, h("span.fpw-title", { text: "FramePack" }), badge, balance, spend),
    notice,
  );
  // No answer to "hello": a busy kernel, or saved state with no kernel (the snapshot shows).
  let late = false;
  function sync() {
    const sim = get("backend") === "simulator";
    badge.textContent = get("_backend_label") || (sim ? "Offline simulator" : "PiAPI");
    badge.className = `fpw-badge ${sim ? "fpw-badge-sim" : "fpw-badge-api"}`;
    balance.textContent = get("balance") ? `Balance: ${get("balance")}` : "";
    ctx.root.dataset.backend = get("backend");
    ctx.root.classList.toggle("fpw-quiet", late);
    notice.textContent = get("_notice") || (late ? QUIET : "");
  }
  const timer = setTimeout(() => {
    late = true;
    sync();
  }, HELLO_WAIT_MS);
  const stop = () => {
    clearTimeout(timer);
    ctx.model.off("msg:custom", heard);
  };
  const heard = () => {
    stop();
    late = false;
    sync();
  };
  ctx.model.on("msg:custom", heard);
  s.defer(mountClassBudget(ctx, balance)); // in a class: "Class budget: $2.10 of $3.00 left"
  s.defer(stop);
  s.follow("backend _backend_label balance _notice", sync);
  s.follow("session_cost _spend backend", () => {
    const { today, budget } = get("_spend") || {};
    spend.textContent = `Session ${money(get("session_cost"))} · Today ${money(today)}`
      + (budget != null ? ` of ${money(budget)}` : "") + simulated(get);
  });
  return s.close;
}
