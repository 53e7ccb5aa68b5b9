import { test, beforeEach, afterEach } from "node:test";
import assert from "node:assert/strict";
import { setupDom, FakeModel, byName, flush, sources, fakeTimeouts } from "./fake.js";

const env = setupDom();
const widget = (await import("../src/widget.js")).default;
const { safeUrl } = await import("../src/dom.js");
const { downscale } = await import("../src/uploads.js");

let el, model, cleanup;
function mount(state) {
  model = new FakeModel(state);
  el = document.createElement("div");
  document.body.append(el);
  cleanup = widget.render({ model, el });
  return el;
}
beforeEach(() => { env.created.length = 0; env.revoked.length = 0; });
afterEach(() => { cleanup?.(); el?.remove(); cleanup = null; });

const IMG = { name: "cat.jpg", width: 640, height: 480, size: 12345 };
const one = (root, name) => { const found = byName(root, name); assert.equal(found.length, 1, `exactly one control named "${name}" (found ${found.length})`); return found[0]; };
function type(input, value) { input.value = value; input.dispatchEvent(new Event("input", { bubbles: true })); }

test("every control has its exact accessible name and the right kind", () => {
  const root = mount();
  assert.equal(one(root, "Start image").type, "file");
  assert.equal(one(root, "End image").type, "file");
  assert.equal(one(root, "Prompt").tagName, "TEXTAREA");
  assert.equal(one(root, "Negative prompt").tagName, "TEXTAREA");
  const dur = one(root, "Duration");
  assert.deepEqual([dur.type, dur.min, dur.max, dur.step], ["range", "10", "30", "1"]);
  for (const name of ["Generate", "Cancel", "Compare"]) assert.equal(one(root, name).tagName, "BUTTON");
  assert.ok(root.querySelector(".fpw-status[role=status][aria-live=polite]"));
  assert.ok(root.querySelectorAll("[class]").length > 10);
  for (const e of root.querySelectorAll("[class]")) for (const c of e.classList) assert.match(c, /^fpw-/);
  assert.equal(model.messages("hello").length, 1, "a new view asks the kernel for the slot thumbnails");
});

test("the simulator badge says the videos are synthetic; PiAPI shows the balance", () => {
  let root = mount();
  assert.match(root.querySelector(".fpw-badge").textContent, /synthetic/);
  assert.equal(root.querySelector(".fpw-root").dataset.backend, "simulator");
  cleanup(); el.remove();
  root = mount({ backend: "piapi", _backend_label: "PiAPI", balance: "$12.50" });
  assert.equal(root.querySelector(".fpw-badge").textContent, "PiAPI");
  assert.equal(root.querySelector(".fpw-balance").textContent, "Balance: $12.50");
});

test("Generate is disabled until there is a prompt and a start image, and while busy", () => {
  const root = mount();
  const gen = one(root, "Generate"), prompt = one(root, "Prompt");
  assert.equal(gen.disabled, true);
  type(prompt, "a cat turns its head");
  assert.equal(model.get("prompt"), "a cat turns its head", "typing syncs the prompt trait");
  assert.ok(model.saves > 0);
  assert.equal(gen.disabled, true, "still no start image");
  model.update({ _start_image_info: IMG });
  assert.equal(gen.disabled, false);
  type(prompt, "   ");
  assert.equal(gen.disabled, true, "a blank prompt is not a prompt");
  type(prompt, "zoom in");
  model.update({ busy: true });
  assert.equal(gen.disabled, true);
  model.update({ busy: false });
  assert.equal(gen.disabled, false);
});

test("a double click (or click + Ctrl+Enter) sends one generate request", () => {
  const root = mount({ _start_image_info: IMG });
  const gen = one(root, "Generate"), prompt = one(root, "Prompt");
  type(prompt, "the camera pans left");
  gen.click();
  gen.click();
  prompt.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter", ctrlKey: true, bubbles: true }));
  const sent = model.messages("generate");
  assert.equal(sent.length, 1);
  assert.equal(sent[0].content.prompt, "the camera pans left");
  assert.equal(sent[0].content.duration, 10);
  assert.ok(sent[0].content.request_id);
  assert.equal(gen.disabled, true);
  model.custom({ type: "generated", request_id: sent[0].content.request_id, run_id: "r1" });
  assert.equal(gen.disabled, false);
  prompt.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter", metaKey: true, bubbles: true }));
  const again = model.messages("generate");
  assert.equal(again.length, 2, "Cmd+Enter generates");
  assert.notEqual(again[1].content.request_id, again[0].content.request_id);
});

