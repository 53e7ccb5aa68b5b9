// The shared gallery's page (js/src/gallery.js) and the widget's Share button.
import { test, afterEach } from "node:test";
import assert from "node:assert/strict";
import { setupDom, FakeModel, byName, flush } from "./fake.js";

setupDom();
const { renderGallery, galleryComparison } = await import("../src/gallery.js");
const widget = (await import("../src/widget.js")).default;

const run = (id, p, extra = {}) => ({
  run_id: id, p, prompt: ["zoom in on the house", "pan left across the hills"][p], negative_prompt: "", duration: 10,
  stage: "completed", simulated: true, cost_usd: 0.3, backend: "simulator", task_id: `task-${id}`, created_at: "2026-11-30T10:00:00+00:00",
  wall_time: 14, start_image_sha: "aaa", end_image_sha: null, video: `videos/${id}.mp4`, poster: `posters/${id}.jpg`, ...extra,
});
const DATA = {
  title: "FramePack: 4 runs", exported_at: "2026-11-30T10:05:00+00:00", fps: 30, max_compared: 4,
  runs: [run("a", 0), run("b", 1, { negative_prompt: "blurry" }), run("c", 0, { parent_id: "a", start_image_sha: "bbb" }),
    run("d", 1, { stage: "failed", video: undefined, error: "the task failed" })],
  diffs: { "0,1": [["=", "the"], ["-", "zoom in on the house"], ["+", "pan left across the hills"]], "1,0": [["+", "zoom in on the house"], ["-", "pan left across the hills"]] },
};

let root, close;
afterEach(() => { close?.(); root?.remove(); close = null; });
function show(data = DATA) {
  root = document.createElement("main");
  document.body.append(root);
  close = renderGallery(root, structuredClone(data));
  return root;
}
const tick = (box) => { box.checked = !box.checked; box.dispatchEvent(new Event("change")); };

test("one card per run: its video from the folder, its prompt and its facts", () => {
  const page = show();
  const cards = page.querySelectorAll(".fpw-gallery-card");
  assert.equal(cards.length, 4);
  const video = cards[0].querySelector("video");
  assert.equal(video.getAttribute("src"), "videos/a.mp4");
  assert.equal(video.getAttribute("poster"), "posters/a.jpg");
  assert.match(cards[0].textContent, /zoom in on the house/);
  assert.match(cards[0].textContent, /Duration10 s/);
  assert.match(cards[0].textContent, /\$0\.30 \(simulated, nothing charged\)/);
  assert.match(cards[1].textContent, /Negative promptblurry/);
  const parent = cards[2].querySelector("a");
  assert.equal(parent.getAttribute("href"), "#run-a", "a continued run links to its parent's card");
  assert.equal(cards[3].querySelector("video"), null, "a failed run has no player");
  assert.match(cards[3].textContent, /the task failed/);
  assert.equal(cards[3].querySelector("input").disabled, true);
  assert.match(page.querySelector(".fpw-badge-sim").textContent, /synthetic/);
});

test("only the folder's own files reach a src", () => {
  const bad = structuredClone(DATA);
  bad.runs[0].video = "https://example.com/x.mp4";
  bad.runs[1].video = "../outside.mp4";
  bad.runs[2].video = "javascript:alert(1)";
  const page = show(bad);
  assert.equal(page.querySelectorAll("video").length, 0);
});

test("select two runs, Compare: the widget's comparison plays them with Python's word diff", async () => {
  const page = show();
  const compare = byName(page, "Compare")[0];
  assert.equal(compare.disabled, true);
  const checks = page.querySelectorAll(".fpw-gallery-card input[type=checkbox]");
  tick(checks[0]);
  tick(checks[1]);
  assert.equal(compare.disabled, false);
  compare.click();
  await flush();
  const section = page.querySelector("section.fpw-compare");
  assert.equal(section.hidden, false);
  const videos = [...section.querySelectorAll("video")];
  assert.deepEqual(videos.map((v) => v.getAttribute("src")), ["videos/a.mp4", "videos/b.mp4"]);
  assert.equal(section.querySelectorAll("del.fpw-del").length, 1);
  assert.equal(section.querySelector("ins.fpw-add").textContent, "pan left across the hills");
  assert.match(section.querySelector(".fpw-diff-summary").textContent, /prompt, negative prompt/);
  // The widget's player: once both videos have metadata, its toolbar comes alive.
  videos.forEach((v) => { Object.defineProperty(v, "duration", { value: 10 }); v.dispatchEvent(new Event("loadedmetadata")); });
  assert.equal(section.dataset.ready, "true");
  assert.equal(byName(page, "Play")[0].disabled, false);
  byName(page, "Close comparison")[0].click();
  assert.equal(section.hidden, true);
});

