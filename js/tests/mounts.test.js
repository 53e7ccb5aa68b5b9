// The view is composed of mounts; each cleans up after itself, and render's cleanup after all.
import { test, beforeEach, afterEach } from "node:test";
import assert from "node:assert/strict";
import { setupDom, FakeModel, byName, flush, sources } from "./fake.js";

const env = setupDom();
const widget = (await import("../src/widget.js")).default;
const { context } = await import("../src/context.js");
const MOUNTS = {
  mountHeader: (await import("../src/panels/header.js")).mountHeader,
  mountInputs: (await import("../src/panels/inputs.js")).mountInputs,
  mountStatus: (await import("../src/panels/status.js")).mountStatus,
  mountResult: (await import("../src/panels/result.js")).mountResult,
  mountSweep: (await import("../src/panels/sweep.js")).mountSweep,
  mountQueued: (await import("../src/panels/queued.js")).mountQueued,
  mountHistory: (await import("../src/panels/history.js")).mountHistory,
  mountComparison: (await import("../src/panels/comparison.js")).mountComparison,
};

const live = () => env.created.map((c) => c.url).filter((u) => !env.revoked.includes(u));
const one = (root, name) => { const found = byName(root, name); assert.equal(found.length, 1, name); return found[0]; };
const card = (id, extra = {}) => ({ id, stage: "completed", final: true, prompt: `prompt ${id}`, negative_prompt: "", duration: 10, cost: 0.3, wall: 14, backend: "simulator", has_video: true, ...extra });
const COMPARISON = {
  run_ids: ["a", "b"], differs: { prompt: true },
  items: ["a", "b"].map((id, i) => ({ run_id: id, label: "AB"[i], prompt: [["=", id]], negative_prompt: "", duration: 10, start_image: null, end_image: null })),
};
/** Deliver a run's whole video in one chunk, answering the view's own request. */
function deliver(model, rid, bytes = [1, 2, 3]) {
  const nonce = model.messages("video").find((m) => m.content.run_id === rid)?.content.nonce;
  model.custom({ type: "video", run_id: rid, nonce, index: 0, count: 1, size: bytes.length, mime: "video/mp4" }, [new Uint8Array(bytes)]);
}

let views = [];
function view(state, model = new FakeModel(state)) {
  const el = document.createElement("div");
  document.body.append(el);
  const cleanup = widget.render({ model, el });
  const v = { model, el, root: el.firstElementChild, cleanup };
  views.push(v);
  return v;
}
beforeEach(() => { env.created.length = 0; env.revoked.length = 0; });
afterEach(() => { for (const v of views) { v.cleanup?.(); v.el.remove(); } views = []; });

for (const [name, mount] of Object.entries(MOUNTS)) {
  test(`${name} mounts on its own and its cleanup removes every model listener it added`, () => {
    const model = new FakeModel({ _history: [card("a"), card("b")], _comparison: COMPARISON, status: { run_id: "a", stage: "completed", running: false, has_video: true } });
    const root = document.createElement("div");
    const ctx = context(model, root);
    const base = model.listenerCount(); // the media store's own
    const cleanup = mount(ctx, root);
    assert.equal(typeof cleanup, "function");
    assert.ok(root.childElementCount > 0, "it built its part");
    assert.ok(model.listenerCount() > base, "it listens to the model");
    cleanup();
    assert.equal(model.listenerCount(), base);
    ctx.media.close();
    assert.equal(model.listenerCount(), 0);
    assert.deepEqual(live(), []);
  });
}

test("render's cleanup revokes every blob URL: videos, posters, slot previews and thumbnails, downloads", async () => {
  const { model, root, cleanup } = view({ _history: [card("r1")], status: { run_id: "r1", stage: "completed", running: false, has_video: true } });
  deliver(model, "r1");
  model.custom({ type: "poster", run_id: "r1", mime: "image/jpeg" }, [new Uint8Array([9])]);
  model.custom({ type: "image", slot: "end", mime: "image/jpeg" }, [new Uint8Array([1])]);
  const input = one(root, "Start image");
  Object.defineProperty(input, "files", { value: [new File([new Uint8Array([1, 2])], "a.jpg", { type: "image/jpeg" })], configurable: true });
  input.dispatchEvent(new Event("change", { bubbles: true }));
  await flush(); await flush();
  model.custom({ type: "download", key: "k", name: "card.zip", index: 0, count: 1, size: 1, mime: "application/zip" }, [new Uint8Array([7])]);
  const kinds = env.created.map((c) => c.blob.type).sort();
  assert.deepEqual(kinds, ["application/zip", "image/jpeg", "image/jpeg", "image/jpeg", "video/mp4"]);
  assert.equal(root.querySelectorAll("a[download]:not(.fpw-link)").length, 0, "the download link is gone after its click");
  cleanup();
  views[0].cleanup = null;
  assert.deepEqual(live(), []);
  assert.equal(model.listenerCount(), 0);
});