test("the duration slider updates the cost live and syncs the trait", () => {
  const root = mount({ _cost_per_second: 0.03 });
  const dur = one(root, "Duration"), out = root.querySelector(".fpw-cost");
  assert.equal(out.textContent, "10 s \u00b7 $0.30");
  dur.value = "23";
  dur.dispatchEvent(new Event("input", { bubbles: true }));
  assert.equal(out.textContent, "23 s \u00b7 $0.69");
  assert.equal(model.get("duration"), 23);
  model.update({ session_cost: 0.9 });
  assert.match(root.querySelector(".fpw-session").textContent, /\$0\.90/);
});

const EVIL = "<img src=x onerror=\"globalThis.pwned=1\">";
test("status, cards and errors are rendered as text, never as HTML", () => {
  const root = mount();
  const before = root.querySelectorAll("img").length;
  model.update({
    status: { run_id: "r1", stage: "failed", running: false, elapsed: 12, error: EVIL, hint: EVIL, logs: [EVIL, "<b>bold</b>"] },
    _history: [{ id: "r1", stage: "failed", prompt: EVIL, negative_prompt: "", duration: 10, cost: 0.3, wall: 12, backend: "simulator", has_video: false }],
    _input_error: EVIL,
  });
  model.custom({ type: "error", message: EVIL });
  assert.equal(root.querySelector(".fpw-error").textContent, EVIL);
  assert.equal(root.querySelector(".fpw-hint").textContent, EVIL);
  assert.match(root.querySelector(".fpw-logs").textContent, /<b>bold<\/b>/);
  assert.equal(root.querySelector(".fpw-stage").textContent, "Failed");
  assert.equal(root.querySelector(".fpw-card-prompt").textContent, EVIL);
  assert.equal(root.querySelectorAll("b").length, 0);
  assert.equal(root.querySelectorAll("img[src=x]").length, 0);
  assert.equal(root.querySelectorAll("img").length, before + 1, "only the card's own thumbnail was added");
  assert.equal(globalThis.pwned, undefined);
});

