// The inputs: image slots, prompt, negative prompt, duration with its price, Generate and
// Cancel.

import { button, h } from "../dom.js";
import { price } from "../format.js";
import { inFlight, scope } from "../scope.js";
import { mountSlots } from "./slots.js";

/** @type {import("../types.js").Panel} */
export function mountInputs(ctx, box) {
  const s = scope(ctx.model);
  const { id, get, save, send } = ctx;
  /** @param {string} label @param {HTMLElement} control @param {HTMLElement} [extra] */
  const field = (label, control, extra) =>
    h("div.fpw-field", {}, h("label", { for: control.id, text: label }), control, extra);
  const prompt = /** @type {HTMLTextAreaElement} */ (h("textarea.fpw-prompt", {
    id: `${id}-prompt`,
    rows: 3,
    maxlength: get("_limits").max_prompt_chars,
    placeholder: "What should happen? e.g. “the camera slowly zooms in”",
    "aria-keyshortcuts": "Control+Enter Meta+Enter",
  }));
  const negative = /** @type {HTMLTextAreaElement} */ (h("textarea.fpw-negative", {
    id: `${id}-neg`, rows: 1, placeholder: "What to avoid (optional)",
  }));
  const dur = /** @type {HTMLInputElement} */ (h("input.fpw-duration", {
    id: `${id}-dur`, type: "range", step: 1,
  }));
  const durOut = h("output.fpw-cost", { for: dur.id, "aria-live": "polite" });
  const generate = button("Generate", {
    class: "fpw-generate fpw-primary", "aria-describedby": `${id}-why`,
  });
  const cancel = button("Cancel", { class: "fpw-cancel", disabled: true });
  const why = h("span.fpw-why", { id: `${id}-why` });
  const inputError = h("p.fpw-input-error", { role: "alert" });
  const slotBox = h("div.fpw-slots");
  box.append(h("section.fpw-inputs", { "aria-label": "Inputs" },
    slotBox,
    field("Prompt", prompt),
    field("Negative prompt", negative),
    field("Duration", dur, durOut),
    h("div.fpw-actions", {}, generate, cancel),
    why,
    inputError));
  /** @param {string} [message] */
  const say = (message) => {
    inputError.textContent = message || "";
  };
  const request = inFlight(s, id, updateGenerate);
  s.defer(mountSlots(ctx, slotBox, say));

  s.on(prompt, "input", () => {
    save("prompt", prompt.value);
    updateGenerate();
  });
  s.on(negative, "input", () => save("negative_prompt", negative.value));
  s.on(dur, "input", () => {
    updateCost(Number(dur.value));
    save("duration", Number(dur.value));
  });
  s.on(prompt, "keydown", (e) => {
    if (e.key !== "Enter" || !(e.ctrlKey || e.metaKey)) return;
    e.preventDefault();
    doGenerate();
  });
  s.on(generate, "click", () => doGenerate());
  s.on(cancel, "click", () => send({ type: "cancel", run_id: get("status")?.run_id }));

  /** Why Generate is disabled now ("" when it is not). */
  function whyNot() {
    if (request.id || get("busy")) return "A submission is in flight…";
    if (!get("_start_image_info")) return "Add a start image to generate.";
    return prompt.value.trim() ? "" : "Write a prompt to generate.";
  }
  function updateGenerate() {
    why.textContent = whyNot();
    generate.disabled = !!why.textContent;
    ctx.root.dataset.busy = String(!!(request.id || get("busy")));
  }
  function doGenerate() {
    if (whyNot()) return;
    const request_id = request.start();
    updateGenerate();
    say("");
    send({
      type: "generate", request_id, prompt: prompt.value, negative_prompt: negative.value,
      duration: Number(dur.value),
    });
  }
  const updateCost = (d = get("duration")) => {
    durOut.textContent = `${d} s${price(get, d)}`;
  };
  /** A trait into a text field, unless the person is typing in it. */
  const mirror = (/** @type {HTMLTextAreaElement} */ el, /** @type {string} */ k) => {
    if (document.activeElement !== el && el.value !== get(k)) el.value = get(k) ?? "";
  };
  function sync() {
    mirror(prompt, "prompt");
    mirror(negative, "negative_prompt");
    dur.min = get("_min_duration");
    dur.max = get("_max_duration");
    if (String(dur.value) !== String(get("duration"))) dur.value = get("duration");
    updateCost();
    updateGenerate();
  }
  const syncCancel = () => {
    cancel.disabled = !get("status")?.running;
  };
  s.messages({
    generated(msg) {
      if (request.answers(msg)) updateGenerate();
    },
    error(msg) {
      if (request.answers(msg)) updateGenerate();
      say([msg.message, msg.hint].filter(Boolean).join(" "));
    },
  });
  s.follow("prompt negative_prompt duration _cost_per_second _min_duration _max_duration busy", sync);
  s.watch("_start_image_info", updateGenerate);
  s.follow("status", syncCancel);
  s.follow("_input_error", () => say(get("_input_error")));
  return s.close;
}
