// Extend and the Timeline panel: what a person can do in them and what reaches the kernel.
import { test, beforeEach, afterEach } from "node:test";
import assert from "node:assert/strict";
import { setupDom, FakeModel, byName, flush } from "./fake.js";

const env = setupDom();
const widget = (await import("../src/widget.js")).default;
const { context } = await import("../src/context.js");
const { mountTimeline } = await import("../src/panels/timeline.js");

let views = [];
function view(state) {
  const model = new FakeModel({ _timeline_info: {}, _sweep_info: {}, ...state });
  const el = document.createElement("div");
  document.body.append(el);
  const cleanup = widget.render({ model, el });
  views.push({ el, cleanup });
  return { model, root: el.firstElementChild };
}
beforeEach(() => { env.created.length = 0; env.revoked.length = 0; });
afterEach(() => { for (const v of views) { v.cleanup(); v.el.remove(); } views = []; });

const one = (root, name) => { const found = byName(root, name); assert.equal(found.length, 1, `one control named "${name}" (found ${found.length})`); return found[0]; };
const IMG = { name: "cat.jpg", width: 640, height: 480 };
const panelOf = (root) => root.querySelector("details.fpw-timeline");
function type(input, value) { input.value = value; input.dispatchEvent(new Event("input", { bubbles: true })); }
function open(root) { const p = panelOf(root); p.open = true; p.dispatchEvent(new Event("toggle")); return p; }
const info = (extra) => ({
  timeline_id: "timeline-1", kind: "timeline", status: "running", description: "2 segments, 20 s in all, $0.60", count: 2,
  total_seconds: 20, total_cost_usd: 0.6, current: 1, error: null, has_video: false,
  segments: [
    { prompt: "zoom in", duration: 10, run_id: "r1", stage: "completed", percent: 100, error: null, retry: false },
    { prompt: "pan left", duration: 10, run_id: "r2", stage: "processing", percent: 40, error: null, retry: false },
  ],
  ...extra,
});

// (Extend on the result is mountResult's, covered in mounts.test.js.)
test("mountTimeline mounts on its own and its cleanup removes every model listener it added", () => {
  const model = new FakeModel({ _timeline_info: info(), status: { run_id: "a", stage: "completed", has_video: true } });
  const root = document.createElement("div");
  const ctx = context(model, root);
  const base = model.listenerCount();
  const cleanup = mountTimeline(ctx, root);
  assert.ok(root.childElementCount > 0);
  assert.ok(model.listenerCount() > base);
  cleanup();
  assert.equal(model.listenerCount(), base);
  ctx.media.close();
});

test("segments are added, edited, reordered and removed; the total length and cost follow the model's price", () => {
  const { model, root } = view({ _start_image_info: IMG, prompt: "the camera zooms in", duration: 10, _cost_per_second: 0.05 });
  const panel = open(root);
  const total = panel.querySelector(".fpw-tl-total");
  assert.equal(one(panel, "Segment 1 prompt").value, "the camera zooms in", "the first segment starts from the prompt");
  assert.equal(total.textContent, "1 segment \u00b7 10 s \u00b7 $0.50 (simulated, nothing charged)");
  one(panel, "Add segment").click();
  type(one(panel, "Segment 2 prompt"), "pan left");
  type(one(panel, "Segment 2 duration"), "20");
  assert.equal(total.textContent, "2 segments \u00b7 30 s \u00b7 $1.50 (simulated, nothing charged)");
  one(panel, "Move up segment 2").click();
  assert.deepEqual([one(panel, "Segment 1 prompt").value, one(panel, "Segment 2 prompt").value], ["pan left", "the camera zooms in"]);
  assert.equal(document.activeElement, one(panel, "Move down segment 1"), "focus stays on the moved segment");
  assert.equal(one(panel, "Move up segment 1").disabled, true);
  one(panel, "Add segment").click();
  one(panel, "Remove segment 3").click();
  assert.equal(total.textContent, "2 segments \u00b7 30 s \u00b7 $1.50 (simulated, nothing charged)");
  model.update({ _cost_per_second: 0.04 });
  assert.match(total.textContent, /\$1\.20/);
  assert.equal(model.messages("timeline").length, 0, "editing sends nothing");
});