test("galleryComparison: each run against the first, and what differs", () => {
  const cmp = galleryComparison(DATA, ["b", "a", "c"]);
  assert.deepEqual(cmp.run_ids, ["b", "a", "c"]);
  assert.deepEqual(cmp.items.map((i) => i.label), ["A", "B", "C"]);
  assert.deepEqual(cmp.items[0].prompt, [["=", "pan left across the hills"]]);
  assert.deepEqual(cmp.items[1].prompt, DATA.diffs["1,0"]);
  assert.deepEqual(cmp.differs, { prompt: true, negative_prompt: true, duration: false, start_image: true, end_image: false });
  assert.deepEqual(galleryComparison(DATA, ["a", "d"]), {}, "a run without video is not compared");
  assert.deepEqual(galleryComparison(DATA, ["a", "c"]).differs.prompt, false, "the same prompt");
});

test("the selection stops at max_compared", () => {
  const page = show({ ...DATA, max_compared: 2 });
  const checks = page.querySelectorAll(".fpw-gallery-card input[type=checkbox]");
  tick(checks[0]);
  tick(checks[1]);
  assert.equal(checks[2].disabled, true);
});

// ------------------------------------------------------------------ the widget's Share button
test("Share appears once a run has a video and sends the selected runs", () => {
  const model = new FakeModel();
  const el = document.createElement("div");
  document.body.append(el);
  const cleanup = widget.render({ model, el });
  try {
    const share = byName(el, "Share")[0];
    assert.ok(share, "a button named Share");
    assert.equal(share.closest(".fpw-share-row").hidden, true, "nothing to share yet");
    model.update({ _history: [{ id: "r1", stage: "completed", prompt: "p", duration: 10, cost: 0.3, has_video: true, created: 1 }] });
    assert.equal(share.closest(".fpw-share-row").hidden, false);
    share.click();
    assert.deepEqual(model.messages("share")[0].content, { type: "share", run_ids: [] });
    model.update({ selected: ["r1"] });
    assert.match(el.querySelector(".fpw-share-hint").textContent, /1 selected run\b/);
    share.click();
    assert.deepEqual(model.messages("share")[1].content.run_ids, ["r1"]);
  } finally {
    cleanup();
    el.remove();
  }
});

test("runs are named by their number; when their start images differ, by the image's name too", () => {
  const data = structuredClone(DATA);
  data.runs = [
    run("a", 0, { seq: 3, start_image_name: "lake.jpg" }),
    run("b", 0, { seq: 4, start_image_sha: "bbb", start_image_name: "beach.jpg", parent_id: "a", loop: true, end_image_sha: "bbb", end_image_name: "beach.jpg" }),
    run("c", 0, { seq: 5, parent_id: "gone-run-id-1234" }),
  ];
  const page = show(data);
  const cards = [...page.querySelectorAll(".fpw-gallery-card")];
  assert.match(cards[0].textContent, /Run#3/);
  assert.match(cards[0].textContent, /Start imagelake\.jpg/);
  assert.match(cards[1].textContent, /Start imagebeach\.jpg/);
  assert.match(cards[1].textContent, /Loopthe video ends on its start image/);
  assert.ok(!/Loop/.test(cards[0].textContent));
  assert.equal(cards[1].querySelector("a").textContent, "run #3", "the parent by its number");
  assert.match(cards[2].textContent, /run gone-run \(not in this gallery\)/);
  const cmp = galleryComparison(data, ["a", "b"]);
  assert.deepEqual(cmp.items.map((i) => i.label), ["#3", "#4"]);
  assert.deepEqual(cmp.items.map((i) => i.start_image.name), ["lake.jpg", "beach.jpg"]);
});

test("runs that all start from one image are not labelled by it", () => {
  const data = structuredClone(DATA);
  data.runs = [run("a", 0, { start_image_name: "lake.jpg" }), run("b", 1, { start_image_name: "lake.jpg" })];
  assert.ok(![...show(data).querySelectorAll(".fpw-gallery-card")].some((c) => /Start image/.test(c.textContent)));
});
