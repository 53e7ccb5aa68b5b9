// A video the kernel cannot send (video_error) is said where that video would play, with a
// Retry that asks for it again: the result, the comparison cells, the timeline player and
// a chain's playback. Before, the comparison and the timeline said "Loading the video…" for good.
import { test, beforeEach, afterEach } from "node:test";
import assert from "node:assert/strict";
import { setupDom, FakeModel, byName } from "./fake.js";

const env = setupDom();
const widget = (await import("../src/widget.js")).default;

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

const GONE = "This run's video is not in the local cache (it may have been pruned).";
const card = (id, extra = {}) => ({ id, stage: "completed", final: true, prompt: `prompt ${id}`, negative_prompt: "",
  duration: 10, cost: 0.3, wall: 14, backend: "simulator", has_video: true, ...extra });
const asked = (model, id) => model.messages("video").filter((m) => m.content.run_id === id);
function deliver(model, id) {
  const nonce = asked(model, id).at(-1).content.nonce;
  model.custom({ type: "video", run_id: id, nonce, index: 0, count: 1, size: 3, mime: "video/mp4" }, [new Uint8Array([1, 2, 3])]);
}
/** The one Retry button inside `box`, which must be showing. */
function retryIn(box) {
  const found = byName(box, "Retry");
  assert.equal(found.length, 1, "one Retry button");
  assert.equal(found[0].hidden, false, "Retry is shown");
  return found[0];
}
const shown = (e) => !e.hidden && !e.closest("[hidden]");

test("the result player says the kernel's error and Retry asks for the video again", () => {
  const { model, root } = view({ _history: [card("r1")], status: { run_id: "r1", stage: "completed", running: false, has_video: true } });
  const note = root.querySelector(".fpw-output .fpw-player-note");
  assert.equal(asked(model, "r1").length, 1);
  assert.match(note.textContent, /Loading the video/);
  model.custom({ type: "video_error", run_id: "r1", message: GONE });
  assert.ok(shown(note));
  assert.match(note.textContent, /not in the local cache/);
  retryIn(note).click();
  assert.equal(asked(model, "r1").length, 2, "Retry sent a new video request");
  assert.match(note.textContent, /Loading the video/);
  assert.equal(byName(note, "Retry")[0].hidden, true, "no Retry while it loads again");
  deliver(model, "r1");
  assert.equal(shown(note), false, "the note goes once the video is there");
  assert.match(root.querySelector("video.fpw-video").getAttribute("src"), /^blob:/);
});

test("a comparison cell shows its video's error with Retry; the other cells are unaffected", () => {
  const { model, root } = view({ _history: [card("a"), card("b")] });
  model.update({ _comparison: { run_ids: ["a", "b"], differs: { prompt: true },
    items: ["a", "b"].map((id, i) => ({ run_id: id, label: "AB"[i], prompt: [["=", id]], duration: 10 })) } });
  const cellNote = (id) => root.querySelector(`.fpw-cell[data-run-id="${id}"] .fpw-cell-note`);
  deliver(model, "a");
  model.custom({ type: "video_error", run_id: "b", message: GONE });
  assert.match(cellNote("b").textContent, /not in the local cache/);
  assert.doesNotMatch(cellNote("b").textContent, /Loading/);
  assert.equal(shown(cellNote("a")), false, "cell A has its video");
  model.update({ _history: [card("a"), card("b", { cost: 0.31 })] });
  assert.match(cellNote("b").textContent, /not in the local cache/, "a history change does not hide the error");
  assert.equal(asked(model, "b").length, 1, "nor ask again unasked");
  retryIn(cellNote("b")).click();
  assert.equal(asked(model, "b").length, 2);
  assert.match(cellNote("b").textContent, /Loading the video/);
  deliver(model, "b");
  assert.equal(shown(cellNote("b")), false);
  assert.match(root.querySelector('.fpw-cell[data-run-id="b"] video').getAttribute("src"), /^blob:/);
});

test("an error heard before the comparison opens is shown in its cell at once", () => {
  const { model, root } = view({ _history: [card("a"), card("b")], status: { run_id: "b", stage: "completed", running: false, has_video: true } });
  model.custom({ type: "video_error", run_id: "b", message: GONE });
  model.update({ _comparison: { run_ids: ["a", "b"], differs: {},
    items: ["a", "b"].map((id, i) => ({ run_id: id, label: "AB"[i], prompt: [["=", id]], duration: 10 })) } });
  assert.match(root.querySelector('.fpw-cell[data-run-id="b"] .fpw-cell-note').textContent, /not in the local cache/);
  assert.equal(asked(model, "b").length, 1, "the failed video is not asked for again until Retry");
});

const done = (extra) => ({ timeline_id: "timeline-1", kind: "timeline", status: "done", description: "2 segments, 20 s in all",
  count: 2, current: null, error: null, has_video: true,
  segments: [{ prompt: "zoom in", duration: 10, stage: "completed" }, { prompt: "pan left", duration: 10, stage: "completed" }], ...extra });

test("the timeline player shows the stitched video's error with Retry", () => {
  const { model, root } = view({ _start_image_info: { name: "a.jpg" } });
  model.update({ _timeline_info: done() });
  const panel = root.querySelector("details.fpw-timeline");
  const note = panel.querySelector(".fpw-player-note");
  assert.equal(asked(model, "timeline-1").length, 1);
  assert.match(note.textContent, /Loading the video/);
  model.custom({ type: "video_error", run_id: "timeline-1", message: "The stitched video is gone." });
  assert.match(note.textContent, /The stitched video is gone\./);
  assert.equal(panel.querySelector("video").hidden, true);
  retryIn(note).click();
  assert.equal(asked(model, "timeline-1").length, 2);
  deliver(model, "timeline-1");
  assert.equal(shown(note), false);
  assert.equal(panel.querySelector("video").hidden, false);
});

test("a chain played from its card shows the error of its video with Retry", () => {
  const cards = [card("b", { chain: { part: 2, of: 2 }, parent_id: "a" }), card("a", { chain: { part: 1, of: 2 } })];
  const { model, root } = view({ _history: cards });
  root.querySelector('.fpw-card[data-run-id="b"] .fpw-card-chain').click();
  assert.deepEqual(model.messages("chain").at(-1).content, { type: "chain", run_id: "b" });
  // The kernel shows the chain in the Timeline panel and stitches it.
  model.update({ _timeline_info: done({ timeline_id: "chain-a", kind: "chain", description: "A chain of 2 runs" }) });
  const note = root.querySelector("details.fpw-timeline .fpw-player-note");
  model.custom({ type: "video_error", run_id: "chain-a", message: "Part 1's video is not in the local cache." });
  assert.match(note.textContent, /Part 1's video/);
  retryIn(note).click();
  assert.equal(asked(model, "chain-a").length, 2);
});
