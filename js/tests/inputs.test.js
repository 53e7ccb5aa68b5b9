// Run numbers, the start image's origin, Loop, several images at once and an MP4's settings:
// what a person sees of them and what reaches the kernel (issue 16).
import { test, beforeEach, afterEach } from "node:test";
import assert from "node:assert/strict";
import { setupDom, FakeModel, byName, flush } from "./fake.js";

const env = setupDom();
const widget = (await import("../src/widget.js")).default;

let el, model, cleanup;
function mount(state) {
  model = new FakeModel({ _timeline_info: {}, _sweep_info: {}, ...state });
  el = document.createElement("div");
  document.body.append(el);
  cleanup = widget.render({ model, el });
  return el.firstElementChild;
}
beforeEach(() => { env.created.length = 0; env.revoked.length = 0; });
afterEach(() => { cleanup?.(); el?.remove(); cleanup = null; });

const one = (root, name) => { const found = byName(root, name); assert.equal(found.length, 1, `one control named "${name}" (found ${found.length})`); return found[0]; };
const IMG = { name: "lake_cabin.jpg", width: 640, height: 480 };
const jpeg = (name) => new File([new Uint8Array([0xff, 0xd8, 0xff, 1, 2, 3])], name, { type: "image/jpeg" });
const mp4 = (name = "wave.mp4") => new File([new Uint8Array([0, 0, 0, 24, 0x66, 0x74, 0x79, 0x70, 1, 2])], name, { type: "video/mp4" });
function choose(input, files) {
  Object.defineProperty(input, "files", { value: files, configurable: true });
  input.dispatchEvent(new Event("change", { bubbles: true }));
}
function drop(target, files) {
  const ev = new Event("drop", { bubbles: true, cancelable: true });
  ev.dataTransfer = { files, types: ["Files"], getData: () => "" };
  target.dispatchEvent(ev);
  return ev;
}
const settle = async () => { for (let i = 0; i < 6; i++) await flush(); };
const card = (id, extra = {}) => ({ id, stage: "completed", prompt: `prompt ${id}`, negative_prompt: "", duration: 10, cost: 0.3, wall: 14.2, backend: "simulator", has_video: true, created: 1, ...extra });