test("after cleanup, no control still talks to the kernel and no timer keeps running", () => {
  const timers = new Set();
  const { setInterval: si, clearInterval: ci, setTimeout: st, clearTimeout: ct } = globalThis;
  globalThis.setInterval = (...a) => { const t = si(...a); timers.add(t); return t; };
  globalThis.clearInterval = (t) => { timers.delete(t); ci(t); };
  globalThis.setTimeout = (fn, ms, ...a) => { const t = st(fn, ms, ...a); if (ms >= 1000) timers.add(t); return t; };
  globalThis.clearTimeout = (t) => { timers.delete(t); ct(t); };
  try {
    const { model, root, cleanup } = view({
      _start_image_info: { name: "a.jpg" }, prompt: "zoom in", _history: [card("a"), card("b")], selected: ["a", "b"],
      status: { run_id: "a", stage: "processing", running: true, elapsed: 1 }, _sweep_info: { sweep_id: "s", state: "pending" }, _comparison: COMPARISON,
    });
    one(root, "Generate").click(); // starts the 60 s guard against a lost reply
    assert.ok(timers.size >= 2, "the status ticker and the generate guard are running");
    const controls = ["Generate", "Cancel", "Compare", "Start sweep", "Close comparison", "Export MP4", "Remove start image"].map((n) => one(root, n));
    const prompt = one(root, "Prompt"), show = root.querySelector(".fpw-card-show");
    const sent = model.sent.length, saves = model.saves;
    cleanup();
    views[0].cleanup = null;
    assert.equal(timers.size, 0, "every interval and timeout cleared");
    for (const b of [...controls, show]) { b.disabled = false; b.click(); }
    prompt.value = "changed";
    prompt.dispatchEvent(new Event("input"));
    model.update({ status: { run_id: "b", stage: "completed", running: false, has_video: true }, _comparison: {}, _history: [] });
    model.custom({ type: "video", run_id: "a", nonce: "x", index: 0, count: 1 }, [new Uint8Array([1])]);
    assert.equal(model.sent.length, sent, "nothing sent after cleanup");
    assert.equal(model.saves, saves);
    assert.deepEqual(live(), []);
  } finally {
    Object.assign(globalThis, { setInterval: si, clearInterval: ci, setTimeout: st, clearTimeout: ct });
  }
});

test("two views of one model: closing one leaves the other working", () => {
  const a = view({ _start_image_info: { name: "a.jpg" } });
  const alone = a.model.listenerCount();
  const b = view({}, a.model);
  assert.equal(a.model.listenerCount(), 2 * alone);
  a.cleanup();
  a.cleanup = null;
  assert.equal(b.model.listenerCount(), alone);
  b.model.update({ prompt: "pan left" });
  assert.equal(one(b.root, "Prompt").value, "pan left");
  assert.equal(one(b.root, "Generate").disabled, false);
});

test("the price and the duration limits come from the model, and follow it", () => {
  const { model, root } = view({ _cost_per_second: 0.05, _min_duration: 5, _max_duration: 60, duration: 12 });
  const dur = one(root, "Duration"), out = root.querySelector("output.fpw-cost");
  assert.deepEqual([dur.min, dur.max, dur.value], ["5", "60", "12"]);
  assert.equal(out.textContent, "12 s \u00b7 $0.60");
  model.update({ _cost_per_second: 0.04 });
  assert.equal(out.textContent, "12 s \u00b7 $0.48");
  model.update({ _max_duration: 20, _min_duration: 8 });
  assert.deepEqual([dur.min, dur.max], ["8", "20"]);
  dur.value = "20";
  dur.dispatchEvent(new Event("input"));
  assert.equal(out.textContent, "20 s \u00b7 $0.80");
});

test("without a price from the model no figure is made up", () => {
  const { root } = view({ _cost_per_second: undefined, duration: 10 });
  assert.equal(root.querySelector("output.fpw-cost").textContent, "10 s");
});

test("frame rate, image size, prompt length and comparison size come from the model's limits", () => {
  const { model, root } = view({ _limits: { fps: 24, max_side: 640, max_prompt_chars: 99, max_compared: 3 },
    _history: ["a", "b", "c", "d"].map((k, i) => ({ id: k, prompt: k, stage: "completed", duration: 10, has_video: true, final: true, seq: i })) });
  assert.equal(one(root, "Prompt").maxLength, 99);
  assert.match(root.querySelector(".fpw-prev").title, /1\/24 s/);
  assert.equal(root.querySelector(".fpw-seek").step, String(1 / 24));
  assert.match(root.querySelector(".fpw-select-hint").textContent, /2 to 3 runs/);
  model.update({ selected: ["a", "b", "c"] });
  const unchecked = [...root.querySelectorAll(".fpw-card-check")].filter((c) => !c.checked);
  assert.ok(unchecked.length === 1 && unchecked[0].disabled, "a fourth run cannot be selected");
});

