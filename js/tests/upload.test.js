// Browser -> kernel uploads go in chunks no bigger than the model's chunk_bytes; an image
// the browser cannot bring under max_upload_bytes is refused with the "from Python" hint.
import { test, afterEach } from "node:test";
import assert from "node:assert/strict";
import { setupDom, FakeModel, byName, flush } from "./fake.js";

setupDom();
const widget = (await import("../src/widget.js")).default;
const { sendInChunks } = await import("../src/uploads.js");

let el, model, cleanup;
function mount(state) {
  model = new FakeModel(state);
  el = document.createElement("div");
  document.body.append(el);
  cleanup = widget.render({ model, el });
  return el;
}
afterEach(() => { cleanup?.(); el?.remove(); cleanup = null; });

const LIMITS = { fps: 30, max_side: 1280, max_prompt_chars: 2000, max_compared: 4, chunk_bytes: 1000, max_upload_bytes: 5000 };
function choose(root, name, bytes, type = "image/png") {
  const input = byName(root, name)[0];
  const file = new File([bytes], "photo.png", { type });
  Object.defineProperty(input, "files", { value: [file], configurable: true });
  input.dispatchEvent(new Event("change", { bubbles: true }));
}
const pattern = (n) => Uint8Array.from({ length: n }, (_, i) => i % 251);

test("an upload bigger than one chunk goes as several messages the kernel can join", async () => {
  // jsdom has no createImageBitmap: the file goes as it is, as for a format the browser cannot decode.
  const root = mount({ _limits: LIMITS });
  const bytes = pattern(2500);
  choose(root, "End image", bytes);
  await flush(); await flush();
  const up = model.messages("upload");
  assert.equal(up.length, 3);
  const ids = new Set(up.map((m) => m.content.upload_id));
  assert.equal(ids.size, 1, "one upload id for all its chunks");
  up.forEach((m, i) => {
    assert.equal(m.content.slot, "end");
    assert.deepEqual([m.content.index, m.content.count, m.content.total], [i, 3, 2500]);
    assert.ok(m.buffers[0].byteLength <= LIMITS.chunk_bytes, `chunk ${i} is ${m.buffers[0].byteLength} bytes`);
  });
  const joined = new Uint8Array(up.flatMap((m) => [...new Uint8Array(m.buffers[0])]));
  assert.deepEqual(joined, bytes);
});

test("an image the browser cannot shrink under the limit is refused, never sent", async () => {
  const root = mount({ _limits: LIMITS });
  choose(root, "Start image", pattern(6000));
  await flush(); await flush();
  assert.equal(model.messages("upload").length, 0, "nothing was sent");
  const said = root.querySelector(".fpw-input-error").textContent;
  assert.match(said, /too large to send from the browser/);
  assert.match(said, /set widget\.start_image from Python/);
});

test("a small upload is one message with the whole image", async () => {
  const root = mount({ _limits: LIMITS });
  choose(root, "Start image", pattern(700), "image/jpeg");
  await flush(); await flush();
  const up = model.messages("upload");
  assert.equal(up.length, 1);
  assert.deepEqual([up[0].content.index, up[0].content.count, up[0].content.total], [0, 1, 700]);
});

test("sendInChunks cuts exactly at the chunk size and sends at least one message", () => {
  const sent = [];
  const send = (msg, buffers) => sent.push({ msg, size: buffers[0].byteLength });
  sendInChunks(send, { type: "upload" }, new ArrayBuffer(2048), 1024);
  assert.deepEqual(sent.map((s) => s.size), [1024, 1024]);
  sent.length = 0;
  sendInChunks(send, { type: "upload" }, new ArrayBuffer(0), 1024);
  assert.deepEqual(sent.map((s) => [s.size, s.msg.count]), [[0, 1]]);
});
