// Spend in the header, the History head's toggle (this notebook's runs or all of them), and
// the export buttons saying beside themselves how their export went.
import { test, afterEach } from "node:test";
import assert from "node:assert/strict";
import { setupDom, FakeModel, byName } from "./fake.js";

setupDom();
const widget = (await import("../src/widget.js")).default;

let el, model, cleanup;
function mount(state) {
  model = new FakeModel(state);
  el = document.createElement("div");
  document.body.append(el);
  cleanup = widget.render({ model, el });
  return el;
}
afterEach(() => { cleanup?.(); el?.remove(); cleanup = null; });

const card = (id, extra = {}) => ({ id, stage: "completed", prompt: `prompt ${id}`, negative_prompt: "", duration: 10,
  cost: 0.3, wall: 14.2, backend: "piapi", has_video: true, created: 1, ...extra });
const button = (root, name) => {
  const found = byName(root, name);
  assert.equal(found.length, 1, `one control named "${name}"`);
  return found[0];
};

test("the header shows this session's and today's spend, of the day's budget when there is one", () => {
  const root = mount({ backend: "piapi", session_cost: 0.6, _spend: { today: 1.2, budget: 5 } });
  const spend = root.querySelector(".fpw-head .fpw-session");
  assert.equal(spend.textContent, "Session $0.60 · Today $1.20 of $5.00");
  model.update({ _spend: { today: 1.5, budget: null }, session_cost: 0.9 });
  assert.equal(spend.textContent, "Session $0.90 · Today $1.50", "without a budget, just the spend");
  model.update({ backend: "simulator" });
  assert.match(spend.textContent, /Today \$1\.50 \(simulated, nothing charged\)$/);
  assert.equal(root.querySelectorAll(".fpw-session").length, 1, "said once, in the header");
});

test("History shows this notebook's runs, with All runs one click away and both counts", () => {
  const root = mount({ _history: [], _history_total: 0, _history_scope: { notebook: "teaching.ipynb", mine: 0, all: 6 } });
  const section = root.querySelector(".fpw-history");
  assert.equal(section.hidden, false, "an empty notebook history still offers the store's runs");
  assert.equal(section.querySelector(".fpw-h").textContent, "History (0 runs)");
  const mine = button(root, "This notebook (0)"), all = button(root, "All runs (6)");
  assert.equal(mine.getAttribute("aria-pressed"), "true");
  assert.equal(all.getAttribute("aria-pressed"), "false");
  model.custom({ type: "history_page", total: 1, runs: [card("older")] });
  assert.equal(section.querySelectorAll(".fpw-card").length, 1);
  all.click();
  assert.equal(model.get("_history_all"), true, "the toggle is a trait the kernel follows");
  assert.equal(section.querySelectorAll(".fpw-card").length, 0, "pages of the other scope are dropped");
  model.update({ _history: [card("q1", { from: "quickstart.ipynb" })], _history_total: 6 });
  assert.equal(section.querySelector(".fpw-h").textContent, "History (6 runs)");
  assert.equal(all.getAttribute("aria-pressed"), "true");
  assert.equal(mine.getAttribute("aria-pressed"), "false");
  assert.match(section.querySelector(".fpw-card-meta").textContent, /from quickstart\.ipynb$/);
  const saves = model.saves;
  all.click();
  assert.equal(model.saves, saves, "pressing the pressed one changes nothing");
  mine.click();
  assert.equal(model.get("_history_all"), false);
});

test("without a known notebook there is no toggle, and no runs hide the history", () => {
  const root = mount({ _history: [card("a")], _history_total: 1, _history_scope: {} });
  assert.equal(root.querySelector(".fpw-scope").hidden, true);
  model.update({ _history: [], _history_total: 0 });
  assert.equal(root.querySelector(".fpw-history").hidden, true);
});

test("Share, Export MP4 and Run card say beside themselves how the export went, without a folder", () => {
  const root = mount({
    _history: [card("a"), card("b")], _history_total: 2,
    status: { run_id: "a", stage: "completed", has_video: true, running: false },
    _comparison: { run_ids: ["a", "b"], differs: {}, items: [] },
  });
  const share = button(root, "Share");
  const note = share.nextElementSibling;
  assert.ok(note.classList.contains("fpw-export-note"));
  assert.equal(note.textContent, "");
  share.click();
  assert.equal(note.textContent, "Exporting…");
  assert.equal(model.messages("share").length, 1);
  model.custom({ type: "exported", what: "comparison", name: "comparison-1.mp4" });
  assert.equal(note.textContent, "Exporting…", "another button's export");
  model.custom({ type: "exported", what: "gallery", name: "gallery-20261207-1830.zip" });
  assert.equal(note.textContent, "Saved gallery-20261207-1830.zip · downloading");
  share.click();
  model.custom({ type: "exported", what: "gallery", error: "Export failed: no run has a video yet" });
  assert.equal(note.textContent, "Export failed: no run has a video yet");
  assert.ok(note.classList.contains("fpw-error"));

  const exportBtn = button(root, "Export MP4");
  exportBtn.click();
  assert.equal(exportBtn.nextElementSibling.textContent, "Exporting…");
  model.custom({ type: "exported", what: "comparison", name: "comparison-1.mp4" });
  assert.equal(exportBtn.nextElementSibling.textContent, "Saved comparison-1.mp4 · downloading");
  const cardBtn = button(root, "Run card");
  cardBtn.click();
  assert.equal(model.messages("export").at(-1).content.what, "card");
  model.custom({ type: "exported", what: "card", name: "run-a.zip" });
  assert.equal(cardBtn.nextElementSibling.textContent, "Saved run-a.zip · downloading");
  assert.equal(root.querySelector(":scope > .fpw-root > .fpw-notice").textContent, "", "the top notice stays quiet");
});

test("queued runs refused by the day's budget: the banner says why and its buttons work again", () => {
  const root = mount({ _queued: { count: 2, text: "2 queued runs, $0.60", refused: "", refusals: 0 } });
  const send = button(root, "Send");
  send.click();
  assert.equal(send.disabled, true);
  model.update({ _queued: { count: 2, text: "2 queued runs, $0.60", refused: "Today's budget: $0.20 of $0.50 left", refusals: 1 } });
  assert.equal(send.disabled, false);
  assert.match(root.querySelector(".fpw-queued-text").textContent, /^2 queued runs, \$0\.60 Today's budget: \$0\.20/);
});