test("js/src holds no price, no limits and no list of final stages", () => {
  const src = sources().map((f) => f.text).join("\n");
  assert.doesNotMatch(src, /0\.03/);
  assert.doesNotMatch(src, /\b(1280|2000)\b|const FPS/, "no copy of the model's limits");
  assert.doesNotMatch(src, /get\([^)]*\)\s*(\?\?|\|\|)\s*\d/, "no numeric fallbacks for model values");
  assert.doesNotMatch(src, /(min|max)\s*:\s*(10|30)\b/);
  assert.doesNotMatch(src, /new Set\(\[\s*"completed"/);
});

test("the run-card button follows status.running, whatever the stage is called", () => {
  const { model, root } = view();
  const btn = root.querySelector(".fpw-card-export");
  assert.equal(btn.hidden, true, "no run yet");
  model.update({ status: { run_id: "r", stage: "processing", running: true } });
  assert.equal(btn.hidden, true);
  model.update({ status: { run_id: "r", stage: "a_stage_added_later", running: false } });
  assert.equal(btn.hidden, false);
  btn.click();
  assert.deepEqual(model.messages("export")[0].content, { type: "export", what: "card", run_id: "r" });
});

test("one video reaches both the player and the comparison cell; old videos are evicted and revoked", () => {
  const { model, root } = view({ _history: ["a", "b"].map((x) => card(x)), status: { run_id: "a", stage: "completed", running: false, has_video: true }, _comparison: COMPARISON });
  assert.deepEqual(model.messages("video").map((m) => m.content.run_id), ["a", "b"], "each video asked for once");
  deliver(model, "a");
  const url = root.querySelector("video.fpw-video").getAttribute("src");
  assert.match(url, /^blob:/);
  assert.equal(root.querySelector('.fpw-cell[data-run-id="a"] video').getAttribute("src"), url);
  for (let i = 0; i < 10; i++) {
    model.update({ status: { run_id: `x${i}`, stage: "completed", running: false, has_video: true } });
    deliver(model, `x${i}`);
  }
  assert.equal(env.created.length, 11);
  assert.equal(live().length, 8, "at most 8 videos kept per view");
  assert.ok(live().includes(url), "a video in the comparison is kept");
  assert.ok(!env.revoked.includes(root.querySelector("video.fpw-video").getAttribute("src")), "the current one is kept");
});

test("a run in the comparison that finishes later gets its video", () => {
  const { model, root } = view({ _history: [card("a"), card("b", { stage: "processing", final: false, has_video: false })], _comparison: COMPARISON });
  assert.deepEqual(model.messages("video").map((m) => m.content.run_id), ["a"]);
  assert.match(root.querySelector('.fpw-cell[data-run-id="b"] .fpw-cell-note').textContent, /No video yet \(Processing\)/);
  model.update({ _history: [card("a"), card("b")] });
  assert.deepEqual(model.messages("video").map((m) => m.content.run_id), ["a", "b"]);
  assert.match(root.querySelector('.fpw-cell[data-run-id="b"] .fpw-cell-note').textContent, /Loading/);
});

test("odd messages are ignored: unknown or inherited types, unknown slots, bad chunk counts", () => {
  const { model, root } = view();
  const before = root.innerHTML;
  for (const type of ["constructor", "toString", "__proto__", "hasOwnProperty", "nonsense"]) model.custom({ type, slot: "start" }, [new Uint8Array([1])]);
  model.custom({ type: "image", slot: "constructor" }, [new Uint8Array([1])]);
  model.custom({ type: "error", slot: "toString", message: "m" });
  for (const count of [-1, 0, 1.5, "2", 1e12]) model.custom({ type: "video", run_id: "r", nonce: "n", index: 0, count }, [new Uint8Array([1])]);
  model.custom({ type: "video", run_id: "r", nonce: "n", index: 3, count: 2 }, [new Uint8Array([1])]);
  model.emit("msg:custom", null, []);
  model.emit("msg:custom", "text", []);
  assert.equal(root.querySelector(".fpw-input-error").textContent, "m");
  assert.equal(env.created.length, 0);
  assert.notEqual(before, "");
});

test("runs a stopped kernel left unsent are shown with their cost and sent or dropped only on a click", () => {
  const { model, root } = view({ _queued: { count: 3, cost_usd: 0.9, text: "3 queued runs, $0.90" } });
  const box = root.querySelector(".fpw-queued");
  assert.equal(box.hidden, false);
  assert.match(box.textContent, /3 queued runs, \$0\.90/);
  assert.equal(model.messages("queued").length, 0, "nothing is sent unasked");
  one(root, "Send").click();
  assert.deepEqual(model.messages("queued").map((m) => m.content.action), ["send"]);
  assert.equal(one(root, "Discard").disabled, true, "one answer per question");
  model.update({ _queued: {} });
  assert.equal(box.hidden, true);
  model.update({ _queued: { count: 1, cost_usd: 0.3, text: "1 queued run, $0.30" } });
  one(root, "Discard").click();
  assert.deepEqual(model.messages("queued").map((m) => m.content.action), ["send", "discard"]);
});
