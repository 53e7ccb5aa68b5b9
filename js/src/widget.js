// framepack_widgets' widget: the anywidget entry. render() lays out the view and mounts its
// panels; each panel (panels/*.js) builds its part, follows the model and returns its
// cleanup. State comes in traits, bytes in message buffers (widget/_protocol.py lists
// both). Bundled by js/build.mjs into framepack_widgets/static/widget.js.

import { h } from "./dom.js";
import { context } from "./context.js";
import { keepKeysInside } from "./keys.js";
import { mountComparison } from "./panels/comparison.js";
import { mountHeader } from "./panels/header.js";
import { mountHistory } from "./panels/history.js";
import { mountInputs } from "./panels/inputs.js";
import { mountQueued } from "./panels/queued.js";
import { mountResult } from "./panels/result.js";
import { mountStatus } from "./panels/status.js";
import { mountSweep } from "./panels/sweep.js";
import { mountTimeline } from "./panels/timeline.js";

/** Under the inputs and the result, in this order: a new panel slots in here. */
const BELOW = [mountSweep, mountQueued, mountTimeline, mountHistory, mountComparison];

/**
 * Draw one view of the widget into `el`; returns the cleanup that undoes it all.
 * @param {{ model: import("./types.js").Model, el: HTMLElement }} view
 */
function render({ model, el }) {
  const root = h("div.fpw-root");
  el.replaceChildren(root);
  const ctx = context(model, root);
  /** @type {(() => void)[]} */
  const cleanups = [ctx.media.close, keepKeysInside(root)];
  /** @param {import("./types.js").Panel} panel @param {HTMLElement} box */
  const mount = (panel, box) => cleanups.push(panel(ctx, box));

  mount(mountHeader, root);
  const main = h("div.fpw-main");
  const output = h("section.fpw-output", { "aria-label": "Result" });
  root.append(main);
  mount(mountInputs, main);
  main.append(output);
  mount(mountStatus, output);
  mount(mountResult, output);
  for (const panel of BELOW) mount(panel, root);

  ctx.send({ type: "hello" });
  return () => {
    for (const cleanup of cleanups.reverse()) cleanup();
    el.replaceChildren();
  };
}

// All state is per view: nothing per model.
export default { initialize() {}, render };
