// framepack_widgets frontend: a plain ES module for anywidget. No dependencies, no build.
// Small state arrives in model traits; bytes arrive as buffers of custom messages (see
// framepack_widgets/_widget_protocol.py for the wire format). User and API text is only
// ever set with textContent; only http(s) and blob: URLs reach a src.

const STAGES = {
  idle: "Ready", queued: "Queued", submitting: "Submitting", pending: "Pending: waiting in the queue",
  processing: "Processing", downloading: "Downloading the video", completed: "Done", failed: "Failed",
  cancelled: "Cancelled", submission_unknown: "Submission unknown", timed_out: "Timed out", error: "Error",
};
const FINAL = new Set(["completed", "failed", "cancelled", "submission_unknown", "timed_out", "error"]);
const SLOT_NAMES = { start: "Start image", end: "End image" };
const MAX_SIDE = 1280;
const MAX_UPLOAD = 900 * 1024; // stay under Colab's ~1 MB message limit
const FPS = 30;
const KEEP_VIDEOS = 8; // blob URLs of videos kept per view

/** Only http(s) and blob: URLs may reach a src; anything else (javascript:, data:...) is refused. */
export function safeUrl(url, { blob = true } = {}) {
  if (typeof url !== "string") return null;
  const u = url.trim();
  if (/^https?:\/\//i.test(u) || (blob && /^blob:/i.test(u))) return u;
  return null;
}

export function money(x) {
  return "$" + (Number(x) || 0).toFixed(2);
}

export function clock(seconds) {
  const s = Math.max(0, Math.floor(Number(seconds) || 0));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

/** Build an element. Text children become text nodes; nothing is ever parsed as HTML. */
export function h(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v == null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const kid of kids.flat()) if (kid != null && kid !== false) e.append(kid);
  return e;
}

/** Downscale an image file in the browser (long side <= 1280) and encode it as JPEG. */
export async function downscale(file, maxSide = MAX_SIDE) {
  const bytes = async () => ({ buffer: await file.arrayBuffer(), mime: file.type || "application/octet-stream" });
  if (typeof createImageBitmap !== "function") return bytes();
  let bmp;
  try {
    bmp = await createImageBitmap(file, { imageOrientation: "from-image" });
  } catch {
    return bytes(); // a format the browser cannot decode: let the kernel try (or explain)
  }
  const scale = Math.min(1, maxSide / Math.max(bmp.width, bmp.height));
  const w = Math.max(1, Math.round(bmp.width * scale)), hgt = Math.max(1, Math.round(bmp.height * scale));
  const canvas = typeof OffscreenCanvas === "function" ? new OffscreenCanvas(w, hgt) : Object.assign(document.createElement("canvas"), { width: w, height: hgt });
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, w, hgt);
  ctx.drawImage(bmp, 0, 0, w, hgt);
  bmp.close?.();
  const encode = (q) => canvas.convertToBlob ? canvas.convertToBlob({ type: "image/jpeg", quality: q }) : new Promise((r) => canvas.toBlob(r, "image/jpeg", q));
  let blob;
  for (const q of [0.9, 0.8, 0.7, 0.55]) {
    blob = await encode(q);
    if (blob && blob.size <= MAX_UPLOAD) break;
  }
  return { buffer: await blob.arrayBuffer(), mime: "image/jpeg", width: w, height: hgt };
}

/**
 * Keeps 2-4 videos in step: one leader (the longest), followers corrected when they drift
 * more than a third of a frame, by nudging playbackRate for small drift and seeking for
 * large drift. Ticks on the leader's requestVideoFrameCallback (or animation frames).
 */