test("Start timeline waits for a start image, a prompt per segment and valid durations; a double click sends one request", () => {
  const { model, root } = view({ prompt: "zoom in", duration: 10 });
  const panel = open(root);
  const start = one(panel, "Start timeline"), note = panel.querySelector("[role=status]");
  assert.equal(start.disabled, true);
  assert.match(note.textContent, /start image/);
  model.update({ _start_image_info: IMG });
  one(panel, "Add segment").click();
  assert.equal(start.disabled, true, "segment 2 has no prompt");
  type(one(panel, "Segment 2 prompt"), "pan left");
  type(one(panel, "Segment 2 duration"), "5");
  assert.equal(start.disabled, true);
  assert.match(note.textContent, /10 to 30/);
  type(one(panel, "Segment 2 duration"), "20");
  assert.equal(start.disabled, false);
  start.click();
  start.click();
  const sent = model.messages("timeline");
  assert.equal(sent.length, 1);
  const c = sent[0].content;
  assert.equal(c.action, "start");
  assert.deepEqual(c.segments, [{ prompt: "zoom in", duration: 10 }, { prompt: "pan left", duration: 20 }]);
  assert.equal(c.shown_cost, 0.9, "the price the person saw travels with the request");
  assert.equal(c.timeline_id, null);
  assert.ok(c.request_id);
  model.custom({ type: "error", message: "This timeline would cost more than the max_cost cap", request_id: c.request_id });
  assert.match(note.textContent, /max_cost/);
  assert.equal(start.disabled, false, "after an error the person can try again");
});

test("a running timeline shows each segment's status; when done, the stitched video is asked for and plays", async () => {
  const { model, root } = view({ _start_image_info: IMG });
  model.update({ _timeline_info: info() });
  const panel = panelOf(root);
  assert.equal(panel.open, true, "a timeline from the kernel opens the panel");
  assert.equal(panel.dataset.status, "running");
  const rows = [...panel.querySelectorAll(".fpw-seg")];
  assert.deepEqual(rows.map((r) => r.querySelector(".fpw-seg-status").textContent), ["Done", "Processing 40%"]);
  assert.ok(rows.every((r) => r.querySelector("textarea").disabled));
  assert.equal(byName(panel, "Start timeline")[0].hidden, true);
  one(panel, "Cancel timeline").click();
  assert.deepEqual(model.messages("timeline").at(-1).content, { type: "timeline", action: "cancel", timeline_id: "timeline-1" });
  model.update({ _timeline_info: info({ status: "done", current: null, has_video: true }) });
  assert.deepEqual(model.messages("video").map((m) => m.content.run_id), ["timeline-1"]);
  const v = panel.querySelector("video");
  assert.equal(v.hidden, true);
  const nonce = model.messages("video")[0].content.nonce;
  model.custom({ type: "video", run_id: "timeline-1", nonce, index: 0, count: 1, size: 3, mime: "video/mp4" }, [new Uint8Array([1, 2, 3])]);
  await flush();
  assert.equal(v.hidden, false);
  assert.match(v.getAttribute("src"), /^blob:/);
  assert.equal(v.getAttribute("aria-label"), "Timeline video");
  one(panel, "New timeline").click();
  assert.deepEqual([one(panel, "Segment 1 prompt").value, one(panel, "Segment 1 prompt").disabled], ["zoom in", false]);
});

test("the stitched video stays playable while many other videos come and go", async () => {
  const { model, root } = view({ _start_image_info: IMG });
  model.update({ _timeline_info: info({ status: "done", current: null, has_video: true }) });
  const send = (rid, nonce) => model.custom({ type: "video", run_id: rid, nonce, index: 0, count: 1, size: 1, mime: "video/mp4" }, [new Uint8Array([1])]);
  send("timeline-1", model.messages("video")[0].content.nonce);
  await flush();
  const player = panelOf(root).querySelector("video"), src = player.getAttribute("src");
  assert.match(src, /^blob:/);
  for (let i = 0; i < 12; i++) send(`other-${i}`, "n");  // more than the store keeps (8)
  await flush();
  assert.ok(!env.revoked.includes(src), "the panel's video was revoked while it is shown");
  assert.ok(env.revoked.length >= 4, "videos nobody shows are let go");
});

test("a failed segment offers Retry segment, which asks the kernel to retry that one", () => {
  const { model, root } = view({ _start_image_info: IMG });
  const failed = info({ status: "failed", error: "Segment 2 of 2 ended failed: the model refused.",
    segments: [info().segments[0], { ...info().segments[1], stage: "failed", percent: null, error: "the model refused", retry: true }] });
  model.update({ _timeline_info: failed });
  const panel = panelOf(root);
  assert.match(panel.querySelector("[role=status]").textContent, /Segment 2 of 2 ended failed/);
  one(panel, "Retry segment").click();
  assert.deepEqual(model.messages("timeline").at(-1).content, { type: "timeline", action: "retry", timeline_id: "timeline-1", segment: 1 });
});

