// framepack_widgets shared gallery: the script of a gallery's index.html. No kernel, no
// network, no package: everything it shows is in the page's data and the folder's files.
//
// The page inlines widget.js and then this file into one module script (Chromium loads no
// module file from a file:// page), so the comparison here is the widget's own: its
// mountComparison (player, toolbar, word diff) driving its SyncController. The word diffs
// themselves were computed in Python and written into the page's data.
import { h, clock, money, safeUrl, mountComparison, STAGES } from "./widget.js";

/** The gallery's files are plain relative paths inside its folder: nothing else reaches a src. */
const GALLERY_URLS = { blob: false, local: true, web: false };

/** A model-shaped object for the widget's mounts: the page's own state, no kernel behind it. */
export function galleryModel(state) {
  const handlers = new Map();
  const model = {
    get: (k) => state[k],
    set(k, v) { state[k] = v; for (const fn of [...(handlers.get(`change:${k}`) || [])]) fn(); },
    save_changes() {},
    on(name, fn) { if (!handlers.has(name)) handlers.set(name, new Set()); handlers.get(name).add(fn); },
    off(name, fn) { handlers.get(name)?.delete(fn); },
    /** The comparison's "Close" asks the kernel to compare nothing; here the page does it. */
    send(msg) { if (msg?.type === "compare" && !(msg.run_ids || []).length) model.set("comparison", {}); },
  };
  return model;
}

/** What the widget's comparison grid reads, for the runs `ids` of the page's data: each
 * prompt against the first one's, from the diffs Python wrote. */
export function galleryComparison(data, ids) {
  const byId = new Map(data.runs.map((r) => [r.run_id, r]));
  const runs = ids.map((id) => byId.get(id)).filter((r) => r && r.video);
  if (runs.length < 2) return {};
  const base = runs[0];
  const items = runs.map((r, i) => ({
    run_id: r.run_id,
    label: "ABCD"[i],
    stage: r.stage,
    prompt: (i && data.diffs[`${base.p},${r.p}`]) || [["=", r.prompt]],
    negative_prompt: r.negative_prompt,
    duration: r.duration,
    start_image: r.start_image_sha ? { sha: r.start_image_sha } : null,
    end_image: r.end_image_sha ? { sha: r.end_image_sha } : null,
  }));
  const differ = (key) => new Set(runs.map((r) => r[key] ?? null)).size > 1;
  return {
    run_ids: items.map((i) => i.run_id),
    items,
    differs: {
      prompt: items.some((i) => i.prompt.some(([op]) => op !== "=")),
      negative_prompt: differ("negative_prompt"),
      duration: differ("duration"),
      start_image: differ("start_image_sha"),
      end_image: differ("end_image_sha"),
    },
  };
}

function when(iso) {
  const d = iso ? new Date(iso) : null;
  return d && !Number.isNaN(d.getTime()) ? d.toLocaleString() : "";
}

/** "part 2 of 3" for a timeline segment, counted among the gallery's runs of that timeline. */
function partOf(run, runs) {
  const parts = runs.filter((r) => r.timeline_id === run.timeline_id).sort((a, b) => (a.segment ?? 0) - (b.segment ?? 0));
  return `part ${parts.indexOf(run) + 1} of ${parts.length}`;
}

