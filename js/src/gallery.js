// The shared gallery's page: run cards and the widget's own comparison panel (lock-step
// player, toolbar, word diff), with no kernel, network or package behind it. Everything it
// shows is in the page's data and the folder's files; the word diffs were computed in
// Python and written into the data.

import { h, safeUrl } from "./dom.js";
import { clock, excerpt, money, plural, stageName } from "./format.js";
import { mountComparison } from "./panels/comparison.js";

/** The gallery's files are plain relative paths inside its folder: nothing else reaches a src. */
const GALLERY_URLS = { blob: false, local: true, web: false };

/**
 * A model-shaped object for the widget's panels: the page's own state, no kernel behind it.
 * @param {Record<string, any>} state
 * @returns {import("./types.js").Model}
 */
export function galleryModel(state) {
  /** @type {Map<string, Set<Function>>} */
  const handlers = new Map();
  /** @type {import("./types.js").Model} */
  const model = {
    get: (k) => state[k],
    set(k, v) {
      state[k] = v;
      for (const fn of [...(handlers.get(`change:${k}`) || [])]) fn();
    },
    save_changes() {},
    on(name, fn) {
      if (!handlers.has(name)) handlers.set(name, new Set());
      handlers.get(name)?.add(fn);
    },
    off(name, fn) {
      handlers.get(name)?.delete(fn);
    },
    /** The comparison's "Close" asks the kernel to compare nothing; here the page does it. */
    send(/** @type {any} */ msg) {
      if (msg?.type === "compare" && !(msg.run_ids || []).length) model.set("_comparison", {});
    },
  };
  return model;
}

/**
 * What the comparison panel reads, for the runs `ids` of the page's data: each prompt
 * against the first one's, from the diffs Python wrote.
 * @param {any} data
 * @param {string[]} ids
 */
export function galleryComparison(data, ids) {
  const byId = new Map(data.runs.map((/** @type {any} */ r) => [r.run_id, r]));
  const runs = ids.map((id) => byId.get(id)).filter((r) => r && r.video);
  if (runs.length < 2) return {};
  const base = runs[0];
  const items = runs.map((r, i) => ({
    run_id: r.run_id,
    label: r.seq ? `#${r.seq}` : "ABCD"[i],
    stage: r.stage,
    prompt: (i && data.diffs[`${base.p},${r.p}`]) || [["=", r.prompt]],
    negative_prompt: r.negative_prompt,
    duration: r.duration,
    loop: r.loop,
    start_image: r.start_image_sha ? { sha: r.start_image_sha, name: r.start_image_name } : null,
    end_image: r.end_image_sha ? { sha: r.end_image_sha, name: r.end_image_name } : null,
  }));
  /** @param {string} key */
  const differ = (key) => new Set(runs.map((r) => r[key] ?? null)).size > 1;
  return {
    run_ids: items.map((i) => i.run_id),
    items,
    differs: {
      prompt: items.some((i) => i.prompt.some((/** @type {string[]} */ [op]) => op !== "=")),
      negative_prompt: differ("negative_prompt"),
      duration: differ("duration"),
      start_image: differ("start_image_sha"),
      end_image: differ("end_image_sha"),
    },
  };
}

/** @param {string | undefined} iso */
function when(iso) {
  const d = iso ? new Date(iso) : null;
  return d && !Number.isNaN(d.getTime()) ? d.toLocaleString() : "";
}

/**
 * "part 2 of 3" for a timeline segment, counted among the gallery's runs of that timeline.
 * @param {any} run @param {any[]} runs
 */
function partOf(run, runs) {
  const parts = runs
    .filter((r) => r.timeline_id === run.timeline_id)
    .sort((a, b) => (a.segment ?? 0) - (b.segment ?? 0));
  return `part ${parts.indexOf(run) + 1} of ${parts.length}`;
}

/**
 * How a run is named: "#3", its number in the store it came from (else its id's start).
 * @param {any} run
 */
const runName = (run) => (run?.seq ? `#${run.seq}` : run.run_id.slice(0, 8));

/**
 * One run's card: its video (or poster), prompt and the facts of Run.to_dict(); its start
 * image's name when the gallery's runs start from different images; its student in a class.
 * @param {any} run
 * @param {any} data
 * @param {(runId: string, on: boolean) => void} onSelect
 * @param {import("./types.js").UrlRules} urls
 */
