// 2 to 4 runs side by side, played in lock-step, with what differs between them. The
// shared gallery shows this same panel, fed by its page's data instead of a kernel.

import { button, h, setSrc, video } from "../dom.js";
import { exportNote } from "../export-note.js";
import { stageName } from "../format.js";
import { scope } from "../scope.js";
import { SyncController } from "../sync.js";
import { videoNote } from "../video-note.js";

/** The inputs a comparison may differ in, as the kernel names them. */
const DIFF_KEYS = ["prompt", "negative_prompt", "duration", "start_image", "end_image"];

/**
 * A prompt's word diff ([op, text] with op "+", "-" or "="), words marked as added or removed.
 * @param {[string, string][] | undefined} ops
 */
export function diffLine(ops) {
  const words = (ops || []).map(([op, text]) => {
    if (op === "+") return h("ins.fpw-add", { text, title: "added" });
    if (op === "-") return h("del.fpw-del", { text, title: "removed" });
    return h("span", { text });
  });
  return h("p.fpw-diff", {}, ...words.flatMap((e, i) => (i ? [" ", e] : [e])));
}

/** @type {import("../types.js").Panel} */
export function mountComparison(ctx, box) {
  const s = scope(ctx.model);
  const { get, send, media } = ctx;
  const fps = get("_limits").fps;
  const summary = h("p.fpw-diff-summary");
  const grid = h("div.fpw-grid");
  const playBtn = button("Play", { class: "fpw-play", disabled: true });
  const prevBtn = button("Previous frame", {
    class: "fpw-prev", title: `Back 1/${fps} s (key: ,)`, disabled: true,
  });
  const nextBtn = button("Next frame", {
    class: "fpw-next", title: `Forward 1/${fps} s (key: .)`, disabled: true,
  });
  const seek = /** @type {HTMLInputElement} */ (h("input.fpw-seek", {
    type: "range", "aria-label": "Seek", min: 0, max: 0, step: 1 / fps, value: 0, disabled: true,
  }));
  const rates = [0.25, 0.5, 1, 1.5, 2].map((r) =>
    h("option", { value: r, selected: r === 1, text: `${r}×` }));
  const speed = /** @type {HTMLSelectElement} */ (
    h("select.fpw-speed", { "aria-label": "Playback speed" }, ...rates)
  );
  const loopBox = /** @type {HTMLInputElement} */ (h("input", { type: "checkbox", checked: true }));
  const closeBtn = button("Close comparison", { class: "fpw-close" });
  const exportBtn = button("Export MP4", {
    class: "fpw-export", title: "One side-by-side MP4, labelled with what differs",
  });
  const section = h("section.fpw-compare", { "aria-label": "Comparison", hidden: true },
    h("div.fpw-history-head", {}, h("h3.fpw-h", { text: "Comparison" }), exportBtn,
      exportNote(s, exportBtn, "comparison"), closeBtn),
    summary,
    grid,
    h("div.fpw-toolbar", {}, playBtn, prevBtn, nextBtn, seek, speed,
      h("label.fpw-loop", { title: "Play the comparison again and again" }, loopBox, " Repeat")));
  box.append(section);
  /** @type {string[] | null} the runs shown */
  let ids = null;
  /** @type {SyncController | null} */
  let sync = null;
  /** @type {AbortController | null} aborts the grid's own listeners */
  let cells = null;
  /** @type {Map<string, ReturnType<typeof videoNote>>} */
  let notes = new Map();
  let seeking = false;
  const reset = () => {
    sync?.destroy();
    sync = null;
    cells?.abort();
    cells = null;
  };
  s.defer(reset);

  function build() {
    const cmp = get("_comparison") || {};
    const now = cmp.run_ids || [];
    if (ids && now.join() === ids.join()) return fill();
    reset();
    ids = now.length ? now : null;
    section.hidden = !ids;
    section.dataset.ready = "false";
    grid.replaceChildren();
    notes = new Map();
    if (!ids) return;
    cells = new AbortController();
    const d = cmp.differs || {};
    const diffs = DIFF_KEYS.filter((k) => d[k]).map((k) => k.replace("_", " "));
    summary.textContent = diffs.length
      ? `What differs: ${diffs.join(", ")}.`
      : "These runs have the same inputs.";
    for (const item of cmp.items || []) grid.append(cell(item, d));
    fill();
    section.scrollIntoView?.({ block: "nearest" });
  }
  /**
   * One run's cell: label, prompt diff, the facts that differ, its video.
   * @param {any} item @param {any} d what differs
   */
  function cell(item, d) {
    /** @param {boolean} changed @param {string} text */
    const fact = (changed, text) =>
      h("span", { class: changed ? "fpw-fact fpw-changed" : "fpw-fact", text });
    /** An image by its name, else the start of its hash. @param {any} i */
    const image = (i) => i?.name || i?.sha?.slice(0, 6) || "?";
    const facts = [
      d.negative_prompt && fact(true, `Negative: ${item.negative_prompt || "(none)"}`),
      fact(d.duration, `${item.duration} s`),
      d.start_image && fact(true, `Start image ${image(item.start_image)}`),
      d.end_image && fact(true, item.loop ? "Loop" : item.end_image
        ? `End image ${image(item.end_image)}`
        : "No end image"),
    ];
    const v = video({ class: "fpw-cmp-video", preload: "auto", "data-run-id": item.run_id });
    const note = videoNote(media, "fpw-cell-note");
    notes.set(item.run_id, note);
    v.addEventListener("loadedmetadata", () => {
      v.dataset.ready = "true";
      maybeSync();
    }, { signal: /** @type {AbortController} */ (cells).signal });
    return h("figure.fpw-cell", { "data-run-id": item.run_id },
      h("figcaption", {},
        h("strong.fpw-label", { text: item.label }),
        diffLine(item.prompt),
        h("div.fpw-facts", {}, ...facts)),
      v,
      note.el);
  }
  /** Each cell's video, or why it has none yet. */
  function fill() {
    const runs = new Map(ctx.runs().map((/** @type {any} */ c) => [c.id, c]));
    for (const fig of grid.querySelectorAll(".fpw-cell")) {
      const rid = /** @type {HTMLElement} */ (fig).dataset.runId || "";
      const v = /** @type {HTMLVideoElement} */ (fig.querySelector("video"));
      const note = /** @type {ReturnType<typeof videoNote>} */ (notes.get(rid));
      const url = media.video(rid);
      const poster = media.poster(rid);
      const c = runs.get(rid);
      if (poster) v.setAttribute("poster", poster);
      if (url) setSrc(v, url, ctx.urlRules);
      if (url || !c || c.has_video) note.follow(rid);
      else note.say(`No video yet (${stageName(c.stage)}).`);
    }
    maybeSync();
  }
  /** Once every video has its metadata: the lock-step controller and its toolbar. */
  function maybeSync() {
    const vids = [...grid.querySelectorAll("video")];
    if (sync || vids.length < 2 || !vids.every((v) => v.dataset.ready === "true")) return;
    const c = (sync = new SyncController(vids, { fps }));
    c.setRate(Number(speed.value));
    c.setLoop(loopBox.checked);
    seek.max = String(c.leader.duration || 0);
    [playBtn, prevBtn, nextBtn, seek].forEach((b) => {
      b.disabled = false;
    });
    section.dataset.ready = "true";
    const update = () => {
      playBtn.textContent = c.paused ? "Play" : "Pause";
      if (!seeking) seek.value = String(c.leader.currentTime);
    };
    const opts = { signal: /** @type {AbortController} */ (cells).signal };
    for (const ev of ["play", "pause", "timeupdate", "seeked"]) {
      c.leader.addEventListener(ev, update, opts);
    }
    update();
  }
  s.on(playBtn, "click", () => sync?.toggle());
  s.on(prevBtn, "click", () => sync?.step(-1));
  s.on(nextBtn, "click", () => sync?.step(1));
  s.on(seek, "input", () => {
    seeking = true;
    sync?.seek(Number(seek.value));
  });
  s.on(seek, "change", () => {
    seeking = false;
  });
  s.on(speed, "change", () => sync?.setRate(Number(speed.value)));
  s.on(loopBox, "change", () => sync?.setLoop(loopBox.checked));
  s.on(closeBtn, "click", () => send({ type: "compare", run_ids: [] }));
  s.on(exportBtn, "click", () => send({ type: "export", what: "comparison" }));
  s.on(section, "keydown", (e) => {
    // Fields keep their keys, and Space on a button presses that button.
    const field = e.target.matches?.("input, select, textarea");
    if (field || (e.key === " " && e.target.matches?.("button"))) return;
    if (e.key === " " || e.key === "k") {
      e.preventDefault();
      sync?.toggle();
    } else if (e.key === ",") sync?.step(-1);
    else if (e.key === ".") sync?.step(1);
  });
  s.defer(media.subscribe((what, rid) => {
    if (what !== "poster" && ids?.includes(rid)) fill();
  }));
  s.watch("_history", () => ids && fill()); // a compared run may have just finished
  s.follow("_comparison", build);
  return s.close;
}