/** One run's card: its video (or poster), prompt and the facts of Run.to_dict(). */
function runCard(run, data, onSelect) {
  const excerpt = run.prompt.length > 60 ? run.prompt.slice(0, 59) + "\u2026" : run.prompt || "(no prompt)";
  const poster = safeUrl(run.poster || "", GALLERY_URLS), src = safeUrl(run.video || "", GALLERY_URLS);
  let shown;
  if (src) {
    shown = h("video", { class: "fpw-gallery-video", controls: true, loop: true, muted: true, playsinline: true, preload: "metadata", poster, src, "aria-label": `Video: ${excerpt}` });
    shown.muted = true;
  } else shown = poster ? h("img", { class: "fpw-gallery-poster", src: poster, alt: `Poster: ${excerpt}` }) : h("div", { class: "fpw-gallery-none", text: "No video" });
  const facts = [
    ["Status", STAGES[run.stage] || run.stage],
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
  const inGallery = new Set(data.runs.map((r) => r.run_id));
  const dl = h("dl", { class: "fpw-gallery-facts" }, ...facts.filter(([, v]) => v).map(([k, v]) => [h("dt", { text: k }), h("dd", { text: String(v) })]));
  if (run.parent_id) {
    const short = run.parent_id.slice(0, 8);
    dl.append(h("dt", { text: "Continues" }), h("dd", {}, inGallery.has(run.parent_id) ? h("a", { href: `#run-${run.parent_id}`, text: `run ${short}` }) : `run ${short} (not in this gallery)`));
  }
  if (run.timeline_id) dl.append(h("dt", { text: "Timeline" }), h("dd", { text: `${run.timeline_id.slice(0, 8)}, ${partOf(run, data.runs)}` }));
  const check = h("input", { type: "checkbox", class: "fpw-card-check", "aria-label": `Select for comparison: ${excerpt}`, disabled: !src });
  check.addEventListener("change", () => onSelect(run.run_id, check.checked));
  return {
    check,
    e: h("article", { class: "fpw-gallery-card", id: `run-${run.run_id}`, "data-run-id": run.run_id, "data-stage": run.stage },
      shown, h("p", { class: "fpw-gallery-prompt", text: run.prompt || "(no prompt)" }), dl,
      h("label", { class: "fpw-gallery-select" }, check, src ? " Select for comparison" : " No video to compare")),
  };
}

/** Build the gallery inside `root` from the page's data; returns its cleanup. */
export function renderGallery(root, data) {
  const most = data.max_compared;
  const model = galleryModel({ limits: { fps: data.fps, max_compared: most }, comparison: {}, history: [], selected: [] });
  const byId = new Map(data.runs.map((r) => [r.run_id, r]));
  const cards = data.runs.map((r) => ({ id: r.run_id, stage: r.stage, has_video: !!r.video }));
  const ctx = {
    model, root, id: "fpwg", get: model.get, send: (msg) => model.send(msg), urlRules: GALLERY_URLS, runs: () => cards,
    media: { video: (rid) => byId.get(rid)?.video, poster: (rid) => byId.get(rid)?.poster, request() {}, subscribe: () => () => {} },
  };
  const sim = data.runs.some((r) => r.simulated);
  const compareBtn = h("button", { type: "button", class: "fpw-primary fpw-compare-btn", text: "Compare", disabled: true });
  const hint = h("span", { class: "fpw-select-hint", text: `Select 2 to ${most} runs with a video, then` });
  const grid = h("div", { class: "fpw-gallery-cards", role: "list" });
  const compareBox = h("div", { class: "fpw-gallery-compare" });
  root.append(
    h("header", { class: "fpw-head" }, h("h1", { class: "fpw-title", text: data.title }),
      sim ? h("span", { class: "fpw-badge fpw-badge-sim", text: "Offline simulator \u2014 videos are synthetic, not FramePack's" }) : null,
      h("span", { class: "fpw-gallery-when", text: `${data.runs.length} run${data.runs.length === 1 ? "" : "s"} \u00b7 shared ${when(data.exported_at)}` })),
    h("div", { class: "fpw-history-head" }, hint, compareBtn), compareBox, grid);
  const selected = [];
  const made = data.runs.map((r) => runCard(r, data, (rid, on) => {
    const at = selected.indexOf(rid);
    if (on && at < 0) selected.push(rid);
    if (!on && at >= 0) selected.splice(at, 1);
    sync();
  }));
  grid.append(...made.map((m) => m.e));
  function sync() {
    made.forEach((m, i) => {
      m.check.checked = selected.includes(data.runs[i].run_id);
      m.check.disabled = !data.runs[i].video || (!m.check.checked && selected.length >= most);
      m.e.classList.toggle("fpw-selected", m.check.checked);
    });
    compareBtn.disabled = selected.length < 2 || selected.length > most;
  }
  compareBtn.addEventListener("click", () => model.set("comparison", galleryComparison(data, selected)));
  const close = mountComparison(ctx, compareBox);
  sync();
  return close;
}
