// The live status of the current run. The elapsed time ticks here, in the browser: the
// kernel sends changes, not a clock.

import { h } from "../dom.js";
import { clock, stageName } from "../format.js";
import { scope } from "../scope.js";

/** @type {import("../types.js").Panel} */
export function mountStatus(ctx, box) {
  const s = scope(ctx.model);
  const { get } = ctx;
  const runEl = h("span.fpw-run-no");
  const stageEl = h("span.fpw-stage");
  const elapsedEl = h("span.fpw-elapsed", { "aria-hidden": "true" }); // ticks: not announced
  const bar = /** @type {HTMLProgressElement} */ (
    h("progress.fpw-progress", { max: 100, "aria-label": "Progress" })
  );
  const pctEl = h("span.fpw-percent", { "aria-hidden": "true" });
  const etaEl = h("p.fpw-eta");
  const logsEl = h("pre.fpw-logs");
  const errEl = h("p.fpw-error");
  const hintEl = h("p.fpw-hint");
  const statusBox = h("div.fpw-status", { role: "status", "aria-live": "polite" },
    h("div.fpw-status-line", {}, runEl, stageEl, elapsedEl),
    h("div.fpw-bar-line", {}, bar, pctEl),
    etaEl, logsEl, errEl, hintEl);
  box.append(statusBox);
  /** @type {any} */
  let ticker = 0;
  let t0 = 0;
  s.defer(() => clearInterval(ticker));

  function tick() {
    const st = get("status") || {};
    const secs = (performance.now() - t0) / 1000;
    elapsedEl.textContent = st.elapsed == null ? "" : clock(st.running ? secs : st.elapsed);
    if (st.running && st.percent == null && st.eta > 0) {
      const est = Math.min(95, (100 * secs) / st.eta);
      bar.value = est;
      pctEl.textContent = `≈${Math.round(est)}% (estimate)`;
    }
  }
  function sync() {
    const st = get("status") || {};
    const stage = st.stage || "idle";
    statusBox.dataset.stage = stage;
    statusBox.dataset.runId = st.run_id || "";
    runEl.textContent = st.number ? `Run #${st.number}` : "";
    stageEl.textContent = stageName(stage);
    t0 = performance.now() - (st.elapsed || 0) * 1000;
    if (st.percent != null) {
      bar.value = st.percent;
      pctEl.textContent = `${Math.round(st.percent)}%`;
    } else if (!st.running) {
      bar.removeAttribute("value");
      pctEl.textContent = "";
    }
    bar.hidden = stage === "idle";
    etaEl.textContent = st.running && st.eta_text ? `Expected time: ${st.eta_text}` : "";
    logsEl.textContent = (st.logs || []).join("\n");
    logsEl.hidden = !(st.logs || []).length;
    errEl.textContent = st.error || "";
    hintEl.textContent = st.hint || "";
    clearInterval(ticker);
    if (st.running) ticker = setInterval(tick, 500);
    tick();
  }
  s.follow("status", sync);
  return s.close;
}