test("runs are called by their number: cards, the status line, the download, the timeline's segments", () => {
  const root = mount({
    _history: [card("b", { seq: 4, loop: true }), card("a", { seq: 3 })], _history_total: 2,
    status: { run_id: "b", number: 4, stage: "completed", running: false, has_video: true },
  });
  const metas = [...root.querySelectorAll(".fpw-card-meta")].map((e) => e.textContent);
  assert.match(metas[0], /^#4 · 10 s · Loop · Done/, "the card says its number, and that it loops");
  assert.match(metas[1], /^#3 · 10 s · Done/);
  assert.ok(!/Loop/.test(metas[1]));
  assert.equal(byName(root, "Show run #3: prompt a").length, 1);
  assert.equal(root.querySelector(".fpw-run-no").textContent, "Run #4");
  assert.equal(root.querySelector(".fpw-stage").textContent, "Done");
  model.custom({ type: "video", run_id: "b", index: 0, count: 1, size: 1, mime: "video/mp4" }, [new Uint8Array([1])]);
  assert.equal(root.querySelector("a.fpw-link").download, "framepack-run-4.mp4");
  model.update({ _timeline_info: {
    timeline_id: "t", status: "running", description: "", count: 1, current: 0, starts_from: "last frame of run #4",
    segments: [{ prompt: "p", duration: 10, run_id: "c", number: 5, stage: "processing", percent: 10, retry: false }],
  } });
  assert.equal(root.querySelector(".fpw-seg-run").textContent, "#5");
  assert.equal(root.querySelector(".fpw-seg-status").textContent, "Processing 10%", "the stage stays on its own");
  assert.equal(root.querySelector(".fpw-tl-from").textContent,
    "Starts from last frame of run #4; each segment from the previous one's last frame.");
});

test("the start image says where it came from, and back to puts the one before back", () => {
  const root = mount({ _start_image_info: IMG });
  const back = root.querySelector(".fpw-back");
  assert.equal(back.hidden, true, "an image set by hand has no origin");
  assert.equal(root.querySelector(".fpw-tl-from").textContent,
    "Starts from lake_cabin.jpg; each segment from the previous one's last frame.", "the timeline says its image");
  model.update({ _start_image_info: { name: "last frame of run #3", width: 640, height: 480, origin: "last frame of run #3", back: "lake_cabin.jpg" } });
  assert.match(root.querySelector(".fpw-slot-start .fpw-slot-meta").textContent, /^last frame of run #3 · 640×480/);
  assert.equal(back.hidden, false);
  assert.equal(one(root, "back to lake_cabin.jpg"), back);
  back.click();
  assert.deepEqual(model.messages("image_back").map((m) => m.content), [{ type: "image_back", slot: "start" }]);
  model.update({ _start_image_info: IMG });
  assert.equal(back.hidden, true, "another image clears the origin");
});

test("Loop is a switch beside the End image slot; on, the end slot shows the start image", () => {
  const root = mount({ _start_image_info: IMG });
  const loop = one(root, "Loop");
  assert.equal(loop.getAttribute("role"), "switch");
  assert.equal(loop.type, "checkbox");
  assert.ok(loop.closest(".fpw-slot-end"), "beside the End image slot");
  model.custom({ type: "image", slot: "start", name: "lake_cabin.jpg", mime: "image/jpeg" }, [new Uint8Array([1])]);
  const startThumb = root.querySelector(".fpw-slot-start .fpw-thumb").getAttribute("src");
  const end = root.querySelector(".fpw-slot-end");
  assert.equal(end.querySelector(".fpw-thumb").hidden, true);
  loop.checked = true;
  loop.dispatchEvent(new Event("change", { bubbles: true }));
  assert.equal(model.get("loop"), true, "the switch sets the synced trait");
  assert.equal(end.querySelector(".fpw-slot-meta").textContent, "Loop: the start image");
  assert.equal(end.querySelector(".fpw-thumb").getAttribute("src"), startThumb);
  assert.ok(end.classList.contains("fpw-looped"));
  assert.equal(end.querySelector(".fpw-clear").hidden, true, "nothing to remove: it is the start image");
  model.update({ loop: false, _end_image_info: null });
  assert.equal(loop.checked, false, "the switch follows the trait");
  assert.equal(end.querySelector(".fpw-thumb").hidden, true);
  assert.ok(!end.classList.contains("fpw-looped"));
});

test("several images chosen for the start slot go one by one, as one batch, with no preview", async () => {
  const root = mount({ prompt: "the camera pans left" });
  const input = one(root, "Start image");
  assert.equal(input.multiple, true);
  assert.match(input.accept, /image\/\*/);
  assert.equal(one(root, "End image").multiple, false);
  choose(input, [jpeg("a.jpg"), jpeg("b.jpg"), jpeg("c.jpg")]);
  await settle();
  const up = model.messages("upload").map((m) => m.content);
  assert.deepEqual(up.map((m) => m.name), ["a.jpg", "b.jpg", "c.jpg"]);
  const [id] = up[0].batch;
  assert.ok(id);
  assert.deepEqual(up.map((m) => m.batch), [[id, 0, 3], [id, 1, 3], [id, 2, 3]]);
  assert.ok(up.every((m) => m.slot === "start"));
  assert.equal(root.querySelector(".fpw-slot-start .fpw-thumb").hidden, true, "a batch is no one image: no preview");
  choose(input, [jpeg("one.jpg")]);
  await settle();
  const single = model.messages("upload").at(-1).content;
  assert.equal(single.name, "one.jpg");
  assert.equal(single.batch, undefined, "one image is just the start image");
});

test("several images dropped on the start slot make a batch too", async () => {
  const root = mount({ prompt: "zoom in" });
  drop(root.querySelector(".fpw-slot-start .fpw-drop"), [jpeg("a.jpg"), jpeg("b.jpg")]);
  await settle();
  assert.deepEqual(model.messages("upload").map((m) => m.content.batch[1]), [0, 1]);
});

test("an MP4 dropped anywhere on the widget, or on the start slot, goes to the kernel as it is", async () => {
  const root = mount();
  const ev = drop(root.querySelector(".fpw-prompt"), [mp4()]);
  assert.equal(ev.defaultPrevented, true, "the browser does not open the video instead");
  await settle();
  let [up] = model.messages("upload").map((m) => m.content);
  assert.deepEqual([up.slot, up.name, up.mime, up.batch], ["start", "wave.mp4", "video/mp4", undefined]);
  assert.equal(model.messages("upload")[0].buffers[0].byteLength, 10, "not re-encoded");
  assert.equal(root.querySelector(".fpw-slot-start .fpw-thumb").hidden, true, "no image preview of a video");
  drop(root.querySelector(".fpw-slot-start .fpw-drop"), [jpeg("x.jpg"), mp4("clip.mp4")]);
  await settle();
  up = model.messages("upload").at(-1).content;
  assert.equal(model.messages("upload").length, 2, "the slot's drop is handled once");
  assert.deepEqual([up.name, up.mime], ["clip.mp4", "video/mp4"]);
  // Another file dropped on the widget (not on a slot) is left alone.
  const other = drop(root.querySelector(".fpw-prompt"), [new File(["x"], "notes.txt", { type: "text/plain" })]);
  assert.equal(other.defaultPrevented, false);
});

test("the comparison names runs by number and images by name", () => {
  const item = (id, seq, name, extra = {}) => ({ run_id: id, label: `#${seq}`, prompt: [["=", "p"]], negative_prompt: "", duration: 10,
    start_image: { sha: `${id}0000000000`, name }, end_image: null, ...extra });
  const root = mount({
    _history: [card("a", { seq: 1 }), card("b", { seq: 2 })],
    _comparison: { run_ids: ["a", "b"], items: [item("a", 1, "lake.jpg"), item("b", 2, "beach.jpg", { loop: true, end_image: { sha: "b0" } })],
      differs: { start_image: true, end_image: true } },
  });
  const cells = [...root.querySelectorAll(".fpw-cell")];
  assert.deepEqual(cells.map((c) => c.querySelector(".fpw-label").textContent), ["#1", "#2"]);
  const facts = cells.map((c) => [...c.querySelectorAll(".fpw-fact")].map((f) => f.textContent));
  assert.ok(facts[0].includes("Start image lake.jpg") && facts[0].includes("No end image"), facts[0]);
  assert.ok(facts[1].includes("Start image beach.jpg") && facts[1].includes("Loop"), facts[1]);
});