function runCard(run, data, onSelect, urls) {
  const short = excerpt(run.prompt, 60) || "(no prompt)";
  const images = new Set(data.runs.map((/** @type {any} */ r) => r.start_image_sha)).size > 1;
  const poster = safeUrl(run.poster || "", urls);
  const src = safeUrl(run.video || "", urls);
  let shown;
  if (src) {
    shown = /** @type {HTMLVideoElement} */ (h("video", {
      class: "fpw-gallery-video", controls: true, loop: true, muted: true, playsinline: true,
      preload: "metadata", poster, src, "aria-label": `Video: ${short}`,
    }));
    shown.muted = true;
  } else if (poster) {
    shown = h("img", { class: "fpw-gallery-poster", src: poster, alt: `Poster: ${short}` });
  } else {
    shown = h("div", { class: "fpw-gallery-none", text: "No video" });
  }
  const facts = [
    ["Student", run.owner],
    ["Run", runName(run)],
    ["Status", stageName(run.stage)],
    ["Start image", images && (run.start_image_name || run.start_image_sha?.slice(0, 8))],
    ["Loop", run.loop && "the video ends on its start image"],
    ["Duration", run.duration ? `${run.duration} s` : ""],
    ["Cost", money(run.cost_usd) + (run.simulated ? " (simulated, nothing charged)" : "")],
    ["Backend", run.simulated ? "Offline simulator (synthetic video)" : "PiAPI"],
    ["Negative prompt", run.negative_prompt],
    ["Created", when(run.created_at)],
    ["Finished", when(run.finished_at)],
    ["Time to video", run.wall_time != null ? clock(run.wall_time) : ""],
    ["Task", run.task_id],
    ["Error", run.error],
  ];
  const byId = new Map(data.runs.map((/** @type {any} */ r) => [r.run_id, r]));
  const dl = h("dl", { class: "fpw-gallery-facts" },
    ...facts
      .filter(([, v]) => v)
      .map(([k, v]) => [h("dt", { text: k }), h("dd", { text: String(v) })]));
  if (run.parent_id) {
    const shown = byId.get(run.parent_id);
    const label = `run ${runName(shown || { run_id: run.parent_id })}`;
    const parent = shown
      ? h("a", { href: `#run-${run.parent_id}`, text: label })
      : `${label} (not in this gallery)`;
    dl.append(h("dt", { text: "Continues" }), h("dd", {}, parent));
  }
  if (run.timeline_id) {
    const text = `${run.timeline_id.slice(0, 8)}, ${partOf(run, data.runs)}`;
    dl.append(h("dt", { text: "Timeline" }), h("dd", { text }));
  }
  const check = /** @type {HTMLInputElement} */ (h("input", {
    type: "checkbox", class: "fpw-card-check", "aria-label": `Select for comparison: ${short}`,
    disabled: !src,
  }));
  check.addEventListener("change", () => onSelect(run.run_id, check.checked));
  const select = h("label", { class: "fpw-gallery-select" },
    check, src ? " Select for comparison" : " No video to compare");
  const e = h("article", {
    class: "fpw-gallery-card", id: `run-${run.run_id}`, "data-run-id": run.run_id,
    "data-stage": run.stage,
  },
  shown,
  h("p", { class: "fpw-gallery-prompt", text: run.prompt || "(no prompt)" }),
  dl,
  select);
  return { check, e };
}

/**
 * Build the gallery inside `root` from the page's data; returns its cleanup. `urls`: which
 * URLs may reach a src (the folder's own files; the teacher's page, the class service's).
 * @param {HTMLElement} root
 * @param {any} data
 * @param {import("./types.js").UrlRules} [urls]
 */
export function renderGallery(root, data, urls = GALLERY_URLS) {
  const most = data.max_compared;
  const model = galleryModel({
    _limits: { fps: data.fps, max_compared: most }, _comparison: {}, _history: [], selected: [],
  });
  const byId = new Map(data.runs.map((/** @type {any} */ r) => [r.run_id, r]));
  const cards = data.runs.map((/** @type {any} */ r) => (
    { id: r.run_id, stage: r.stage, has_video: !!r.video }));
  /** @type {import("./types.js").Ctx} */
  const ctx = {
    model,
    root,
    id: "fpwg",
    older: [],
    get: model.get,
    save: model.set,
    send: (msg) => model.send(msg),
    urlRules: urls,
    runs: () => cards,
    // The folder's files stand in for the kernel's videos: nothing to ask for, nothing fails.
    media: {
      video: (rid) => byId.get(rid)?.video,
      poster: (rid) => byId.get(rid)?.poster,
      error: () => undefined,
      request() {},
      retry() {},
      subscribe: () => () => {},
      close() {},
    },
  };
  const sim = data.runs.some((/** @type {any} */ r) => r.simulated);
  const compareBtn = /** @type {HTMLButtonElement} */ (h("button", {
    type: "button", class: "fpw-primary fpw-compare-btn", text: "Compare", disabled: true,
  }));
  const hint = h("span", {
    class: "fpw-select-hint", text: `Select 2 to ${most} runs with a video, then`,
  });
  const grid = h("div", { class: "fpw-gallery-cards", role: "list" });
  const compareBox = h("div", { class: "fpw-gallery-compare" });
  const badge = sim
    ? h("span", {
      class: "fpw-badge fpw-badge-sim",
      text: "Offline simulator \u2014 videos are synthetic, not FramePack's",
    })
    : null;
  const shared = `${plural(data.runs.length, "run")} \u00b7 shared ${when(data.exported_at)}`;
  root.append(
    h("header", { class: "fpw-head" },
      h("h1", { class: "fpw-title", text: data.title }),
      badge,
      h("span", { class: "fpw-gallery-when", text: shared })),
    h("div", { class: "fpw-history-head" }, hint, compareBtn),
    compareBox,
    grid);
  /** @type {string[]} */
  const selected = [];
  const made = data.runs.map((/** @type {any} */ r) => runCard(r, data, (rid, on) => {
    const at = selected.indexOf(rid);
    if (on && at < 0) selected.push(rid);
    if (!on && at >= 0) selected.splice(at, 1);
    sync();
  }, urls));
  grid.append(...made.map((/** @type {any} */ m) => m.e));
  function sync() {
    made.forEach((/** @type {any} */ m, /** @type {number} */ i) => {
      m.check.checked = selected.includes(data.runs[i].run_id);
      m.check.disabled = !data.runs[i].video || (!m.check.checked && selected.length >= most);
      m.e.classList.toggle("fpw-selected", m.check.checked);
    });
    compareBtn.disabled = selected.length < 2 || selected.length > most;
  }
  compareBtn.addEventListener("click", () => {
    model.set("_comparison", galleryComparison(data, selected));
  });
  const close = mountComparison(ctx, compareBox);
  sync();
  return close;
}
