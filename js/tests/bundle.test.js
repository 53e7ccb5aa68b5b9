// The shipped files themselves (framepack_widgets/static/, built by js/build.mjs): the
// minified widget module renders and cleans up as anywidget drives it, and the gallery
// page's script draws a gallery from the page's data.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { JSDOM } from "jsdom";
import { setupDom, FakeModel, byName } from "./fake.js";

const STATIC = fileURLToPath(new URL("../../framepack_widgets/static/", import.meta.url));
/** @param {string} name */
function built(name) {
  const path = STATIC + name;
  assert.ok(existsSync(path), `${path} is missing: build it with \`npm run build\` in js/ (or bash .ci/setup)`);
  return readFileSync(path, "utf8");
}

const env = setupDom();

test("the built widget.js is what anywidget needs: a default export {initialize, render} that draws the widget", async () => {
  const code = built("widget.js");
  // anywidget imports the module from a URL of its text, as this does.
  const widget = (await import(`data:text/javascript;base64,${Buffer.from(code).toString("base64")}`)).default;
  assert.equal(typeof widget.initialize, "function");
  assert.equal(typeof widget.render, "function");
  const model = new FakeModel({ _start_image_info: { name: "cat.jpg", width: 640, height: 480 } });
  const el = document.createElement("div");
  document.body.append(el);
  const cleanup = widget.render({ model, el });
  const root = el.querySelector(".fpw-root");
  assert.ok(root, "the widget's root is drawn");
  assert.equal(root.getAttribute("data-lm-suppress-shortcuts"), "true");
  assert.equal(model.messages("hello").length, 1);
  const prompt = byName(root, "Prompt")[0];
  prompt.value = "the camera zooms in";
  prompt.dispatchEvent(new Event("input", { bubbles: true }));
  const generate = byName(root, "Generate")[0];
  assert.equal(generate.disabled, false);
  generate.click();
  assert.equal(model.messages("generate")[0].content.prompt, "the camera zooms in");
  model.update({ status: { run_id: "r1", stage: "completed", running: false, has_video: true } });
  const nonce = model.messages("video")[0].content.nonce;
  model.custom({ type: "video", run_id: "r1", nonce, index: 0, count: 1, size: 3, mime: "video/mp4" }, [new Uint8Array([1, 2, 3])]);
  assert.match(root.querySelector("video.fpw-video").getAttribute("src"), /^blob:/);
  cleanup();
  assert.equal(model.listenerCount(), 0, "the cleanup removes every listener");
  assert.equal(el.childElementCount, 0);
  assert.deepEqual(env.created.map((c) => c.url).filter((u) => !env.revoked.includes(u)), []);
});

test("the built widget.css styles the root with the theme's content font size", () => {
  const css = built("widget.css");
  assert.ok(css.startsWith(".fpw-root{"), "the root's rules come first");
  assert.ok(/font-size:\s*var\(--jp-content-font-size1,\s*14px\)/.test(css), "the root follows the content font size");
});

test("the built gallery.js draws the gallery from the page's data when inlined after it", () => {
  const data = {
    title: "FramePack: 2 runs", exported_at: "2026-11-30T10:05:00+00:00", fps: 30, max_compared: 4, diffs: {},
    runs: ["a", "b"].map((id, p) => ({ run_id: id, p, prompt: `prompt ${id}`, stage: "completed", duration: 10,
      cost_usd: 0.3, simulated: true, video: `videos/${id}.mp4`, poster: `posters/${id}.jpg` })),
  };
  const page = new JSDOM(`<!doctype html><main id="fpw-gallery" class="fpw-root fpw-gallery"></main>`
    + `<script type="application/json" id="fpw-gallery-data">${JSON.stringify(data)}</script>`, { runScripts: "outside-only" });
  page.window.HTMLMediaElement.prototype.pause = () => {};
  page.window.eval(built("gallery.js"));
  const main = page.window.document.getElementById("fpw-gallery");
  assert.equal(main.querySelectorAll(".fpw-gallery-card").length, 2);
  assert.equal(main.querySelector("video").getAttribute("src"), "videos/a.mp4");
  assert.equal(main.querySelector("h1").textContent, "FramePack: 2 runs");
  assert.ok(main.querySelector("section.fpw-compare"), "the widget's comparison panel is in the page");
});