test("a plan made in Python fills the panel; Start confirms that plan, until the person edits it", () => {
  const { model, root } = view({ _start_image_info: IMG });
  model.update({ _timeline_info: info({ status: "pending", current: 0, segments: info().segments.map((s) => ({ ...s, stage: null, run_id: null })) }) });
  const panel = panelOf(root);
  assert.equal(one(panel, "Segment 2 prompt").value, "pan left");
  assert.match(panel.querySelector("[role=status]").textContent, /Nothing starts until you press Start timeline/);
  one(panel, "Start timeline").click();
  assert.equal(model.messages("timeline")[0].content.timeline_id, "timeline-1");
  model.custom({ type: "timeline_started", request_id: model.messages("timeline")[0].content.request_id, timeline_id: "timeline-1" });
  model.update({ _timeline_info: {} });
  model.update({ _timeline_info: info({ timeline_id: "timeline-2", status: "pending" }) });
  type(one(panel, "Segment 1 prompt"), "zoom out");
  one(panel, "Start timeline").click();
  assert.equal(model.messages("timeline").at(-1).content.timeline_id, null, "an edited plan is a new plan");
});

test("Extend on the finished result and on each card with a video; a chain shows its part and plays as one", () => {
  const cards = [
    { id: "b", seq: 2, stage: "completed", final: true, prompt: "pan left", duration: 10, cost: 0.3, backend: "simulator", has_video: true, chain: { part: 2, of: 2 }, parent_id: "a" },
    { id: "a", seq: 1, stage: "completed", final: true, prompt: "zoom in", duration: 10, cost: 0.3, backend: "simulator", has_video: true, chain: { part: 1, of: 2 } },
    { id: "c", seq: 0, stage: "failed", final: true, prompt: "tilt", duration: 10, cost: 0.3, backend: "simulator", has_video: false },
  ];
  const { model, root } = view({ _history: cards, status: { run_id: "b", stage: "processing", running: true } });
  const result = root.querySelector(".fpw-output");
  assert.equal(result.querySelector(".fpw-extend").hidden, true, "no Extend while the run is processing");
  model.update({ status: { run_id: "b", stage: "completed", running: false, has_video: true } });
  const extend = [...result.querySelectorAll("button")].filter((b) => b.textContent === "Extend");
  assert.equal(extend.length, 1);
  assert.equal(extend[0].hidden, false);
  extend[0].click();
  assert.deepEqual(model.messages("extend").at(-1).content, { type: "extend", run_id: "b" });
  model.custom({ type: "extended", run_id: "b" });
  assert.equal(document.activeElement, one(root, "Prompt"), "the prompt is ready to edit");

  const card = (rid) => root.querySelector(`.fpw-card[data-run-id="${rid}"]`);
  assert.equal(card("c").querySelector(".fpw-card-extend").hidden, true, "a run without a video cannot be extended");
  card("a").querySelector(".fpw-card-extend").click();
  assert.deepEqual(model.messages("extend").at(-1).content, { type: "extend", run_id: "a" });
  assert.equal(byName(card("a"), "Extend").length, 1);
  const chain = card("b").querySelector(".fpw-card-chain");
  assert.equal(chain.textContent, "part 2 of 2");
  assert.equal(chain.getAttribute("aria-label"), "Play the whole chain, part 2 of 2: pan left");
  assert.equal(card("c").querySelector(".fpw-card-chain").hidden, true);
  chain.click();
  assert.deepEqual(model.messages("chain").at(-1).content, { type: "chain", run_id: "b" });
  assert.match(card("b").querySelector(".fpw-card-meta").textContent, /Done/);
});

test("the panel's texts come from the kernel and are never parsed as HTML", () => {
  const { model, root } = view({ _start_image_info: IMG });
  const evil = "<img src=x onerror=alert(1)>";
  model.update({ _timeline_info: info({ status: "failed", error: evil, segments: [{ prompt: evil, duration: 10, stage: "failed", error: evil, retry: true }] }) });
  const panel = panelOf(root);
  assert.equal(panel.querySelectorAll("img").length, 0);
  assert.equal(one(panel, "Segment 1 prompt").value, evil);
  assert.equal(panel.querySelector(".fpw-seg .fpw-error").textContent, evil);
});
