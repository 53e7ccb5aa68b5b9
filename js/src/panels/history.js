// Run cards (with posters), selection for comparison, older pages, and Share: the selected
// (or all finished) runs as a gallery folder, written by the kernel, downloaded here. When
// the kernel knows its notebook, the history shows that notebook's runs, and all of the
// store's runs one click away (the toggle in its head, with both counts).

import { button, h, setSrc } from "../dom.js";
import { exportNote } from "../export-note.js";
import { clock, excerpt, money, plural, stageName } from "../format.js";
import { scope } from "../scope.js";
import { mountClassShare } from "./classroom.js";

/** @type {import("../types.js").Panel} */
export function mountHistory(ctx, box) {
  const s = scope(ctx.model);
  const { get, save, send, media } = ctx;
  const most = () => get("_limits").max_compared;
  const cards = h("div.fpw-cards", { role: "list" });
  const compareBtn = button("Compare", { class: "fpw-compare-btn", disabled: true });
  const older = button("Show older runs", { class: "fpw-older", hidden: true });
  const title = h("h3.fpw-h");
  const hint = h("span.fpw-select-hint", { text: `Select 2 to ${most()} runs, then` });
  const mine = button("", { "aria-pressed": "true" });
  const all = button("", { "aria-pressed": "false" });
  const scopes = h("span.fpw-scope", { role: "group", "aria-label": "Which runs" }, mine, all);
  const section = h("section.fpw-history", { "aria-label": "History" },
    h("div.fpw-history-head", {}, title, scopes, hint, compareBtn), cards, older);
  const share = button("Share", {
    class: "fpw-share",
    title: "A folder (page, videos, posters, run cards) that opens in any browser: "
      + "no kernel, key or package",
  });
  const shareHint = h("span.fpw-share-hint");
  const shareRow = h("div.fpw-actions.fpw-share-row", { hidden: true },
    share, exportNote(s, share, "gallery"), shareHint);
  box.append(section, shareRow);
  /** @type {Map<string, any>} run id -> the card's elements */
  const els = new Map();
  /** @type {Set<string>} */
  const askedPosters = new Set();
  s.defer(mountClassShare(ctx, cards)); // in a class: "Share with class" on each finished card

  /** One run's card, made once and kept in step. @param {any} c */
  function card(c) {
    let r = els.get(c.id);
    if (!r) {
      r = makeCard(c.id);
      els.set(c.id, r);
    }
    const short = excerpt(c.prompt, 80);
    const no = c.seq ? `#${c.seq}` : "";
    r.e.dataset.stage = c.stage;
    r.text.textContent = short || "(no prompt)";
    r.text.title = c.prompt;
    const bits = [
      no,
      `${c.duration} s`,
      c.loop && "Loop",
      stageName(c.stage),
      c.wall != null && clock(c.wall),
      money(c.cost) + (c.backend === "simulator" ? " sim" : ""),
      c.from && `from ${c.from}`,
    ];
    r.meta.textContent = bits.filter(Boolean).join(" · ");
    r.show.setAttribute("aria-label", `Show run ${no}: ${short}`);
    r.check.setAttribute("aria-label", `Select for comparison: ${short}`);
    r.extend.hidden = !c.has_video;
    r.chain.hidden = !c.chain;
    if (c.chain) {
      r.chain.textContent = `part ${c.chain.part} of ${c.chain.of}`;
      r.chain.setAttribute("aria-label", `Play the whole chain, ${r.chain.textContent}: ${short}`);
    }
    setSrc(r.thumb, media.poster(c.id));
    r.e.classList.toggle("fpw-current", c.id === get("status")?.run_id);
    return r.e;
  }
  /** @param {string} rid */
  function makeCard(rid) {
    const thumb = h("img.fpw-card-thumb", { alt: "" });
    const show = h("button.fpw-card-show", { type: "button" }, thumb);
    const text = h("p.fpw-card-prompt");
    const meta = h("p.fpw-card-meta");
    const check = /** @type {HTMLInputElement} */ (h("input.fpw-card-check", { type: "checkbox" }));
    // Extend continues from this run's last frame; its chain ("part 2 of 3") plays as one video.
    const chain = button("", { class: "fpw-card-chain", hidden: true });
    const extend = button("Extend", { class: "fpw-card-extend" });
    const e = h("div.fpw-card", { role: "listitem", "data-run-id": rid },
      show,
      h("div.fpw-card-body", {}, text, meta),
      h("label.fpw-card-sel", {}, check),
      h("div.fpw-card-links", {}, chain, extend));
    for (const [el, type] of [[show, "show"], [chain, "chain"], [extend, "extend"]]) {
      s.on(/** @type {HTMLElement} */ (el), "click", () => send({ type, run_id: rid }));
    }
    s.on(check, "change", () => {
      const sel = (get("selected") || []).filter((/** @type {string} */ x) => x !== rid);
      if (check.checked) sel.push(rid);
      save("selected", sel.slice(-most()));
      syncSelection();
    });
    return { e, thumb, show, text, meta, check, chain, extend };
  }
  function sync() {
    const list = ctx.runs();
    const focused = cards.contains(document.activeElement) ? document.activeElement : null;
    const shown = list.map(card);
    const keep = new Set(list.map((/** @type {any} */ c) => c.id));
    for (const k of els.keys()) if (!keep.has(k)) els.delete(k);
    const same = shown.length === cards.children.length
      && shown.every((e, i) => cards.children[i] === e);
    if (!same) {
      cards.replaceChildren(...shown);
      // Keep the keyboard where it was when the cards move.
      if (focused?.isConnected && document.activeElement !== focused) {
        /** @type {HTMLElement} */ (focused).focus();
      }
    }
    const total = get("_history_total") || list.length;
    const sc = get("_history_scope") || {};
    const wide = !!get("_history_all");
    title.textContent = `History (${plural(total, "run")})`;
    scopes.hidden = !sc.notebook;
    mine.textContent = `This notebook (${sc.mine})`;
    all.textContent = `All runs (${sc.all})`;
    mine.setAttribute("aria-pressed", String(!wide));
    all.setAttribute("aria-pressed", String(wide));
    older.hidden = list.length >= total;
    section.hidden = !list.length && !sc.all;
    shareRow.hidden = !list.some((/** @type {any} */ c) => c.has_video);
    // Posters are asked for once per run, and again once the run has its video.
    const key = (/** @type {any} */ c) => `${c.id}:${c.has_video}`;
    /** @type {any[]} */
    const missing = list.filter((c) => !media.poster(c.id) && !askedPosters.has(key(c)));
    missing.forEach((c) => askedPosters.add(key(c)));
    if (missing.length) send({ type: "posters", run_ids: missing.map((c) => c.id) });
    syncSelection();
  }
  function syncSelection() {
    const sel = get("selected") || [];
    for (const [k, { e, check }] of els) {
      check.checked = sel.includes(k);
      check.disabled = !check.checked && sel.length >= most();
      e.classList.toggle("fpw-selected", check.checked);
    }
    compareBtn.disabled = sel.length < 2 || sel.length > most();
    const n = sel.length;
    shareHint.textContent = n
      ? `a gallery of the ${n} selected run${n === 1 ? "" : "s"}`
      : "a gallery of the finished runs (select some to share only those)";
  }
  s.on(compareBtn, "click", () => {
    send({ type: "compare", run_ids: (get("selected") || []).slice(0, most()) });
  });
  s.on(share, "click", () => send({ type: "share", run_ids: get("selected") || [] }));
  /** @param {boolean} wide every run of the store, or this notebook's */
  const widen = (wide) => {
    if (wide !== !!get("_history_all")) save("_history_all", wide);
  };
  s.on(mine, "click", () => widen(false));
  s.on(all, "click", () => widen(true));
  // Another scope: the pages read so far were of the other one.
  s.watch("_history_all", () => ctx.older.splice(0));
  s.on(older, "click", () => {
    const list = ctx.runs();
    const seqs = list.map((/** @type {any} */ c) => c.seq).filter(Number.isInteger);
    send(seqs.length
      ? { type: "history", before: Math.min(...seqs) }
      : { type: "history", offset: list.length });
  });
  s.messages({
    history_page(msg) {
      ctx.older.push(...(msg.runs || []));
      sync();
    },
  });
  s.defer(media.subscribe((what, rid) => {
    const c = what === "poster" && ctx.runs().find((/** @type {any} */ x) => x.id === rid);
    if (c) card(c);
  }));
  s.watch("selected", syncSelection);
  s.follow("_history _history_total _history_scope _history_all status", sync);
  return s.close;
}
