// The Timeline panel: the draft (this view's own) to edit and start, then the kernel's
// timeline_info: each segment's status, Retry segment, and the stitched video. A run's
// chain ("part 2 of 3", Extend after Extend) plays here too, as one video.

import { button, h, setSrc, video } from "../dom.js";
import { plural, price, simulated, stageName } from "../format.js";
import { inFlight, scope } from "../scope.js";
import { videoNote } from "../video-note.js";

/** @typedef {{ prompt: string, duration: number | string }} Segment */

/** @type {import("../types.js").Panel} */
export function mountTimeline(ctx, box) {
  const s = scope(ctx.model);
  const { id, get, send, media } = ctx;
  /** @type {Segment[]} */
  let draft = [];
  let editing = true;
  /** @type {string | null} a plan made in Python, started as it is unless edited */
  let planId = null;
  /** @type {string | null | undefined} */
  let shownId;
  const list = h("ol.fpw-segments");
  const add = button("Add segment");
  const start = button("Start timeline", { class: "fpw-primary" });
  const stop = button("Cancel timeline");
  const again = button("New timeline");
  const total = h("p.fpw-tl-total");
  const note = h("p.fpw-notice", { role: "status" });
  const player = video({
    class: "fpw-tl-video", "aria-label": "Timeline video", controls: true, hidden: true,
  });
  const playerNote = videoNote(media, "fpw-player-note");
  const from = h("p.fpw-notice.fpw-tl-from");
  const panel = /** @type {HTMLDetailsElement} */ (h("details.fpw-timeline", {},
    h("summary.fpw-h", { text: "Timeline: several prompts, one video" }),
    from,
    list,
    h("div.fpw-actions", {}, add, start, stop, again),
    total, note, player, playerNote.el));
  box.append(panel);
  const request = inFlight(s, `${id}-tl`, sync);
  const info = () => get("_timeline_info") || {};
  const live = () => !editing && !!info().timeline_id;
  const secs = () => draft.reduce((a, g) => a + (Number(g.duration) || 0), 0);
  /** @param {Segment[]} segs */
  const copy = (segs) => segs.map((g) => ({ prompt: g.prompt, duration: g.duration }));
  /** @param {string} action @param {object} [more] */
  const tell = (action, more) =>
    send({ type: "timeline", action, timeline_id: info().timeline_id, ...more });

  /**
   * The segment rows: editable (the draft) or the kernel's, read-only.
   * @param {[number, string?]} [focus] row and control to keep the keyboard on
   */
  function build(focus) {
    const t = info();
    const on = live();
    const segs = on ? t.segments || [] : draft;
    /** @type {any[]} */
    const rows = segs;
    list.replaceChildren(...rows.map((g, i) => row(g, i, rows.length, on)));
    const li = focus && list.children[focus[0]];
    if (li) {
      const target = li.querySelector(`[data-act="${focus[1]}"]:not(:disabled)`)
        || li.querySelector("[data-act]:not(:disabled)")
        || li.firstChild;
      /** @type {HTMLElement} */ (target).focus();
    }
    sync();
  }
  /** @param {any} g @param {number} i @param {number} count @param {boolean} on */
  function row(g, i, count, on) {
    const name = `Segment ${i + 1}`;
    const lower = name.toLowerCase();
    const prompt = /** @type {HTMLTextAreaElement} */ (h("textarea", {
      rows: 2, "aria-label": `${name} prompt`, maxlength: get("_limits").max_prompt_chars,
      disabled: on,
    }));
    const dur = /** @type {HTMLInputElement} */ (h("input", {
      type: "number", "aria-label": `${name} duration`, min: get("_min_duration"),
      max: get("_max_duration"), step: 1, disabled: on,
    }));
    prompt.value = g.prompt || "";
    dur.value = g.duration;
    const li = h("li.fpw-seg", { "data-i": i, "data-stage": (on && g.stage) || "" }, prompt, dur);
    /** @param {string} act @param {string} text @param {string} label @param {boolean} off */
    const action = (act, text, label, off) =>
      button(text, { "data-act": act, "aria-label": `${label} ${lower}`, disabled: off });
    if (!on) {
      li.append(
        action("up", "↑", "Move up", !i),
        action("down", "↓", "Move down", i === count - 1),
        action("remove", "×", "Remove", count === 1));
      return li;
    }
    const pct = g.percent != null && g.stage !== "completed" ? ` ${Math.round(g.percent)}%` : "";
    li.append(h("span.fpw-seg-run", { text: g.number ? `#${g.number}` : "" }),
      h("span.fpw-seg-status", { text: `${stageName(g.stage)}${pct}` }));
    if (g.error) li.append(h("span.fpw-error", { text: g.error }));
    if (g.retry) li.append(button("Retry segment", { "data-act": "retry" }));
    return li;
  }
  /** Why Start timeline is disabled now ("" when it is not). */
  function why() {
    /** @param {Segment} g */
    const d = (g) => Number(g.duration);
    const lo = get("_min_duration");
    const hi = get("_max_duration");
    if (request.id) return "Starting…";
    if (!get("_start_image_info")) return "Add a start image first.";
    if (draft.some((g) => !String(g.prompt || "").trim())) {
      return "Write a prompt for every segment.";
    }
    if (draft.some((g) => !Number.isInteger(d(g)) || d(g) < lo || d(g) > hi)) {
      return `Durations: ${lo} to ${hi} s.`;
    }
    return draft.length ? "" : "Add a segment.";
  }
  function sync() {
    const t = info();
    const on = live();
    const running = on && ["running", "stitching"].includes(t.status);
    panel.dataset.status = on ? t.status : "editing";
    add.hidden = start.hidden = on;
    again.hidden = !on || running;
    stop.hidden = !running;
    const reason = why();
    start.disabled = !!reason;
    const image = on ? t.starts_from : get("_start_image_info")?.name;
    from.textContent = `${image ? `Starts from ${image}; each` : "Each"} segment from the previous one's last frame.`;
    const cost = price(get, secs());
    total.textContent = on
      ? t.description
      : `${plural(draft.length, "segment")} · ${secs()} s${cost}${cost && simulated(get)}`;
    if (on) {
      const progress = {
        running: `Segment ${(t.current ?? 0) + 1} of ${t.count}…`,
        stitching: "Stitching…",
      };
      note.textContent = progress[/** @type {"running"} */ (t.status)] || t.error || "";
    } else {
      note.textContent = reason || (planId ? "Nothing starts until you press Start timeline." : "");
    }
    syncPlayer(on && t.status === "done" && t.has_video ? t.timeline_id : null);
  }
  /**
   * The stitched video of `vid` (a timeline or chain id), or no player.
   * @param {string | null} vid
   */
  function syncPlayer(vid) {
    const url = vid && media.video(vid);
    player.hidden = !url;
    if (url) setSrc(player, url);
    if (vid) playerNote.follow(vid);
    else playerNote.say("");
  }
  function onInfo() {
    const t = info();
    if (t.timeline_id !== shownId) {
      shownId = t.timeline_id;
      editing = !t.timeline_id || t.status === "pending";
      planId = t.status === "pending" ? t.timeline_id : null;
      if (planId) draft = copy(t.segments);
      if (t.timeline_id) panel.open = true;
    }
    if (!t.timeline_id) planId = null;
    build();
  }
  s.on(panel, "toggle", () => {
    if (!panel.open || draft.length) return;
    draft = [{ prompt: get("prompt"), duration: get("duration") }];
    build();
  });
  s.on(list, "input", (e) => {
    const g = draft[e.target.closest("li").dataset.i];
    if (!g || live()) return;
    if (e.target.tagName === "TEXTAREA") g.prompt = e.target.value;
    else g.duration = e.target.value;
    planId = null;
    sync();
  });
  s.on(list, "click", (e) => {
    const b = e.target.closest("button[data-act]");
    if (!b) return;
    const act = b.dataset.act;
    const i = Number(b.closest("li").dataset.i);
    if (act === "retry") return tell("retry", { segment: i });
    const j = act === "up" ? i - 1 : i + 1;
    if (act === "remove") draft.splice(i, 1);
    else [draft[i], draft[j]] = [draft[j], draft[i]];
    planId = null;
    build(act === "remove" ? [Math.min(i, draft.length - 1), act] : [j, act]);
  });
  s.on(add, "click", () => {
    draft.push({ prompt: "", duration: get("duration") });
    planId = null;
    build([draft.length - 1]);
  });
  s.on(again, "click", () => {
    draft = copy(info().segments || []);
    editing = true;
    planId = null;
    build();
  });
  s.on(stop, "click", () => tell("cancel"));
  s.on(start, "click", () => {
    if (why()) return;
    const cps = get("_cost_per_second");
    tell("start", {
      request_id: request.start(),
      timeline_id: planId,
      segments: draft.map((g) => ({ prompt: g.prompt, duration: Number(g.duration) })),
      shown_cost: Number.isFinite(cps) ? Math.round(secs() * cps * 100) / 100 : null,
    });
    sync();
  });
  s.messages({
    timeline_started(msg) {
      if (!request.answers(msg)) return;
      editing = false;
      planId = null;
      shownId = null;
      onInfo();
    },
    error(msg) {
      if (!request.answers(msg)) return;
      sync();
      note.textContent = msg.message || "";
    },
  });
  s.defer(media.subscribe((what, rid) => {
    if (what !== "poster" && rid === info().timeline_id) sync();
  }));
  s.watch("_start_image_info _cost_per_second backend", sync);
  s.follow("_timeline_info", onInfo);
  return s.close;
}
