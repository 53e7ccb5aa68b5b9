// No key pressed inside the widget reaches the notebook around it (tests/browser/test_keys.py
// checks the same in a real JupyterLab).
import { test, afterEach } from "node:test";
import assert from "node:assert/strict";
import { setupDom, FakeModel, byName } from "./fake.js";

setupDom();
const widget = (await import("../src/widget.js")).default;

let el, cleanup;
afterEach(() => { cleanup?.(); el?.remove(); cleanup = null; });

test("the root asks Lumino to skip its shortcuts, and no keydown leaves it", () => {
  const model = new FakeModel({ _start_image_info: { name: "a.jpg" }, prompt: "zoom in",
    _history: [{ id: "r1", stage: "completed", prompt: "p", duration: 10, has_video: true }] });
  el = document.createElement("div");
  document.body.append(el);
  cleanup = widget.render({ model, el });
  const root = el.firstElementChild;
  assert.equal(root.getAttribute("data-lm-suppress-shortcuts"), "true");
  const outside = [];
  const note = (e) => outside.push(`${e.type} ${e.key}`);
  document.addEventListener("keydown", note);
  document.addEventListener("keypress", note);
  try {
    const controls = [byName(root, "Duration")[0], byName(root, "Prompt")[0], root.querySelector(".fpw-card-check"),
      byName(root, "Generate")[0]];
    for (const control of controls) {
      for (const key of ["ArrowLeft", "ArrowRight", "a", "d", "Escape", "Enter"]) {
        control.dispatchEvent(new KeyboardEvent("keydown", { key, bubbles: true }));
        control.dispatchEvent(new KeyboardEvent("keypress", { key, bubbles: true }));
      }
    }
    assert.deepEqual(outside, [], "keys reached the document");
    // Lumino matches selectors like ".jp-mod-commandMode :focus" on the focused control
    // itself: each control carries the mark once it has the focus.
    for (const control of controls) {
      control.focus();
      assert.equal(document.activeElement, control);
      assert.equal(control.getAttribute("data-lm-suppress-shortcuts"), "true", control.className);
    }
  } finally {
    document.removeEventListener("keydown", note);
    document.removeEventListener("keypress", note);
  }
  cleanup();
  cleanup = null;
  // A closed view holds no key back: its (detached) root, put back in the page, lets them through.
  document.body.append(root);
  const after = [];
  const spy = (e) => after.push(e.key);
  document.addEventListener("keydown", spy);
  root.append(document.createElement("input"));
  root.lastChild.dispatchEvent(new KeyboardEvent("keydown", { key: "a", bubbles: true }));
  document.removeEventListener("keydown", spy);
  root.remove();
  assert.deepEqual(after, ["a"]);
});