test("no module in js/src uses innerHTML or other HTML parsers", () => {
  const files = sources();
  assert.ok(files.length > 10, "the modules were found");
  for (const { path, text } of files) {
    assert.doesNotMatch(text, /innerHTML|outerHTML|insertAdjacentHTML|document\.write|createContextualFragment|DOMParser|new Function|eval\(/, path);
  }
});

test("src validation: only http(s) and blob URLs", () => {
  assert.equal(safeUrl("javascript:alert(1)"), null);
  assert.equal(safeUrl(" JavaScript:alert(1)"), null);
  assert.equal(safeUrl("data:image/png;base64,AAAA"), null);
  assert.equal(safeUrl("vbscript:x"), null);
  assert.equal(safeUrl(42), null);
  assert.equal(safeUrl("https://example.com/a.jpg"), "https://example.com/a.jpg");
  assert.equal(safeUrl("blob:http://x/123"), "blob:http://x/123");
  assert.equal(safeUrl("blob:http://x/123", { blob: false }), null);
  const root = mount();
  model.custom({ type: "image", slot: "start", url: "javascript:alert(1)" });
  assert.equal(root.querySelector(".fpw-slot-start .fpw-thumb").hasAttribute("src"), false);
  const urlField = one(root, "Start image URL");
  urlField.value = "javascript:alert(1)";
  urlField.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter", bubbles: true }));
  assert.equal(model.messages("image_url").length, 0);
  assert.match(root.querySelector(".fpw-input-error").textContent, /http/);
  urlField.value = "https://example.com/cat.png";
  urlField.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter", bubbles: true }));
  assert.deepEqual(model.messages("image_url")[0].content, { type: "image_url", slot: "start", url: "https://example.com/cat.png" });
});

test("a finished run's video arrives in chunks and plays from a blob URL, revoked on cleanup", async () => {
  const root = mount();
  model.update({ status: { run_id: "r1", stage: "processing", running: true, elapsed: 3, percent: null, eta: 20 } });
  assert.match(root.querySelector(".fpw-percent").textContent, /estimate/);
  assert.equal(root.querySelector("video.fpw-video").hidden, true);
  model.update({ status: { run_id: "r1", stage: "completed", running: false, elapsed: 14, percent: 100, has_video: true } });
  const asks = model.messages("video");
  assert.equal(asks.length, 1);
  assert.equal(asks[0].content.run_id, "r1");
  const nonce = asks[0].content.nonce;
  const bytes = new Uint8Array(1000).map((_, i) => i % 251);
  model.custom({ type: "video", run_id: "r1", nonce, index: 1, count: 2, size: 1000, mime: "video/mp4" }, [bytes.slice(600)]);
  assert.equal(root.querySelector("video.fpw-video").hasAttribute("src"), false, "waits for every chunk");
  model.custom({ type: "video", run_id: "r1", nonce, index: 0, count: 2, size: 1000, mime: "video/mp4" }, [bytes.slice(0, 600)]);
  const video = root.querySelector("video.fpw-video");
  const made = env.created.find((c) => c.blob.type === "video/mp4");
  assert.ok(made);
  assert.equal(made.blob.size, 1000);
  const got = new Uint8Array(await made.blob.arrayBuffer());
  assert.deepEqual([...got.slice(595, 605)], [...bytes.slice(595, 605)], "chunks reassembled in order");
  assert.equal(video.getAttribute("src"), made.url);
  assert.equal(video.hidden, false);
  assert.ok(video.hasAttribute("controls") && video.hasAttribute("loop") && video.hasAttribute("playsinline"));
  assert.equal(video.dataset.runId, "r1");
  video.dispatchEvent(new Event("loadedmetadata"));
  assert.equal(video.dataset.ready, "true");
  model.custom({ type: "poster", run_id: "r1", mime: "image/jpeg" }, [new Uint8Array([1, 2, 3])]);
  const poster = env.created.at(-1).url;
  assert.equal(video.getAttribute("poster"), poster);
  model.update({ status: { run_id: "r1", stage: "completed", running: false, elapsed: 14, has_video: true } });
  assert.equal(model.messages("video").length, 1, "the video is requested once per view");
  const listeners = model.listenerCount();
  assert.ok(listeners > 0);
  cleanup();
  cleanup = null;
  assert.ok(env.revoked.includes(made.url), "video blob URL revoked");
  assert.ok(env.revoked.includes(poster), "poster blob URL revoked");
  assert.equal(model.listenerCount(), 0, "model listeners removed");
  assert.equal(el.childElementCount, 0);
});

test("the elapsed time is computed in the browser, not streamed", async () => {
  const root = mount();
  model.update({ status: { run_id: "r1", stage: "pending", running: true, elapsed: 65 } });
  assert.equal(root.querySelector(".fpw-elapsed").textContent, "1:05");
  assert.equal(one(root, "Cancel").disabled, false);
  one(root, "Cancel").click();
  assert.deepEqual(model.messages("cancel")[0].content, { type: "cancel", run_id: "r1" });
  model.update({ status: { run_id: "r1", stage: "cancelled", running: false, elapsed: 70, hint: "Press Generate to start again." } });
  assert.equal(root.querySelector(".fpw-elapsed").textContent, "1:10");
  assert.equal(one(root, "Cancel").disabled, true);
  assert.equal(root.querySelector(".fpw-status").dataset.stage, "cancelled");
});

test("uploading through the Start image input sends the bytes as a buffer", async () => {
  const root = mount();
  const input = one(root, "Start image");
  const file = new File([new Uint8Array([0xff, 0xd8, 0xff, 1, 2, 3])], "photo.jpg", { type: "image/jpeg" });
  Object.defineProperty(input, "files", { value: [file], configurable: true });
  input.dispatchEvent(new Event("change", { bubbles: true }));
  await flush(); await flush();
  const up = model.messages("upload");
  assert.equal(up.length, 1);
  assert.equal(up[0].content.slot, "start");
  assert.equal(up[0].content.name, "photo.jpg");
  assert.equal(up[0].buffers[0].byteLength, 6);
  assert.ok(!("data" in up[0].content), "no bytes in the JSON part");
  // The kernel answers with the normalised image's info and a thumbnail.
  model.update({ _start_image_info: IMG });
  model.custom({ type: "image", slot: "start", name: "photo.jpg", mime: "image/jpeg" }, [new Uint8Array([1])]);
  const thumb = root.querySelector(".fpw-slot-start .fpw-thumb");
  assert.match(thumb.getAttribute("src"), /^blob:/);
  assert.match(root.querySelector(".fpw-slot-start .fpw-slot-meta").textContent, /cat\.jpg · 640×480/);
  one(root, "Remove start image").click();
  assert.deepEqual(model.messages("clear_image")[0].content, { type: "clear_image", slot: "start" });
  model.update({ _start_image_info: null });
  assert.equal(thumb.hasAttribute("src"), false);
});

test("pasting an image into the widget fills the start slot", async () => {
  const root = mount();
  const file = new File([new Uint8Array([1, 2, 3])], "clip.png", { type: "image/png" });
  const ev = new Event("paste", { bubbles: true, cancelable: true });
  ev.clipboardData = { files: [file] };
  one(root, "Prompt").dispatchEvent(ev);
  await flush(); await flush();
  assert.equal(model.messages("upload")[0]?.content.slot, "start");
});

test("the browser downscales big photos to a 1280 px JPEG before sending", async () => {
  const drawn = [];
  globalThis.createImageBitmap = async () => ({ width: 4000, height: 3000, close() {} });
  globalThis.OffscreenCanvas = class {
    constructor(w, h) { this.width = w; this.height = h; }
    getContext() { return { fillRect() {}, drawImage: (...a) => drawn.push(a) }; }
    async convertToBlob({ type, quality }) { return new Blob([new Uint8Array(quality > 0.85 ? 2_000_000 : 300_000)], { type }); }
  };
  try {
    const out = await downscale(new File([new Uint8Array(10)], "big.jpg", { type: "image/jpeg" }), 1280, 512 * 1024);
    assert.equal(out.width, 1280);
    assert.equal(out.height, 960);
    assert.equal(out.mime, "image/jpeg");
    assert.equal(out.buffer.byteLength, 300_000, "re-encoded at lower quality to fit in one message chunk");
    assert.deepEqual(drawn[0].slice(1), [0, 0, 1280, 960]);
  } finally {
    delete globalThis.createImageBitmap;
    delete globalThis.OffscreenCanvas;
  }
});

const card = (id, extra = {}) => ({ id, stage: "completed", prompt: `prompt ${id}`, negative_prompt: "", duration: 10, cost: 0.3, wall: 14.2, backend: "simulator", has_video: true, created: 1, ...extra });

test("history cards: selecting 2 to 4 enables Compare", () => {
  const root = mount({ _history: ["a", "b", "c", "d", "e"].map((x) => card(x)), _history_total: 7 });
  const cards = root.querySelectorAll(".fpw-card");
  assert.equal(cards.length, 5);
  assert.match(cards[0].querySelector(".fpw-card-meta").textContent, /10 s · Done · 0:14 · \$0\.30/);
  assert.deepEqual(model.messages("posters")[0].content.run_ids, ["a", "b", "c", "d", "e"]);
  const compareBtn = one(root, "Compare");
  assert.equal(compareBtn.disabled, true);
  const check = (i) => { const c = cards[i].querySelector("input[type=checkbox]"); c.checked = !c.checked; c.dispatchEvent(new Event("change")); };
  check(0);
  assert.equal(compareBtn.disabled, true);
  check(2);
  assert.deepEqual(model.get("selected"), ["a", "c"]);
  assert.equal(compareBtn.disabled, false);
  check(1); check(3);
  assert.equal(cards[4].querySelector("input").disabled, true, "at most 4");
  compareBtn.click();
  assert.deepEqual(model.messages("compare")[0].content.run_ids, ["a", "c", "b", "d"]);
  assert.equal(root.querySelector(".fpw-older").hidden, false, "older runs can be paged in");
  root.querySelector(".fpw-older").click();
  assert.equal(model.messages("history")[0].content.offset, 5);
  model.custom({ type: "history_page", offset: 5, total: 7, runs: [card("f"), card("g")] });
  assert.equal(root.querySelectorAll(".fpw-card").length, 7);
  assert.equal(root.querySelector(".fpw-older").hidden, true);
  root.querySelector('.fpw-card[data-run-id="b"] .fpw-card-show').click();
  assert.deepEqual(model.messages("show")[0].content, { type: "show", run_id: "b" });
});

test("the comparison grid shows N synced videos and what differs", () => {
  const root = mount({ _history: ["a", "b", "c"].map((x) => card(x)) });
  model.update({
    _comparison: {
      run_ids: ["a", "b", "c"],
      differs: { prompt: true, duration: true, negative_prompt: false, start_image: false, end_image: false },
      items: [
        { run_id: "a", label: "A", prompt: [["=", "a cat walks"]], negative_prompt: "", duration: 10, start_image: { sha: "abc" }, end_image: null },
        { run_id: "b", label: "B", prompt: [["=", "a"], ["-", "cat"], ["+", EVIL], ["=", "walks"]], negative_prompt: "", duration: 20, start_image: { sha: "abc" }, end_image: null },
        { run_id: "c", label: "C", prompt: [["=", "a cat walks"], ["+", "slowly"]], negative_prompt: "", duration: 10, start_image: { sha: "abc" }, end_image: null },
      ],
    },
  });
  const section = root.querySelector(".fpw-compare");
  assert.equal(section.hidden, false);
  const vids = section.querySelectorAll("video");
  assert.equal(vids.length, 3);
  assert.deepEqual([...vids].map((v) => v.dataset.runId), ["a", "b", "c"]);
  assert.match(section.querySelector(".fpw-diff-summary").textContent, /prompt, duration/);
  assert.equal(section.querySelector(".fpw-add").textContent, EVIL);
  assert.equal(section.querySelectorAll("img[src=x]").length, 0);
  assert.equal(section.querySelector(".fpw-del").textContent, "cat");
  assert.deepEqual(model.messages("video").map((m) => m.content.run_id).sort(), ["a", "b", "c"]);
  for (const id of ["a", "b", "c"]) {
    const nonce = model.messages("video").find((m) => m.content.run_id === id).content.nonce;
    model.custom({ type: "video", run_id: id, nonce, index: 0, count: 1, size: 3, mime: "video/mp4" }, [new Uint8Array([1, 2, 3])]);
  }
  assert.ok([...vids].every((v) => /^blob:/.test(v.getAttribute("src"))));
  assert.equal(section.dataset.ready, "false");
  vids.forEach((v) => v.dispatchEvent(new Event("loadedmetadata")));
  assert.equal(section.dataset.ready, "true");
  for (const name of ["Play", "Previous frame", "Next frame", "Seek", "Playback speed"]) assert.equal(one(root, name).disabled, false, name);
  one(root, "Close comparison").click();
  assert.deepEqual(model.messages("compare").at(-1).content.run_ids, []);
  model.update({ _comparison: {} });
  assert.equal(section.hidden, true);
  assert.equal(section.querySelectorAll("video").length, 0);
});

test("render returns a cleanup that leaves no listeners, timers or URLs behind", () => {
  mount({ status: { run_id: "r", stage: "processing", running: true, elapsed: 1 } });
  model.custom({ type: "image", slot: "end", mime: "image/jpeg" }, [new Uint8Array([1])]);
  cleanup();
  cleanup = null;
  assert.equal(model.listenerCount(), 0);
  assert.deepEqual(env.created.map((c) => c.url).filter((u) => !env.revoked.includes(u)), []);
});

test("initialize is exported with render", () => {
  assert.equal(typeof widget.initialize, "function");
  assert.equal(typeof widget.render, "function");
});

test("a view the kernel never answers says so; the first answer clears it", (t) => {
  const clock = fakeTimeouts();
  t.after(clock.restore);
  const root = mount();
  const notice = root.querySelector(".fpw-root > .fpw-notice");
  const view = root.querySelector(".fpw-root");
  clock.tick(4999);
  assert.equal(notice.textContent, "", "a kernel has 5 s to answer hello");
  assert.ok(!view.classList.contains("fpw-quiet"));
  clock.tick(1);
  assert.match(notice.textContent, /No answer from the kernel: run this cell/);
  assert.ok(view.classList.contains("fpw-quiet"), "fpw-quiet: the notebook's snapshot shows");
  model.custom({ type: "hello" });
  assert.equal(notice.textContent, "");
  assert.ok(!view.classList.contains("fpw-quiet"), "an answer brings the widget back");
  model.update({ _notice: "Resumed 2 runs." });
  assert.equal(notice.textContent, "Resumed 2 runs.", "the kernel's own notice still shows");
});

test("a view the kernel answers in time never shows the no-kernel line", (t) => {
  const clock = fakeTimeouts();
  t.after(clock.restore);
  const root = mount();
  model.custom({ type: "hello" });
  clock.tick(10_000);
  assert.equal(root.querySelector(".fpw-root > .fpw-notice").textContent, "");
});