export class SyncController {
  constructor(videos, { fps = FPS, tolerance, raf } = {}) {
    this.videos = [...videos];
    this.fps = fps;
    this.tol = tolerance ?? 1 / (3 * fps);
    this.raf = raf ?? globalThis.requestAnimationFrame?.bind(globalThis);
    this.rate = 1;
    this.loop = true;
    this.running = false;
    this.maxDrift = 0;
    this.leader = this.videos.reduce((a, b) => ((b.duration || 0) > (a.duration || 0) ? b : a));
    this.ac = new AbortController();
    const o = { signal: this.ac.signal }, L = this.leader;
    L.addEventListener("play", () => { this.followers.forEach((v) => v.play?.()?.catch?.(() => {})); this.start(); }, o);
    L.addEventListener("pause", () => { this.followers.forEach((v) => v.pause()); this.align(); }, o);
    L.addEventListener("seeked", () => this.align(), o);
    this.setLoop(true);
  }
  get followers() { return this.videos.filter((v) => v !== this.leader); }
  get paused() { return this.leader.paused; }
  target(v, t) {
    const d = v.duration;
    return Number.isFinite(d) && d > 0 ? Math.min(t, Math.max(0, d - 0.001)) : t;
  }
  /** Signed drift of a follower against the leader, unwrapped across a loop boundary. */
  drift(v) {
    const L = this.leader;
    let d = v.currentTime - this.target(v, L.currentTime);
    const D = L.duration;
    if (Number.isFinite(D) && Math.abs((v.duration || 0) - D) < 1 / this.fps && Math.abs(d) > D / 2) d -= Math.sign(d) * D;
    return d;
  }
  align() {
    const t = this.leader.currentTime;
    for (const v of this.followers) { v.currentTime = this.target(v, t); v.playbackRate = this.rate; }
  }
  tick() {
    const L = this.leader;
    let worst = 0;
    for (const v of this.followers) {
      const want = this.target(v, L.currentTime), d = this.drift(v), ad = Math.abs(d);
      worst = Math.max(worst, ad);
      if (L.paused) { if (ad > this.tol) v.currentTime = want; continue; }
      if (v.paused || v.ended) {
        if (want < (v.duration || Infinity) - this.tol) { v.currentTime = want; v.play?.()?.catch?.(() => {}); }
        continue;
      }
      if (ad > 4 / this.fps) { v.currentTime = want; v.playbackRate = this.rate; }
      else if (ad > this.tol) v.playbackRate = this.rate * (1 - Math.max(-0.2, Math.min(0.2, d * 2)));
      else v.playbackRate = this.rate;
    }
    if (!L.paused) this.maxDrift = Math.max(this.maxDrift, worst);
    return worst;
  }
  start() {
    if (this.running || this.ac.signal.aborted) return;
    this.running = true;
    const L = this.leader;
    const frame = () => {
      if (!this.running || this.ac.signal.aborted) return;
      this.tick();
      if (L.paused) { this.running = false; return; }
      next();
    };
    const next = () => (L.requestVideoFrameCallback ? L.requestVideoFrameCallback(frame) : this.raf ? this.raf(frame) : setTimeout(frame, 16));
    next();
  }
  play() {
    this.align();
    this.videos.forEach((v) => { v.playbackRate = this.rate; v.play?.()?.catch?.(() => {}); });
    this.start();
  }
  pause() { this.running = false; this.videos.forEach((v) => v.pause()); this.align(); }
  toggle() { this.paused ? this.play() : this.pause(); }
  seek(t) {
    const D = this.leader.duration;
    this.leader.currentTime = Math.max(0, Number.isFinite(D) ? Math.min(t, D) : t);
    this.align();
  }
  step(frames) { this.pause(); this.seek(this.leader.currentTime + frames / this.fps); }
  setRate(r) { this.rate = r; this.videos.forEach((v) => { v.playbackRate = r; }); }
  setLoop(on) {
    this.loop = on;
    // Shorter followers hold their last frame until the leader loops back.
    this.videos.forEach((v) => { v.loop = on && (v === this.leader || !((v.duration || 0) < (this.leader.duration || 0) - 1 / this.fps)); });
  }
  destroy() { this.running = false; this.ac.abort(); }
}

function initialize() {
  // All state is per view (render); nothing to set up per model.
}

function render({ model, el }) {
  const ac = new AbortController();
  const on = (target, ev, fn, opts = {}) => target.addEventListener(ev, fn, { ...opts, signal: ac.signal });
  const id = "fpw" + Math.random().toString(36).slice(2, 8);
  const urls = new Set();
  const makeUrl = (blob) => { const u = URL.createObjectURL(blob); urls.add(u); return u; };
  const dropUrl = (u) => { if (u && urls.delete(u)) URL.revokeObjectURL(u); };
  const send = (msg, buffers) => model.send(msg, undefined, buffers);
  const get = (k) => model.get(k);
  const save = (k, v) => { model.set(k, v); model.save_changes(); };
  const videos = new Map(); // run_id -> blob URL (kept <= KEEP_VIDEOS)
  const posters = new Map(); // run_id -> blob URL
  const incoming = new Map(); // `${run_id}/${nonce}` -> {parts, got}
  const requested = new Set(); // run ids whose video this view asked for
  const askedPosters = new Set();
  const state = { pending: null, pendingTimer: 0, ticker: 0, t0: 0, autoplay: null, sync: null, older: [], lastStage: {} };

  // ---------------------------------------------------------------- layout
  const badge = h("span", { class: "fpw-badge" });
  const balance = h("span", { class: "fpw-balance" });
  const head = h("div", { class: "fpw-head" }, h("span", { class: "fpw-title", text: "FramePack" }), badge, balance);
  const notice = h("p", { class: "fpw-notice", "aria-live": "polite" });

  const slots = {};
  const slotBox = h("div", { class: "fpw-slots" });
  for (const slot of ["start", "end"]) {
    const name = SLOT_NAMES[slot], fid = `${id}-${slot}`;
    const file = h("input", { type: "file", accept: "image/*", id: fid, class: "fpw-file", "aria-describedby": `${fid}-hint` });
    const img = h("img", { class: "fpw-thumb", alt: "", hidden: true });
    const hint = h("span", { class: "fpw-slot-hint", id: `${fid}-hint`, text: slot === "start" ? "Required. Drop, paste or click to choose." : "Optional. Drop, paste or click to choose." });
    const meta = h("span", { class: "fpw-slot-meta" });
    const clear = h("button", { type: "button", class: "fpw-clear", "aria-label": `Remove ${name.toLowerCase()}`, title: "Remove", hidden: true, text: "\u00d7" });
    const url = h("input", { type: "url", class: "fpw-url", "aria-label": `${name} URL`, placeholder: "or an image URL (https://\u2026)" });
    const drop = h("div", { class: "fpw-drop" }, img, h("label", { for: fid, class: "fpw-slot-label", text: name }), hint, meta, file);
    const box = h("div", { class: `fpw-slot fpw-slot-${slot}`, "data-slot": slot }, drop, clear, url);
    slots[slot] = { box, drop, file, img, meta, hint, clear, url, preview: null, thumb: null };
    slotBox.append(box);
    on(drop, "click", (e) => { if (e.target !== file && !e.target.closest?.("label")) file.click(); });
    on(file, "change", () => { if (file.files?.[0]) upload(slot, file.files[0]); file.value = ""; });
    on(drop, "dragover", (e) => { e.preventDefault(); drop.classList.add("fpw-over"); });
    on(drop, "dragleave", () => drop.classList.remove("fpw-over"));
    on(drop, "drop", (e) => {
      e.preventDefault();
      drop.classList.remove("fpw-over");
      const f = [...(e.dataTransfer?.files || [])].find((x) => x.type.startsWith("image/"));
      const u = e.dataTransfer?.getData?.("text/uri-list") || e.dataTransfer?.getData?.("text/plain");
      if (f) upload(slot, f);
      else if (u) sendUrl(slot, u.split(/\s+/)[0]);
    });
    on(url, "keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); sendUrl(slot, url.value); } });
    on(url, "change", () => url.value.trim() && sendUrl(slot, url.value));
    on(clear, "click", () => { send({ type: "clear_image", slot }); });
  }

  const field = (label, control, extra) => h("div", { class: "fpw-field" }, h("label", { for: control.id, text: label }), control, extra);
  const prompt = h("textarea", { id: `${id}-prompt`, class: "fpw-prompt", rows: 3, placeholder: "What should happen? e.g. \u201cthe camera slowly zooms in\u201d", "aria-keyshortcuts": "Control+Enter Meta+Enter" });
  const negative = h("textarea", { id: `${id}-neg`, class: "fpw-negative", rows: 1, placeholder: "What to avoid (optional)" });
  const dur = h("input", { id: `${id}-dur`, type: "range", class: "fpw-duration", min: 10, max: 30, step: 1 });
  const durOut = h("output", { class: "fpw-cost", for: dur.id, "aria-live": "polite" });
  const generate = h("button", { type: "button", class: "fpw-generate fpw-primary", text: "Generate", "aria-describedby": `${id}-why` });
  const cancel = h("button", { type: "button", class: "fpw-cancel", text: "Cancel", disabled: true });
  const why = h("span", { id: `${id}-why`, class: "fpw-why" });
  const session = h("span", { class: "fpw-session" });
  const inputError = h("p", { class: "fpw-input-error", role: "alert" });
  const inputs = h("section", { class: "fpw-inputs", "aria-label": "Inputs" }, slotBox,
    field("Prompt", prompt), field("Negative prompt", negative), field("Duration", dur, durOut),
    h("div", { class: "fpw-actions" }, generate, cancel, session), why, inputError);

  const stageEl = h("span", { class: "fpw-stage" });
  const elapsedEl = h("span", { class: "fpw-elapsed", "aria-hidden": "true" }); // ticks: not announced
  const bar = h("progress", { class: "fpw-progress", max: 100, "aria-label": "Progress" });
  const pctEl = h("span", { class: "fpw-percent", "aria-hidden": "true" });
  const etaEl = h("p", { class: "fpw-eta" });
  const logsEl = h("pre", { class: "fpw-logs" });
  const errEl = h("p", { class: "fpw-error" });
  const hintEl = h("p", { class: "fpw-hint" });
  const statusBox = h("div", { class: "fpw-status", role: "status", "aria-live": "polite" },
    h("div", { class: "fpw-status-line" }, stageEl, elapsedEl), h("div", { class: "fpw-bar-line" }, bar, pctEl), etaEl, logsEl, errEl, hintEl);
  const player = h("video", { class: "fpw-video", "aria-label": "Result video", controls: true, loop: true, playsinline: true, muted: true, preload: "metadata", hidden: true });
  player.muted = true;
  const playerNote = h("p", { class: "fpw-player-note" });
  const saveVideo = h("a", { class: "fpw-link", text: "Download video", hidden: true });
  const cardBtn = h("button", { type: "button", class: "fpw-card-export", text: "Run card", title: "Download a run card (.zip: metadata and poster)", hidden: true });
  const output = h("section", { class: "fpw-output", "aria-label": "Result" }, statusBox, player, playerNote, h("div", { class: "fpw-actions" }, saveVideo, cardBtn));

  const cards = h("div", { class: "fpw-cards", role: "list" });
  const compareBtn = h("button", { type: "button", class: "fpw-compare-btn", text: "Compare", disabled: true });
  const older = h("button", { type: "button", class: "fpw-older", text: "Show older runs", hidden: true });
  const histTitle = h("h3", { class: "fpw-h" });
  const history = h("section", { class: "fpw-history", "aria-label": "History" },
    h("div", { class: "fpw-history-head" }, histTitle, h("span", { class: "fpw-select-hint", text: "Select 2 to 4 runs, then" }), compareBtn), cards, older);

  const sweepText = h("p", { class: "fpw-sweep-text" });
  const sweepGo = h("button", { type: "button", class: "fpw-primary", text: "Start sweep" });
  const sweepStop = h("button", { type: "button", text: "Discard sweep" });
  const sweepBox = h("section", { class: "fpw-sweep", "aria-label": "Sweep", hidden: true }, sweepText, h("div", { class: "fpw-actions" }, sweepGo, sweepStop));

  const cmpSummary = h("p", { class: "fpw-diff-summary" });
  const grid = h("div", { class: "fpw-grid" });
  const playBtn = h("button", { type: "button", class: "fpw-play", text: "Play", disabled: true });
  const prevBtn = h("button", { type: "button", class: "fpw-prev", title: "Back 1/30 s (key: ,)", text: "Previous frame", disabled: true });
  const nextBtn = h("button", { type: "button", class: "fpw-next", title: "Forward 1/30 s (key: .)", text: "Next frame", disabled: true });
  const seek = h("input", { type: "range", class: "fpw-seek", "aria-label": "Seek", min: 0, max: 10, step: 1 / FPS, value: 0, disabled: true });
  const speed = h("select", { class: "fpw-speed", "aria-label": "Playback speed" }, ...[0.25, 0.5, 1, 1.5, 2].map((r) => h("option", { value: r, selected: r === 1, text: `${r}\u00d7` })));
  const loopBox = h("input", { type: "checkbox", checked: true, id: `${id}-loop` });
  const closeBtn = h("button", { type: "button", class: "fpw-close", text: "Close comparison" });
  const exportBtn = h("button", { type: "button", class: "fpw-export", text: "Export MP4", title: "One side-by-side MP4, labelled with what differs" });
  const compare = h("section", { class: "fpw-compare", "aria-label": "Comparison", hidden: true },
    h("div", { class: "fpw-history-head" }, h("h3", { class: "fpw-h", text: "Comparison" }), exportBtn, closeBtn), cmpSummary, grid,
    h("div", { class: "fpw-toolbar" }, playBtn, prevBtn, nextBtn, seek, speed, h("label", { class: "fpw-loop" }, loopBox, " Loop")));

  const root = h("div", { class: "fpw-root" }, head, notice, h("div", { class: "fpw-main" }, inputs, output), sweepBox, history, compare);
  el.replaceChildren(root);

  // ---------------------------------------------------------------- inputs
  async function upload(slot, file) {
    if (!file.type.startsWith("image/") && file.type) return showError(`${SLOT_NAMES[slot]}: \u201c${file.name}\u201d is not an image. Choose a JPEG, PNG or WebP file.`);
    const s = slots[slot];
    s.meta.textContent = "Preparing\u2026";
    try {
      const img = await downscale(file);
      if (img.buffer.byteLength > MAX_UPLOAD * 8) throw new Error("the file is too large to send from the browser; set widget.start_image from Python instead");
      dropUrl(s.preview);
      s.preview = makeUrl(new Blob([img.buffer], { type: img.mime }));
      showSlot(slot);
      send({ type: "upload", slot, name: file.name || "pasted image", mime: img.mime, size: file.size, width: img.width, height: img.height }, [img.buffer]);
    } catch (err) {
      s.meta.textContent = "";
      showError(`${SLOT_NAMES[slot]} could not be read: ${err?.message || err}`);
    }
  }
  function sendUrl(slot, value) {
    const u = safeUrl(value, { blob: false });
    if (!u) return showError("An image URL must start with http:// or https://.");
    send({ type: "image_url", slot, url: u });
  }
  function showSlot(slot) {
    const s = slots[slot], info = get(`${slot}_image_info`);
    const u = safeUrl(s.preview || s.thumb || (info && info.url) || "");
    s.img.hidden = !u;
    if (u) s.img.src = u; else s.img.removeAttribute("src");
    s.box.classList.toggle("fpw-has-image", !!u);
    s.clear.hidden = !u;
  }
  function showError(message) { inputError.textContent = message || ""; }
  on(root, "paste", (e) => {
    const f = [...(e.clipboardData?.files || [])].find((x) => x.type.startsWith("image/"));
    if (!f) return;
    e.preventDefault();
    const slot = e.target.closest?.(".fpw-slot")?.dataset.slot || (get("start_image_info") ? "end" : "start");
    upload(slot, f);
  });
  on(prompt, "input", () => { save("prompt", prompt.value); updateGenerate(); });
  on(negative, "input", () => save("negative_prompt", negative.value));
  on(dur, "input", () => { updateCost(Number(dur.value)); save("duration", Number(dur.value)); });
  on(prompt, "keydown", (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); doGenerate(); } });
  on(generate, "click", () => doGenerate());
  on(cancel, "click", () => send({ type: "cancel", run_id: get("status")?.run_id }));

  function canGenerate() {
    if (state.pending || get("busy")) return [false, "A submission is in flight\u2026"];
    if (!get("start_image_info")) return [false, "Add a start image to generate."];
    if (!prompt.value.trim()) return [false, "Write a prompt to generate."];
    return [true, ""];
  }
  function updateGenerate() {
    const [ok, reason] = canGenerate();
    generate.disabled = !ok;
    why.textContent = reason;
    root.dataset.busy = String(!!(state.pending || get("busy")));
  }
  function doGenerate() {
    if (!canGenerate()[0]) return;
    const request_id = `${id}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
    state.pending = request_id;
    clearTimeout(state.pendingTimer);
    state.pendingTimer = setTimeout(() => { state.pending = null; updateGenerate(); }, 60000);
    updateGenerate();
    showError("");
    send({ type: "generate", request_id, prompt: prompt.value, negative_prompt: negative.value, duration: Number(dur.value) });
  }
  function updateCost(d = get("duration")) {
    const cps = get("cost_per_second") ?? 0.03;
    durOut.textContent = `${d} s \u00b7 ${money(d * cps)}`;
  }

  // ---------------------------------------------------------------- model -> view
  function syncInputs() {
    if (document.activeElement !== prompt && prompt.value !== get("prompt")) prompt.value = get("prompt") ?? "";
    if (document.activeElement !== negative && negative.value !== get("negative_prompt")) negative.value = get("negative_prompt") ?? "";
    dur.min = get("min_duration") ?? 10;
    dur.max = get("max_duration") ?? 30;
    if (String(dur.value) !== String(get("duration"))) dur.value = get("duration");
    updateCost();
    updateGenerate();
  }
  function syncBackend() {
    const sim = get("backend") === "simulator";
    badge.textContent = get("backend_label") || (sim ? "Offline simulator" : "PiAPI");
    badge.className = `fpw-badge ${sim ? "fpw-badge-sim" : "fpw-badge-api"}`;
    balance.textContent = get("balance") ? `Balance: ${get("balance")}` : "";
    root.dataset.backend = get("backend");
    syncSession();
  }
  function syncSession() {
    const sim = get("backend") === "simulator";
    session.textContent = `Session: ${money(get("session_cost"))}${sim ? " (simulated, nothing charged)" : ""}`;
  }
  function syncSlot(slot) {
    const info = get(`${slot}_image_info`), s = slots[slot];
    s.meta.textContent = info ? `${info.name || ""}${info.width ? ` \u00b7 ${info.width}\u00d7${info.height}` : ""}` : "";
    if (info) showSlot(slot);
    else { s.url.value = ""; setSlotUrls(slot, null); }
    updateGenerate();
  }
  function setSlotUrls(slot, thumb) {
    const s = slots[slot];
    dropUrl(s.preview);
    if (s.thumb !== thumb) dropUrl(s.thumb);
    s.preview = null;
    s.thumb = thumb;
    showSlot(slot);
  }
  function tick() {
    const st = get("status") || {};
    const secs = (performance.now() - state.t0) / 1000;
    elapsedEl.textContent = st.elapsed == null ? "" : clock(st.running ? secs : st.elapsed);
    if (st.running && st.percent == null && st.eta > 0) {
      const est = Math.min(95, (100 * secs) / st.eta);
      bar.value = est;
      pctEl.textContent = `\u2248${Math.round(est)}% (estimate)`;
    }
  }
  function syncStatus() {
    const st = get("status") || {};
    const stage = st.stage || "idle";
    statusBox.dataset.stage = stage;
    statusBox.dataset.runId = st.run_id || "";
    stageEl.textContent = STAGES[stage] || stage;
    state.t0 = performance.now() - (st.elapsed || 0) * 1000;
    if (st.percent != null) {
      bar.value = st.percent;
      pctEl.textContent = `${Math.round(st.percent)}%`;
    } else if (!st.running) {
      bar.removeAttribute("value");
      pctEl.textContent = "";
    }
    bar.hidden = stage === "idle";
    etaEl.textContent = st.running && st.eta_text ? `Expected time: ${st.eta_text}` : "";
    logsEl.textContent = (st.logs || []).join("\n");
    logsEl.hidden = !(st.logs || []).length;
    errEl.textContent = st.error || "";
    hintEl.textContent = st.hint || "";
    cancel.disabled = !st.running;
    clearInterval(state.ticker);
    if (st.running) state.ticker = setInterval(tick, 500);
    tick();
    const prev = state.lastStage[st.run_id];
    if (st.run_id) state.lastStage[st.run_id] = stage;
    if (stage === "completed" && prev && prev !== "completed") state.autoplay = st.run_id;
    syncPlayer();
  }
  function syncPlayer() {
    const st = get("status") || {};
    const rid = st.run_id;
    const ready = rid && st.stage === "completed" && st.has_video;
    cardBtn.hidden = !rid || !FINAL.has(st.stage);
    if (!ready) {
      saveVideo.hidden = true;
      player.hidden = true;
      player.removeAttribute("data-run-id");
      playerNote.textContent = rid && st.stage === "completed" ? "This run's video is not in the local cache." : "";
      return;
    }
    player.hidden = false;
    const url = videos.get(rid);
    const poster = posters.get(rid);
    if (poster && player.getAttribute("poster") !== poster) player.setAttribute("poster", poster);
    if (player.dataset.runId !== rid) {
      saveVideo.hidden = true;
      player.dataset.runId = rid;
      player.dataset.ready = "false";
      player.removeAttribute("src");
      player.load?.();
    }
    if (!url) { requestVideo(rid); playerNote.textContent = "Loading the video\u2026"; return; }
    saveVideo.hidden = false;
    saveVideo.href = url;
    saveVideo.download = `framepack-${rid.slice(0, 8)}.mp4`;
    if (player.getAttribute("src") !== url) {
      const safe = safeUrl(url);
      if (!safe) return;
      player.src = safe;
      if (state.autoplay === rid) { state.autoplay = null; player.play?.()?.catch?.(() => {}); }
    }
    playerNote.textContent = "";
  }
  on(player, "loadedmetadata", () => { player.dataset.ready = "true"; });
  on(player, "error", () => { player.dataset.ready = "error"; });

  function requestVideo(rid) {
    if (requested.has(rid) || videos.has(rid)) return;
    requested.add(rid);
    send({ type: "video", run_id: rid, nonce: id });
  }
  function keepVideo(rid, url) {
    videos.set(rid, url);
    const inUse = new Set([get("status")?.run_id, ...((get("comparison") || {}).run_ids || [])]);
    for (const [k, u] of videos) {
      if (videos.size <= KEEP_VIDEOS) break;
      if (!inUse.has(k)) { videos.delete(k); dropUrl(u); requested.delete(k); }
    }
  }

  // ---------------------------------------------------------------- history
  const cardEls = new Map();
  function card(c) {
    let e = cardEls.get(c.id);
    if (!e) {
      const thumb = h("img", { class: "fpw-card-thumb", alt: "" });
      const show = h("button", { type: "button", class: "fpw-card-show" }, thumb);
      const text = h("p", { class: "fpw-card-prompt" });
      const meta = h("p", { class: "fpw-card-meta" });
      const check = h("input", { type: "checkbox", class: "fpw-card-check" });
      e = h("div", { class: "fpw-card", role: "listitem", "data-run-id": c.id }, show, h("div", { class: "fpw-card-body" }, text, meta), h("label", { class: "fpw-card-sel" }, check));
      Object.assign(e, { _thumb: thumb, _show: show, _text: text, _meta: meta, _check: check });
      on(show, "click", () => send({ type: "show", run_id: c.id }));
      on(check, "change", () => {
        const sel = (get("selected") || []).filter((x) => x !== c.id);
        if (check.checked) sel.push(c.id);
        save("selected", sel.slice(-4));
        syncSelection();
      });
      cardEls.set(c.id, e);
    }
    const excerpt = c.prompt.length > 80 ? c.prompt.slice(0, 79) + "\u2026" : c.prompt;
    e.dataset.stage = c.stage;
    e._text.textContent = excerpt || "(no prompt)";
    e._text.title = c.prompt;
    const bits = [`${c.duration} s`, STAGES[c.stage] || c.stage];
    if (c.wall != null) bits.push(clock(c.wall));
    bits.push(money(c.cost) + (c.backend === "simulator" ? " sim" : ""));
    e._meta.textContent = bits.join(" \u00b7 ");
    e._show.setAttribute("aria-label", `Show run: ${excerpt}`);
    e._check.setAttribute("aria-label", `Select for comparison: ${excerpt}`);
    const p = posters.get(c.id);
    if (p && e._thumb.getAttribute("src") !== p) e._thumb.src = p;
    e.classList.toggle("fpw-current", c.id === get("status")?.run_id);
    return e;
  }
  function allCards() { return [...(get("history") || []), ...state.older.filter((o) => !(get("history") || []).some((c) => c.id === o.id))]; }
  function syncHistory() {
    const list = allCards();
    const focused = cards.contains(document.activeElement) ? document.activeElement : null;
    const els = list.map(card);
    const keep = new Set(list.map((c) => c.id));
    for (const [k, e] of cardEls) if (!keep.has(k)) cardEls.delete(k);
    if (els.length !== cards.children.length || els.some((e, i) => cards.children[i] !== e)) {
      cards.replaceChildren(...els);
      if (focused?.isConnected && document.activeElement !== focused) focused.focus();
    }
    const total = get("history_total") || list.length;
    histTitle.textContent = `History (${total} run${total === 1 ? "" : "s"})`;
    older.hidden = list.length >= total;
    history.hidden = !list.length;
    const missing = list.filter((c) => !posters.has(c.id) && !askedPosters.has(`${c.id}:${c.has_video}`));
    missing.forEach((c) => askedPosters.add(`${c.id}:${c.has_video}`));
    if (missing.length) send({ type: "posters", run_ids: missing.map((c) => c.id) });
    syncSelection();
    // A run shown in the comparison may have just finished: fetch its video.
    if (state.cmpIds) list.filter((c) => state.cmpIds.includes(c.id) && c.has_video).forEach((c) => requestVideo(c.id));
  }
  function syncSelection() {
    const sel = get("selected") || [];
    for (const [k, e] of cardEls) {
      e._check.checked = sel.includes(k);
      e._check.disabled = !e._check.checked && sel.length >= 4;
      e.classList.toggle("fpw-selected", e._check.checked);
    }
    compareBtn.disabled = sel.length < 2 || sel.length > 4;
  }
  on(compareBtn, "click", () => send({ type: "compare", run_ids: (get("selected") || []).slice(0, 4) }));
  on(older, "click", () => {
    const seqs = allCards().map((c) => c.seq).filter(Number.isInteger);
    send(seqs.length ? { type: "history", before: Math.min(...seqs) } : { type: "history", offset: allCards().length });
  });
  on(cardBtn, "click", () => send({ type: "export", what: "card", run_id: get("status")?.run_id }));
  on(exportBtn, "click", () => send({ type: "export", what: "comparison" }));
  on(sweepGo, "click", () => send({ type: "sweep", action: "confirm", sweep_id: get("sweep_info")?.sweep_id }));
  on(sweepStop, "click", () => send({ type: "sweep", action: "cancel", sweep_id: get("sweep_info")?.sweep_id }));
  function syncSweep() {
    const s = get("sweep_info") || {};
    sweepBox.hidden = !s.sweep_id;
    if (!s.sweep_id) return;
    sweepBox.dataset.state = s.state;
    const prog = Object.entries(s.progress || {}).map(([k, n]) => `${n} ${(STAGES[k] || k).toLowerCase()}`).join(", ");
    sweepText.textContent = `Sweep: ${s.description || ""}${s.state === "pending" ? " Nothing starts until you press Start sweep." : ` \u2014 ${s.state}: ${prog}`}${s.error ? ` ${s.error}` : ""}`;
    sweepGo.hidden = s.state !== "pending";
    sweepStop.hidden = s.state === "done" || s.state === "cancelled";
    sweepStop.textContent = s.state === "pending" ? "Discard sweep" : "Cancel sweep";
  }

  // ---------------------------------------------------------------- comparison
  function diffLine(ops) {
    return h("p", { class: "fpw-diff" }, ...(ops || []).map(([op, text]) =>
      op === "+" ? h("ins", { class: "fpw-add", text, title: "added" }) : op === "-" ? h("del", { class: "fpw-del", text, title: "removed" }) : h("span", { text }))
      .flatMap((e, i) => (i ? [" ", e] : [e])));
  }
  function syncComparison() {
    const cmp = get("comparison") || {};
    const ids = cmp.run_ids || [];
    const same = state.cmpIds && ids.join() === state.cmpIds.join();
    if (same) return fillCompare();
    state.sync?.destroy();
    state.sync = null;
    state.cmpIds = ids.length ? ids : null;
    compare.hidden = !ids.length;
    compare.dataset.ready = "false";
    grid.replaceChildren();
    if (!ids.length) return;
    const d = cmp.differs || {};
    const names = { prompt: "prompt", negative_prompt: "negative prompt", duration: "duration", start_image: "start image", end_image: "end image" };
    const diffs = Object.keys(names).filter((k) => d[k]).map((k) => names[k]);
    cmpSummary.textContent = diffs.length ? `What differs: ${diffs.join(", ")}.` : "These runs have the same inputs.";
    grid.style.setProperty("--fpw-cols", String(Math.min(ids.length, 4)));
    for (const item of cmp.items || []) {
      const v = h("video", { class: "fpw-cmp-video", muted: true, playsinline: true, loop: true, preload: "auto", "data-run-id": item.run_id });
      v.muted = true;
      const facts = [];
      if (d.negative_prompt) facts.push(h("span", { class: "fpw-fact fpw-changed", text: `Negative: ${item.negative_prompt || "(none)"}` }));
      facts.push(h("span", { class: `fpw-fact${d.duration ? " fpw-changed" : ""}`, text: `${item.duration} s` }));
      if (d.start_image) facts.push(h("span", { class: "fpw-fact fpw-changed", text: `Start image ${item.start_image?.sha?.slice(0, 6) || "?"}` }));
      if (d.end_image) facts.push(h("span", { class: "fpw-fact fpw-changed", text: item.end_image ? `End image ${item.end_image.sha.slice(0, 6)}` : "No end image" }));
      const note = h("p", { class: "fpw-cell-note" });
      grid.append(h("figure", { class: "fpw-cell", "data-run-id": item.run_id },
        h("figcaption", {}, h("strong", { class: "fpw-label", text: item.label }), diffLine(item.prompt), h("div", { class: "fpw-facts" }, ...facts)), v, note));
      on(v, "loadedmetadata", () => { v.dataset.ready = "true"; maybeSync(); });
    }
    fillCompare();
    root.querySelector(".fpw-compare")?.scrollIntoView?.({ block: "nearest" });
  }
  function fillCompare() {
    const hist = new Map(allCards().map((c) => [c.id, c]));
    for (const fig of grid.querySelectorAll(".fpw-cell")) {
      const rid = fig.dataset.runId, v = fig.querySelector("video"), note = fig.querySelector(".fpw-cell-note");
      const url = videos.get(rid), c = hist.get(rid);
      const p = posters.get(rid);
      if (p) v.setAttribute("poster", p);
      if (url) { if (v.getAttribute("src") !== url && safeUrl(url)) v.src = url; note.textContent = ""; }
      else if (!c || c.has_video) { requestVideo(rid); note.textContent = "Loading the video\u2026"; }
      else note.textContent = `No video yet (${STAGES[c.stage] || c.stage}).`;
    }
    maybeSync();
  }
  function maybeSync() {
    const vids = [...grid.querySelectorAll("video")];
    if (state.sync || vids.length < 2 || !vids.every((v) => v.dataset.ready === "true")) return;
    const s = (state.sync = new SyncController(vids));
    s.setRate(Number(speed.value));
    s.setLoop(loopBox.checked);
    seek.max = s.leader.duration || 10;
    [playBtn, prevBtn, nextBtn, seek].forEach((b) => { b.disabled = false; });
    compare.dataset.ready = "true";
    const upd = () => { playBtn.textContent = s.paused ? "Play" : "Pause"; if (!state.seeking) seek.value = s.leader.currentTime; };
    for (const ev of ["play", "pause", "timeupdate", "seeked"]) on(s.leader, ev, upd);
    upd();
  }
  on(playBtn, "click", () => state.sync?.toggle());
  on(prevBtn, "click", () => state.sync?.step(-1));
  on(nextBtn, "click", () => state.sync?.step(1));
  on(seek, "input", () => { state.seeking = true; state.sync?.seek(Number(seek.value)); });
  on(seek, "change", () => { state.seeking = false; });
  on(speed, "change", () => state.sync?.setRate(Number(speed.value)));
  on(loopBox, "change", () => state.sync?.setLoop(loopBox.checked));
  on(closeBtn, "click", () => send({ type: "compare", run_ids: [] }));
  on(compare, "keydown", (e) => {
    if (e.target.matches?.("input, select, textarea")) return;
    if (e.key === " " || e.key === "k") { e.preventDefault(); state.sync?.toggle(); }
    else if (e.key === ",") state.sync?.step(-1);
    else if (e.key === ".") state.sync?.step(1);
  });

  // ---------------------------------------------------------------- kernel -> view messages
  function onMessage(msg, buffers) {
    if (!msg || typeof msg !== "object") return;
    const buf = buffers?.[0];
    switch (msg.type) {
      case "image": {
        if (!SLOT_NAMES[msg.slot]) return;
        setSlotUrls(msg.slot, buf ? makeUrl(new Blob([buf], { type: msg.mime || "image/jpeg" })) : null);
        break;
      }
      case "generated":
      case "error":
        if (msg.request_id && msg.request_id === state.pending) { state.pending = null; clearTimeout(state.pendingTimer); updateGenerate(); }
        if (msg.type !== "error") break;
        showError([msg.message, msg.hint].filter(Boolean).join(" "));
        if (SLOT_NAMES[msg.slot]) { const s = slots[msg.slot]; dropUrl(s.preview); s.preview = null; syncSlot(msg.slot); }
        break;
      case "video": {
        if (videos.has(msg.run_id) || !buf) return;
        const key = `${msg.run_id}/${msg.nonce}`;
        const t = incoming.get(key) || { parts: new Array(msg.count), got: 0 };
        if (!t.parts[msg.index]) { t.parts[msg.index] = buf; t.got++; }
        incoming.set(key, t);
        if (t.got < msg.count) return;
        incoming.delete(key);
        keepVideo(msg.run_id, makeUrl(new Blob(t.parts, { type: msg.mime || "video/mp4" })));
        syncPlayer();
        fillCompare();
        break;
      }
      case "video_error":
        requested.delete(msg.run_id);
        if (msg.run_id === get("status")?.run_id) playerNote.textContent = msg.message || "";
        break;
      case "poster": {
        if (!buf) return;
        dropUrl(posters.get(msg.run_id));
        posters.set(msg.run_id, makeUrl(new Blob([buf], { type: msg.mime || "image/jpeg" })));
        const c = allCards().find((x) => x.id === msg.run_id);
        if (c) card(c);
        syncPlayer();
        break;
      }
      case "download": {
        if (!buf) return;
        const t = incoming.get(`dl/${msg.key}`) || { parts: new Array(msg.count), got: 0 };
        if (!t.parts[msg.index]) { t.parts[msg.index] = buf; t.got++; }
        incoming.set(`dl/${msg.key}`, t);
        if (t.got < msg.count) return;
        incoming.delete(`dl/${msg.key}`);
        const a = h("a", { href: makeUrl(new Blob(t.parts, { type: msg.mime || "application/octet-stream" })), download: msg.name || "download", hidden: true });
        root.append(a);
        a.click();
        a.remove();
        break;
      }
      case "history_page":
        state.older.push(...(msg.runs || []));
        syncHistory();
        break;
    }
  }

  // ---------------------------------------------------------------- wiring
  const handlers = [
    ["msg:custom", onMessage],
    ["change:prompt change:negative_prompt change:duration change:cost_per_second change:busy", syncInputs],
    ["change:backend change:backend_label change:balance", syncBackend],
    ["change:session_cost", syncSession],
    ["change:start_image_info", () => syncSlot("start")],
    ["change:end_image_info", () => syncSlot("end")],
    ["change:input_error", () => showError(get("input_error"))],
    ["change:status", () => { syncStatus(); syncHistory(); }],
    ["change:history change:history_total", syncHistory],
    ["change:selected", syncSelection],
    ["change:comparison", syncComparison],
    ["change:sweep_info", syncSweep],
    ["change:notice", () => { notice.textContent = get("notice") || ""; }],
  ];
  for (const [ev, fn] of handlers) for (const name of ev.split(" ")) model.on(name, fn);
  syncInputs();
  syncBackend();
  syncSlot("start");
  syncSlot("end");
  showError(get("input_error"));
  syncStatus();
  syncHistory();
  syncComparison();
  syncSweep();
  notice.textContent = get("notice") || "";
  send({ type: "hello" });

  return () => {
    for (const [ev, fn] of handlers) for (const name of ev.split(" ")) model.off(name, fn);
    ac.abort();
    state.sync?.destroy();
    clearInterval(state.ticker);
    clearTimeout(state.pendingTimer);
    for (const u of urls) URL.revokeObjectURL(u);
    urls.clear();
    el.replaceChildren();
  };
}

export default { initialize, render };
