// framepack_widgets frontend: one no-build ES module (so past 600 lines); render() composes
// mount functions of under 150 lines. State in traits, bytes in message buffers (see
// widget/_protocol.py). Text only via textContent; only http(s) and blob: URLs reach a src.

const STAGES = {
  idle: "Ready", queued: "Queued", waiting: "Waiting", submitting: "Submitting", pending: "Pending: waiting in the queue",
  processing: "Processing", downloading: "Downloading the video", completed: "Done", failed: "Failed",
  cancelled: "Cancelled", submission_unknown: "Submission unknown", timed_out: "Timed out", error: "Error",
};
const SLOT_NAMES = { start: "Start image", end: "End image" };
const KEEP_VIDEOS = 8; // blob URLs kept per view, besides those shown

/** Only http(s) and blob: URLs may reach a src (not javascript:, data:...). `local` also allows
 * a relative path inside the page's folder (the gallery's files); `web: false` refuses http(s). */
export function safeUrl(url, { blob = true, local = false, web = true } = {}) {
  if (typeof url !== "string") return null;
  const u = url.trim();
  if ((web && /^https?:\/\//i.test(u)) || (blob && /^blob:/i.test(u))) return u;
  if (local && /^[\w-][\w.\/-]*$/.test(u) && !u.split("/").includes("..")) return u;
  return null;
}

export const money = (x) => "$" + (Number(x) || 0).toFixed(2);

export function clock(seconds) {
  const s = Math.max(0, Math.floor(Number(seconds) || 0));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

/** " · $0.30" for `secs` at the model's rate; without a rate, no figure rather than a guess. */
const price = (get, secs) => (Number.isFinite(get("cost_per_second")) ? ` · ${money(secs * get("cost_per_second"))}` : "");
const simulated = (get) => (get("backend") === "simulator" ? " (simulated, nothing charged)" : "");

/** h("p.fpw-note", { role: "status" }, ...kids): classes follow the tag name; text becomes
 * text nodes, never parsed as HTML. */
export function h(tag, attrs = {}, ...kids) {
  const [name, ...classes] = tag.split(".");
  const e = document.createElement(name);
  if (classes.length) e.className = classes.join(" ");
  for (const [k, v] of Object.entries(attrs)) {
    if (v == null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const kid of kids.flat()) if (kid != null && kid !== false) e.append(kid);
  return e;
}

/** type="button": never submits a form the widget sits in. */
const button = (text, attrs) => h("button", { type: "button", text, ...attrs });

/** A muted, looping inline video (the attribute alone does not mute a created element). */
function video(attrs) {
  const v = h("video", { muted: true, playsinline: true, loop: true, ...attrs });
  v.muted = true;
  return v;
}

/** Play; a refusal (autoplay rules, a source swapped meanwhile) is no error. */
const play = (v) => v.play?.()?.catch?.(() => {});

/** Point a media element at `url` unless it already is, or the URL may not reach a src. */
function setSrc(el, url, rules) {
  if (!url || el.getAttribute("src") === url || !safeUrl(url, rules)) return false;
  el.src = url;
  return true;
}

/** Downscale an image (long side <= maxSide) to a JPEG, at a lower quality if needed to fit
 * in `targetBytes` (one message chunk). */
export async function downscale(file, maxSide, targetBytes = Infinity) {
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
    if (blob && blob.size <= targetBytes) break;
  }
  return { buffer: await blob.arrayBuffer(), mime: "image/jpeg", width: w, height: hgt };
}

/** Bytes to the kernel in messages of at most `size` bytes (some front-ends drop messages
 * around 1 MB); the kernel joins them by upload_id, index and count. */
export function sendInChunks(send, head, buffer, size) {
  const total = buffer.byteLength, count = Math.max(1, Math.ceil(total / size));
  const upload_id = Math.random().toString(36).slice(2, 10);
  for (let index = 0; index < count; index++) send({ ...head, upload_id, index, count, total }, [buffer.slice(index * size, (index + 1) * size)]);
}

/** Keeps 2-4 videos in step behind a leader (the longest): a follower drifting more than a
 * third of a frame is nudged (playbackRate) or, far off, seeked. Ticks on the leader's frames. */
export class SyncController {
  constructor(videos, { fps, raf } = {}) {
    this.videos = [...videos];
    this.fps = fps;
    this.tol = 1 / (3 * fps);
    this.raf = raf ?? globalThis.requestAnimationFrame?.bind(globalThis);
    this.rate = 1;
    this.running = false;
    this.maxDrift = 0;
    this.leader = this.videos.reduce((a, b) => ((b.duration || 0) > (a.duration || 0) ? b : a));
    this.ac = new AbortController();
    const o = { signal: this.ac.signal }, L = this.leader;
    L.addEventListener("play", () => { this.followers.forEach(play); this.start(); }, o);
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
        if (want < (v.duration || Infinity) - this.tol) { v.currentTime = want; play(v); }
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
      if (!this.running) return; // paused or destroyed meanwhile
      this.tick();
      if (L.paused) { this.running = false; return; }
      next();
    };
    const next = () => (L.requestVideoFrameCallback ? L.requestVideoFrameCallback(frame) : this.raf ? this.raf(frame) : setTimeout(frame, 16));
    next();
  }
  play() {
    this.align();
    this.videos.forEach((v) => { v.playbackRate = this.rate; play(v); });
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
    // Shorter followers hold their last frame until the leader loops back.
    this.videos.forEach((v) => { v.loop = on && (v === this.leader || !((v.duration || 0) < (this.leader.duration || 0) - 1 / this.fps)); });
  }
  destroy() { this.running = false; this.ac.abort(); }
}

// ----- per-view plumbing

/** What one mount listens to and owns; close() undoes it all: DOM and model listeners,
 * deferred clean-ups (timers, subscriptions), the blob URLs it made. */
function scope(model) {
  const ac = new AbortController(), undo = [], urls = new Set();
  const listen = (name, fn) => { model.on(name, fn); undo.push(() => model.off(name, fn)); };
  const s = {
    get closed() { return ac.signal.aborted; },
    on: (target, ev, fn) => target.addEventListener(ev, fn, { signal: ac.signal }),
    /** fn on a change of any of these traits ("a b c"); follow also runs it now, to catch up. */
    watch(traits, fn) { for (const t of traits.split(" ")) listen(`change:${t}`, fn); },
    follow(traits, fn) { s.watch(traits, fn); fn(); },
    /** Kernel -> view messages by type (only a table's own keys, never inherited ones). */
    messages(table) { listen("msg:custom", (msg, buffers) => { if (msg && Object.hasOwn(table, msg.type)) table[msg.type](msg, buffers?.[0]); }); },
    defer(fn) { undo.push(fn); },
    url(blob) { const u = URL.createObjectURL(blob); urls.add(u); return u; },
    drop(u) { if (u && urls.delete(u)) URL.revokeObjectURL(u); },
    close() {
      ac.abort();
      for (const fn of undo.splice(0).reverse()) fn();
      for (const u of urls) URL.revokeObjectURL(u);
      urls.clear();
    },
  };
  return s;
}

/** A request sent and not yet answered (a double click sends one); given up after a minute
 * (then `onGiveUp()`) in case no answer ever comes. */
function inFlight(s, prefix, onGiveUp) {
  let id = null, timer = 0;
  s.defer(() => clearTimeout(timer));
  return {
    get id() { return id; },
    start() {
      id = `${prefix}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
      clearTimeout(timer);
      timer = setTimeout(() => { id = null; onGiveUp(); }, 60000);
      return id;
    },
    answers(msg) {
      if (!id || msg.request_id !== id) return false;
      id = null;
      clearTimeout(timer);
      return true;
    },
  };
}

/** Videos, posters and downloads: reassembled from chunked buffers into blob URLs that
 * this store owns. Mounts read them and subscribe to (what, run_id, message) arrivals. */
function mediaStore(ctx) {
  const s = scope(ctx.model);
  const videos = new Map(), posters = new Map(), incoming = new Map(), requested = new Set(), subs = new Set();
  const tell = (...args) => { for (const fn of [...subs]) fn(...args); };
  function gather(key, msg, buf, mime) {
    const { index, count } = msg;
    if (!buf || !Number.isInteger(count) || !Number.isInteger(index) || index < 0 || index >= count) return null;
    const t = incoming.get(key) || { parts: [], got: 0 };
    if (!t.parts[index]) { t.parts[index] = buf; t.got++; }
    incoming.set(key, t);
    if (t.got < count) return null;
    incoming.delete(key);
    return new Blob(t.parts, { type: msg.mime || mime });
  }
  function keep(rid, url) {
    videos.set(rid, url);
    const shown = new Set([...ctx.root.querySelectorAll("video")].map((v) => v.getAttribute("src")));
    for (const [k, u] of videos) {
      if (videos.size <= KEEP_VIDEOS) break;
      if (!shown.has(u)) { videos.delete(k); s.drop(u); requested.delete(k); }
    }
  }
  s.messages({
    video(msg, buf) {
      if (videos.has(msg.run_id)) return;
      const blob = gather(`v:${msg.run_id}/${msg.nonce}`, msg, buf, "video/mp4");
      if (blob) { keep(msg.run_id, s.url(blob)); tell("video", msg.run_id); }
    },
    video_error(msg) { requested.delete(msg.run_id); tell("video_error", msg.run_id, msg.message); },
    poster(msg, buf) {
      if (!buf) return;
      s.drop(posters.get(msg.run_id));
      posters.set(msg.run_id, s.url(new Blob([buf], { type: msg.mime || "image/jpeg" })));
      tell("poster", msg.run_id);
    },
    download(msg, buf) {
      const blob = gather(`d:${msg.key}`, msg, buf, "application/octet-stream");
      if (!blob) return;
      const a = h("a", { href: s.url(blob), download: msg.name || "download", hidden: true });
      ctx.root.append(a);
      a.click();
      a.remove();
    },
  });
  return {
    video: (rid) => videos.get(rid),
    poster: (rid) => posters.get(rid),
    request(rid) {
      if (requested.has(rid) || videos.has(rid)) return;
      requested.add(rid);
      ctx.send({ type: "video", run_id: rid, nonce: ctx.id });
    },
    subscribe(fn) { subs.add(fn); return () => subs.delete(fn); },
    close: s.close,
  };
}

// ----- mounts
// Each builds its part in `box`, keeps it in step with the model and returns its cleanup;
// they share only `ctx` (see context below).

const QUIET = "No answer from the kernel: run this cell to use the widget again.";

function mountHeader(ctx, box) {
  const s = scope(ctx.model), { get } = ctx;
  const badge = h("span.fpw-badge");
  const balance = h("span.fpw-balance");
  const notice = h("p.fpw-notice", { "aria-live": "polite" });
  box.append(h("div.fpw-head", {}, h("span.fpw-title", { text: "FramePack" }), badge, balance), notice);
  function sync() {
    const sim = get("backend") === "simulator";
    badge.textContent = get("backend_label") || (sim ? "Offline simulator" : "PiAPI");
    badge.className = `fpw-badge ${sim ? "fpw-badge-sim" : "fpw-badge-api"}`;
    balance.textContent = get("balance") ? `Balance: ${get("balance")}` : "";
    ctx.root.dataset.backend = get("backend");
    ctx.root.classList.toggle("fpw-quiet", late);
    notice.textContent = get("notice") || (late ? QUIET : "");
  }
  // No answer to "hello": a busy kernel, or saved state with no kernel (the snapshot shows).
  let late = false;
  const timer = setTimeout(() => sync(late = true), 5000);
  const stop = () => { clearTimeout(timer); ctx.model.off("msg:custom", heard); };
  const heard = () => { stop(); sync(late = false); };
  ctx.model.on("msg:custom", heard);
  s.defer(stop);
  s.follow("backend backend_label balance notice", sync);
  return s.close;
}

/** The start and end image slots: file, drop, paste or URL in; the kernel's thumbnail out. */
function mountSlots(ctx, box, say) {
  const s = scope(ctx.model), { id, get, send } = ctx;
  const slots = {};
  const isSlot = (slot) => typeof slot === "string" && Object.hasOwn(SLOT_NAMES, slot);
  const firstImage = (files) => [...(files || [])].find((f) => f.type.startsWith("image/"));
  for (const [slot, name] of Object.entries(SLOT_NAMES)) {
    const fid = `${id}-${slot}`;
    const file = h("input.fpw-file", { type: "file", accept: "image/*", id: fid, "aria-describedby": `${fid}-hint` });
    const img = h("img.fpw-thumb", { alt: "", hidden: true });
    const hint = h("span.fpw-slot-hint", { id: `${fid}-hint`, text: `${slot === "start" ? "Required" : "Optional"}. Drop, paste or click to choose.` });
    const meta = h("span.fpw-slot-meta");
    const clear = button("×", { class: "fpw-clear", "aria-label": `Remove ${name.toLowerCase()}`, title: "Remove", hidden: true });
    const url = h("input.fpw-url", { type: "url", "aria-label": `${name} URL`, placeholder: "or an image URL (https://…)" });
    const drop = h("div.fpw-drop", {}, img, h("label.fpw-slot-label", { for: fid, text: name }), hint, meta, file);
    const slotBox = h("div", { class: `fpw-slot fpw-slot-${slot}`, "data-slot": slot }, drop, clear, url);
    slots[slot] = { box: slotBox, img, meta, clear, url, preview: null, thumb: null };
    box.append(slotBox);
    s.on(drop, "click", (e) => { if (e.target !== file && !e.target.closest?.("label")) file.click(); });
    s.on(file, "change", () => { if (file.files?.[0]) upload(slot, file.files[0]); file.value = ""; });
    s.on(drop, "dragover", (e) => { e.preventDefault(); drop.classList.add("fpw-over"); });
    s.on(drop, "dragleave", () => drop.classList.remove("fpw-over"));
    s.on(drop, "drop", (e) => {
      e.preventDefault();
      drop.classList.remove("fpw-over");
      const f = firstImage(e.dataTransfer?.files);
      const u = e.dataTransfer?.getData?.("text/uri-list") || e.dataTransfer?.getData?.("text/plain");
      if (f) upload(slot, f);
      else if (u) sendUrl(slot, u.split(/\s+/)[0]);
    });
    s.on(url, "keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); sendUrl(slot, url.value); } });
    s.on(url, "change", () => url.value.trim() && sendUrl(slot, url.value));
    s.on(clear, "click", () => send({ type: "clear_image", slot }));
  }
  s.on(ctx.root, "paste", (e) => {
    const f = firstImage(e.clipboardData?.files);
    if (!f) return;
    e.preventDefault();
    upload(e.target.closest?.(".fpw-slot")?.dataset.slot || (get("start_image_info") ? "end" : "start"), f);
  });

  async function upload(slot, file) {
    if (!file.type.startsWith("image/") && file.type) return say(`${SLOT_NAMES[slot]}: “${file.name}” is not an image. Choose a JPEG, PNG or WebP file.`);
    const t = slots[slot];
    t.meta.textContent = "Preparing…";
    try {
      const { max_side, chunk_bytes, max_upload_bytes } = get("limits");
      const img = await downscale(file, max_side, chunk_bytes);
      if (s.closed) return;
      const mb = (img.buffer.byteLength / 2 ** 20).toFixed(1);
      if (img.buffer.byteLength > max_upload_bytes) throw new Error(`the file is too large to send from the browser (${mb} MB); set widget.${slot}_image from Python instead`);
      s.drop(t.preview);
      t.preview = s.url(new Blob([img.buffer], { type: img.mime }));
      show(slot);
      sendInChunks(send, { type: "upload", slot, name: file.name || "pasted image", mime: img.mime, size: file.size, width: img.width, height: img.height }, img.buffer, chunk_bytes);
    } catch (err) {
      t.meta.textContent = "";
      say(`${SLOT_NAMES[slot]} could not be read: ${err?.message || err}`);
    }
  }
  function sendUrl(slot, value) {
    const u = safeUrl(value, { blob: false });
    if (!u) return say("An image URL must start with http:// or https://.");
    send({ type: "image_url", slot, url: u });
  }
  function show(slot) {
    const t = slots[slot], info = get(`${slot}_image_info`);
    const u = safeUrl(t.preview || t.thumb || info?.url);
    t.img.hidden = !u;
    if (u) t.img.src = u; else t.img.removeAttribute("src");
    t.box.classList.toggle("fpw-has-image", !!u);
    t.clear.hidden = !u;
  }
  function setThumb(slot, thumb) {
    const t = slots[slot];
    s.drop(t.preview);
    if (t.thumb !== thumb) s.drop(t.thumb);
    t.preview = null;
    t.thumb = thumb;
    show(slot);
  }
  function sync(slot) {
    const info = get(`${slot}_image_info`), t = slots[slot];
    t.meta.textContent = info ? `${info.name || ""}${info.width ? ` · ${info.width}×${info.height}` : ""}` : "";
    if (info) show(slot);
    else { t.url.value = ""; setThumb(slot, null); }
  }
  s.messages({
    image(msg, buf) { if (isSlot(msg.slot)) setThumb(msg.slot, buf ? s.url(new Blob([buf], { type: msg.mime || "image/jpeg" })) : null); },
    error(msg) { if (isSlot(msg.slot)) { s.drop(slots[msg.slot].preview); slots[msg.slot].preview = null; sync(msg.slot); } },
  });
  for (const slot of Object.keys(SLOT_NAMES)) s.follow(`${slot}_image_info`, () => sync(slot));
  return s.close;
}

/** Image slots, prompt, negative prompt, duration with its price, Generate and Cancel. */
function mountInputs(ctx, box) {
  const s = scope(ctx.model), { id, get, save, send } = ctx;
  const field = (label, control, extra) => h("div.fpw-field", {}, h("label", { for: control.id, text: label }), control, extra);
  const prompt = h("textarea.fpw-prompt", { id: `${id}-prompt`, rows: 3, maxlength: get("limits").max_prompt_chars, placeholder: "What should happen? e.g. “the camera slowly zooms in”", "aria-keyshortcuts": "Control+Enter Meta+Enter" });
  const negative = h("textarea.fpw-negative", { id: `${id}-neg`, rows: 1, placeholder: "What to avoid (optional)" });
  const dur = h("input.fpw-duration", { id: `${id}-dur`, type: "range", step: 1 });
  const durOut = h("output.fpw-cost", { for: dur.id, "aria-live": "polite" });
  const generate = button("Generate", { class: "fpw-generate fpw-primary", "aria-describedby": `${id}-why` });
  const cancel = button("Cancel", { class: "fpw-cancel", disabled: true });
  const why = h("span.fpw-why", { id: `${id}-why` });
  const session = h("span.fpw-session");
  const inputError = h("p.fpw-input-error", { role: "alert" });
  const slotBox = h("div.fpw-slots");
  box.append(h("section.fpw-inputs", { "aria-label": "Inputs" }, slotBox,
    field("Prompt", prompt), field("Negative prompt", negative), field("Duration", dur, durOut),
    h("div.fpw-actions", {}, generate, cancel, session), why, inputError));
  const say = (message) => { inputError.textContent = message || ""; };
  const request = inFlight(s, id, updateGenerate);
  s.defer(mountSlots(ctx, slotBox, say));

  s.on(prompt, "input", () => { save("prompt", prompt.value); updateGenerate(); });
  s.on(negative, "input", () => save("negative_prompt", negative.value));
  s.on(dur, "input", () => { updateCost(Number(dur.value)); save("duration", Number(dur.value)); });
  s.on(prompt, "keydown", (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); doGenerate(); } });
  s.on(generate, "click", () => doGenerate());
  s.on(cancel, "click", () => send({ type: "cancel", run_id: get("status")?.run_id }));

  function whyNot() {
    if (request.id || get("busy")) return "A submission is in flight…";
    if (!get("start_image_info")) return "Add a start image to generate.";
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
    send({ type: "generate", request_id, prompt: prompt.value, negative_prompt: negative.value, duration: Number(dur.value) });
  }
  const updateCost = (d = get("duration")) => { durOut.textContent = `${d} s${price(get, d)}`; };
  const mirror = (el, k) => { if (document.activeElement !== el && el.value !== get(k)) el.value = get(k) ?? ""; };
  function sync() {
    mirror(prompt, "prompt");
    mirror(negative, "negative_prompt");
    dur.min = get("min_duration");
    dur.max = get("max_duration");
    if (String(dur.value) !== String(get("duration"))) dur.value = get("duration");
    updateCost();
    updateGenerate();
  }
  const syncSession = () => { session.textContent = `Session: ${money(get("session_cost"))}${simulated(get)}`; };
  const syncCancel = () => { cancel.disabled = !get("status")?.running; };
  s.messages({
    generated(msg) { if (request.answers(msg)) updateGenerate(); },
    error(msg) {
      if (request.answers(msg)) updateGenerate();
      say([msg.message, msg.hint].filter(Boolean).join(" "));
    },
  });
  s.follow("prompt negative_prompt duration cost_per_second min_duration max_duration busy", sync);
  s.watch("start_image_info", updateGenerate);
  s.follow("session_cost backend", syncSession);
  s.follow("status", syncCancel);
  s.follow("input_error", () => say(get("input_error")));
  return s.close;
}

/** The live status of the current run; the elapsed time ticks here, not in the kernel. */
function mountStatus(ctx, box) {
  const s = scope(ctx.model), { get } = ctx;
  const stageEl = h("span.fpw-stage");
  const elapsedEl = h("span.fpw-elapsed", { "aria-hidden": "true" }); // ticks: not announced
  const bar = h("progress.fpw-progress", { max: 100, "aria-label": "Progress" });
  const pctEl = h("span.fpw-percent", { "aria-hidden": "true" });
  const etaEl = h("p.fpw-eta");
  const logsEl = h("pre.fpw-logs");
  const errEl = h("p.fpw-error");
  const hintEl = h("p.fpw-hint");
  const statusBox = h("div.fpw-status", { role: "status", "aria-live": "polite" },
    h("div.fpw-status-line", {}, stageEl, elapsedEl), h("div.fpw-bar-line", {}, bar, pctEl), etaEl, logsEl, errEl, hintEl);
  box.append(statusBox);
  let ticker = 0, t0 = 0;
  s.defer(() => clearInterval(ticker));
  function tick() {
    const st = get("status") || {};
    const secs = (performance.now() - t0) / 1000;
    elapsedEl.textContent = st.elapsed == null ? "" : clock(st.running ? secs : st.elapsed);
    if (st.running && st.percent == null && st.eta > 0) {
      const est = Math.min(95, (100 * secs) / st.eta);
      bar.value = est;
      pctEl.textContent = `≈${Math.round(est)}% (estimate)`;
    }
  }
  function sync() {
    const st = get("status") || {};
    const stage = st.stage || "idle";
    statusBox.dataset.stage = stage;
    statusBox.dataset.runId = st.run_id || "";
    stageEl.textContent = STAGES[stage] || stage;
    t0 = performance.now() - (st.elapsed || 0) * 1000;
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
    clearInterval(ticker);
    if (st.running) ticker = setInterval(tick, 500);
    tick();
  }
  s.follow("status", sync);
  return s.close;
}

/** The current run's player, its download link, the run-card export and Extend (its last
 * frame becomes the start image). */
function mountResult(ctx, box) {
  const s = scope(ctx.model), { get, send, media } = ctx;
  const player = video({ class: "fpw-video", "aria-label": "Result video", controls: true, preload: "metadata", hidden: true });
  const note = h("p.fpw-player-note");
  const saveVideo = h("a.fpw-link", { text: "Download video", hidden: true });
  const cardBtn = button("Run card", { class: "fpw-card-export", title: "Download a run card (.zip: metadata and poster)", hidden: true });
  const extend = button("Extend", { class: "fpw-extend", hidden: true });
  box.append(player, note, h("div.fpw-actions", {}, saveVideo, cardBtn, extend));
  const lastStage = new Map();
  let autoplay = null;
  function onStatus() {
    const st = get("status") || {};
    const prev = lastStage.get(st.run_id);
    if (st.run_id) lastStage.set(st.run_id, st.stage);
    if (st.stage === "completed" && prev && prev !== "completed") autoplay = st.run_id; // it just finished here
    sync();
  }
  function sync() {
    const st = get("status") || {};
    const rid = st.run_id;
    cardBtn.hidden = !rid || !!st.running;
    extend.hidden = !(rid && st.stage === "completed" && st.has_video);
    if (extend.hidden) {
      saveVideo.hidden = true;
      player.hidden = true;
      player.removeAttribute("data-run-id");
      note.textContent = rid && st.stage === "completed" ? "This run's video is not in the local cache." : "";
      return;
    }
    player.hidden = false;
    const url = media.video(rid), poster = media.poster(rid);
    if (poster && player.getAttribute("poster") !== poster) player.setAttribute("poster", poster);
    if (player.dataset.runId !== rid) {
      saveVideo.hidden = true;
      player.dataset.runId = rid;
      player.dataset.ready = "false";
      player.removeAttribute("src");
      player.load?.();
    }
    if (!url) { media.request(rid); note.textContent = "Loading the video…"; return; }
    saveVideo.hidden = false;
    saveVideo.href = url;
    saveVideo.download = `framepack-${rid.slice(0, 8)}.mp4`;
    if (setSrc(player, url) && autoplay === rid) { autoplay = null; play(player); }
    note.textContent = "";
  }
  s.on(player, "loadedmetadata", () => { player.dataset.ready = "true"; });
  s.on(player, "error", () => { player.dataset.ready = "error"; });
  s.on(cardBtn, "click", () => send({ type: "export", what: "card", run_id: get("status")?.run_id }));
  s.on(extend, "click", () => send({ type: "extend", run_id: get("status")?.run_id }));
  s.messages({ extended() { ctx.root.querySelector(".fpw-prompt")?.focus(); } });
  s.defer(media.subscribe((what, rid, message) => {
    if (what !== "video_error") sync();
    else if (rid === get("status")?.run_id) note.textContent = message || "";
  }));
  s.follow("status", onStatus);
  return s.close;
}

/** A hidden section (class `cls`): a line of text (`cls`-text) and its buttons. */
function bar(box, cls, label, ...buttons) {
  const text = h("p", { class: `${cls}-text` });
  const section = h("section", { class: cls, "aria-label": label, hidden: true }, text, h("div.fpw-actions", {}, ...buttons));
  box.append(section);
  return { section, text };
}

/** A sweep waiting for confirmation, or its progress. */
function mountSweep(ctx, box) {
  const s = scope(ctx.model), { get, send } = ctx;
  const go = button("Start sweep", { class: "fpw-primary" }), stop = button("Discard sweep");
  const { section, text } = bar(box, "fpw-sweep", "Sweep", go, stop);
  const tell = (action) => send({ type: "sweep", action, sweep_id: get("sweep_info")?.sweep_id });
  s.on(go, "click", () => tell("confirm"));
  s.on(stop, "click", () => tell("cancel"));
  function sync() {
    const sw = get("sweep_info") || {};
    section.hidden = !sw.sweep_id;
    if (!sw.sweep_id) return;
    section.dataset.state = sw.state;
    const prog = Object.entries(sw.progress || {}).map(([k, n]) => `${n} ${(STAGES[k] || k).toLowerCase()}`).join(", ");
    text.textContent = `Sweep: ${sw.description || ""}${sw.state === "pending" ? " Nothing starts until you press Start sweep." : ` — ${sw.state}: ${prog}`}${sw.error ? ` ${sw.error}` : ""}`;
    go.hidden = sw.state !== "pending";
    stop.hidden = sw.state === "done" || sw.state === "cancelled";
    stop.textContent = sw.state === "pending" ? "Discard sweep" : "Cancel sweep";
  }
  s.follow("sweep_info", sync);
  return s.close;
}

/** Runs a stopped kernel left stored but never sent: nothing sends them until the person says. */
export function mountQueued(ctx, box) {
  const s = scope(ctx.model), { get, send } = ctx;
  const go = button("Send", { class: "fpw-primary" }), drop = button("Discard");
  const { section, text } = bar(box, "fpw-queued", "Queued runs", go, drop);
  const tell = (action) => { go.disabled = drop.disabled = true; send({ type: "queued", action }); };
  s.on(go, "click", () => tell("send"));
  s.on(drop, "click", () => tell("discard"));
  function sync() {
    const q = get("queued") || {};
    section.hidden = !q.count;
    go.disabled = drop.disabled = false;
    text.textContent = q.text || "";
  }
  s.follow("queued", sync);
  return s.close;
}

/** Run cards (with posters), selection for comparison, older pages, and Share: the selected
 * (or all finished) runs as a gallery folder, written by the kernel, downloaded here. */
function mountHistory(ctx, box) {
  const s = scope(ctx.model), { get, save, send, media } = ctx;
  const cards = h("div.fpw-cards", { role: "list" });
  const compareBtn = button("Compare", { class: "fpw-compare-btn", disabled: true });
  const older = button("Show older runs", { class: "fpw-older", hidden: true });
  const title = h("h3.fpw-h");
  const section = h("section.fpw-history", { "aria-label": "History" },
    h("div.fpw-history-head", {}, title, h("span.fpw-select-hint", { text: `Select 2 to ${get("limits").max_compared} runs, then` }), compareBtn), cards, older);
  const share = button("Share", { class: "fpw-share", title: "A folder (page, videos, posters, run cards) that opens in any browser: no kernel, key or package" });
  const shareHint = h("span.fpw-share-hint");
  const shareRow = h("div.fpw-actions.fpw-share-row", { hidden: true }, share, shareHint);
  box.append(section, shareRow);
  const els = new Map(); // run id -> the card's elements
  const askedPosters = new Set();
  function card(c) {
    let r = els.get(c.id);
    if (!r) {
      const thumb = h("img.fpw-card-thumb", { alt: "" });
      const show = h("button.fpw-card-show", { type: "button" }, thumb);
      const text = h("p.fpw-card-prompt");
      const meta = h("p.fpw-card-meta");
      const check = h("input.fpw-card-check", { type: "checkbox" });
      // Extend continues from this run's last frame; its chain ("part 2 of 3") plays as one video.
      const chain = button("", { class: "fpw-card-chain", hidden: true }), extend = button("Extend", { class: "fpw-card-extend" });
      const e = h("div.fpw-card", { role: "listitem", "data-run-id": c.id }, show, h("div.fpw-card-body", {}, text, meta),
        h("label.fpw-card-sel", {}, check), h("div.fpw-card-links", {}, chain, extend));
      r = { e, thumb, show, text, meta, check, chain, extend };
      for (const [el, type] of [[show, "show"], [chain, "chain"], [extend, "extend"]]) s.on(el, "click", () => send({ type, run_id: c.id }));
      s.on(check, "change", () => {
        const sel = (get("selected") || []).filter((x) => x !== c.id);
        if (check.checked) sel.push(c.id);
        save("selected", sel.slice(-get("limits").max_compared));
        syncSelection();
      });
      els.set(c.id, r);
    }
    const excerpt = c.prompt.length > 80 ? c.prompt.slice(0, 79) + "…" : c.prompt;
    r.e.dataset.stage = c.stage;
    r.text.textContent = excerpt || "(no prompt)";
    r.text.title = c.prompt;
    const bits = [`${c.duration} s`, STAGES[c.stage] || c.stage, c.wall != null && clock(c.wall), money(c.cost) + (c.backend === "simulator" ? " sim" : "")];
    r.meta.textContent = bits.filter(Boolean).join(" · ");
    r.show.setAttribute("aria-label", `Show run: ${excerpt}`);
    r.check.setAttribute("aria-label", `Select for comparison: ${excerpt}`);
    r.extend.hidden = !c.has_video;
    r.chain.hidden = !c.chain;
    if (c.chain) {
      r.chain.textContent = `part ${c.chain.part} of ${c.chain.of}`;
      r.chain.setAttribute("aria-label", `Play the whole chain, ${r.chain.textContent}: ${excerpt}`);
    }
    setSrc(r.thumb, media.poster(c.id));
    r.e.classList.toggle("fpw-current", c.id === get("status")?.run_id);
    return r.e;
  }
  function sync() {
    const list = ctx.runs();
    const focused = cards.contains(document.activeElement) ? document.activeElement : null;
    const shown = list.map(card);
    const keep = new Set(list.map((c) => c.id));
    for (const k of els.keys()) if (!keep.has(k)) els.delete(k);
    if (shown.length !== cards.children.length || shown.some((e, i) => cards.children[i] !== e)) {
      cards.replaceChildren(...shown);
      if (focused?.isConnected && document.activeElement !== focused) focused.focus();
    }
    const total = get("history_total") || list.length;
    title.textContent = `History (${total} run${total === 1 ? "" : "s"})`;
    older.hidden = list.length >= total;
    section.hidden = !list.length;
    shareRow.hidden = !list.some((c) => c.has_video);
    const key = (c) => `${c.id}:${c.has_video}`; // asked again once the run has its video
    const missing = list.filter((c) => !media.poster(c.id) && !askedPosters.has(key(c)));
    missing.forEach((c) => askedPosters.add(key(c)));
    if (missing.length) send({ type: "posters", run_ids: missing.map((c) => c.id) });
    syncSelection();
  }
  function syncSelection() {
    const sel = get("selected") || [], most = get("limits").max_compared;
    for (const [k, { e, check }] of els) {
      check.checked = sel.includes(k);
      check.disabled = !check.checked && sel.length >= most;
      e.classList.toggle("fpw-selected", check.checked);
    }
    compareBtn.disabled = sel.length < 2 || sel.length > most;
    const n = sel.length;
    shareHint.textContent = n ? `a gallery of the ${n} selected run${n === 1 ? "" : "s"}` : "a gallery of the finished runs (select some to share only those)";
  }
  s.on(compareBtn, "click", () => send({ type: "compare", run_ids: (get("selected") || []).slice(0, get("limits").max_compared) }));
  s.on(share, "click", () => send({ type: "share", run_ids: get("selected") || [] }));
  s.on(older, "click", () => {
    const list = ctx.runs(), seqs = list.map((c) => c.seq).filter(Number.isInteger);
    send(seqs.length ? { type: "history", before: Math.min(...seqs) } : { type: "history", offset: list.length });
  });
  s.messages({ history_page(msg) { ctx.older.push(...(msg.runs || [])); sync(); } });
  s.defer(media.subscribe((what, rid) => {
    const c = what === "poster" && ctx.runs().find((x) => x.id === rid);
    if (c) card(c);
  }));
  s.watch("selected", syncSelection);
  s.follow("history history_total status", sync);
  return s.close;
}

/** The Timeline panel: the draft (this view's) to edit and start, then the kernel's
 * timeline_info: each segment's status, Retry segment, the stitched video. */
function mountTimeline(ctx, box) {
  const s = scope(ctx.model), { id, get, send, media } = ctx;
  let draft = [], editing = true, planId = null, shownId;
  const list = h("ol.fpw-segments");
  const add = button("Add segment"), start = button("Start timeline", { class: "fpw-primary" }), stop = button("Cancel timeline"), again = button("New timeline");
  const total = h("p.fpw-tl-total"), note = h("p.fpw-notice", { role: "status" });
  const player = video({ class: "fpw-tl-video", "aria-label": "Timeline video", controls: true, hidden: true });
  const panel = h("details.fpw-timeline", {}, h("summary.fpw-h", { text: "Timeline: several prompts, one video" }),
    h("p.fpw-notice", { text: "Each segment starts from the previous one's last frame." }),
    list, h("div.fpw-actions", {}, add, start, stop, again), total, note, player);
  box.append(panel);
  const request = inFlight(s, `${id}-tl`, sync);
  const info = () => get("timeline_info") || {};
  const live = () => !editing && !!info().timeline_id;
  const secs = () => draft.reduce((a, g) => a + (Number(g.duration) || 0), 0);
  const copy = (segs) => segs.map((g) => ({ prompt: g.prompt, duration: g.duration }));
  const tell = (action, more) => send({ type: "timeline", action, timeline_id: info().timeline_id, ...more });

  function build(focus) {
    const t = info(), on = live(), segs = on ? t.segments || [] : draft;
    list.replaceChildren(...segs.map((g, i) => {
      const name = `Segment ${i + 1}`, lo = name.toLowerCase();
      const prompt = h("textarea", { rows: 2, "aria-label": `${name} prompt`, maxlength: get("limits").max_prompt_chars, disabled: on });
      const dur = h("input", { type: "number", "aria-label": `${name} duration`, min: get("min_duration"), max: get("max_duration"), step: 1, disabled: on });
      prompt.value = g.prompt || "";
      dur.value = g.duration;
      const li = h("li.fpw-seg", { "data-i": i, "data-stage": (on && g.stage) || "" }, prompt, dur);
      const act = (a, text, label, off) => button(text, { "data-act": a, "aria-label": `${label} ${lo}`, disabled: off });
      if (!on) li.append(act("up", "↑", "Move up", !i), act("down", "↓", "Move down", i === segs.length - 1), act("remove", "×", "Remove", segs.length === 1));
      else {
        const pct = g.percent != null && g.stage !== "completed" ? ` ${Math.round(g.percent)}%` : "";
        li.append(h("span.fpw-seg-status", { text: `${STAGES[g.stage] || g.stage || ""}${pct}` }));
        if (g.error) li.append(h("span.fpw-error", { text: g.error }));
        if (g.retry) li.append(button("Retry segment", { "data-act": "retry" }));
      }
      return li;
    }));
    const row = focus && list.children[focus[0]];
    if (row) (row.querySelector(`[data-act="${focus[1]}"]:not(:disabled)`) || row.querySelector("[data-act]:not(:disabled)") || row.firstChild).focus();
    sync();
  }
  function why() {
    const d = (g) => Number(g.duration), lo = get("min_duration"), hi = get("max_duration");
    if (request.id) return "Starting…";
    if (!get("start_image_info")) return "Add a start image first.";
    if (draft.some((g) => !String(g.prompt || "").trim())) return "Write a prompt for every segment.";
    if (draft.some((g) => !Number.isInteger(d(g)) || d(g) < lo || d(g) > hi)) return `Durations: ${lo} to ${hi} s.`;
    return draft.length ? "" : "Add a segment.";
  }
  function sync() {
    const t = info(), on = live(), running = on && ["running", "stitching"].includes(t.status);
    panel.dataset.status = on ? t.status : "editing";
    add.hidden = start.hidden = on;
    again.hidden = !on || running;
    stop.hidden = !running;
    const reason = why();
    start.disabled = !!reason;
    const cost = price(get, secs());
    total.textContent = on ? t.description : `${draft.length} segment${draft.length === 1 ? "" : "s"} · ${secs()} s${cost}${cost && simulated(get)}`;
    note.textContent = on ? { running: `Segment ${(t.current ?? 0) + 1} of ${t.count}…`, stitching: "Stitching…" }[t.status] || t.error || ""
      : reason || (planId ? "Nothing starts until you press Start timeline." : "");
    const want = on && t.status === "done" && t.has_video, url = want && media.video(t.timeline_id);
    if (want && !url) media.request(t.timeline_id);
    player.hidden = !url;
    setSrc(player, url);
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
  s.on(panel, "toggle", () => { if (panel.open && !draft.length) { draft = [{ prompt: get("prompt"), duration: get("duration") }]; build(); } });
  s.on(list, "input", (e) => {
    const g = draft[e.target.closest("li").dataset.i];
    if (!g || live()) return;
    g[e.target.tagName === "TEXTAREA" ? "prompt" : "duration"] = e.target.value;
    planId = null;
    sync();
  });
  s.on(list, "click", (e) => {
    const b = e.target.closest("button[data-act]"), a = b?.dataset.act, i = Number(b?.closest("li").dataset.i), j = a === "up" ? i - 1 : i + 1;
    if (!b) return;
    if (a === "retry") return tell("retry", { segment: i });
    if (a === "remove") draft.splice(i, 1); else [draft[i], draft[j]] = [draft[j], draft[i]];
    planId = null;
    build(a === "remove" ? [Math.min(i, draft.length - 1), a] : [j, a]);
  });
  s.on(add, "click", () => { draft.push({ prompt: "", duration: get("duration") }); planId = null; build([draft.length - 1]); });
  s.on(again, "click", () => { draft = copy(info().segments || []); editing = true; planId = null; build(); });
  s.on(stop, "click", () => tell("cancel"));
  s.on(start, "click", () => {
    if (why()) return;
    const cps = get("cost_per_second");
    tell("start", { request_id: request.start(), timeline_id: planId, segments: draft.map((g) => ({ prompt: g.prompt, duration: Number(g.duration) })),
      shown_cost: Number.isFinite(cps) ? Math.round(secs() * cps * 100) / 100 : null });
    sync();
  });
  s.messages({
    timeline_started(msg) { if (request.answers(msg)) { editing = false; planId = null; shownId = null; onInfo(); } },
    error(msg) { if (request.answers(msg)) { sync(); note.textContent = msg.message || ""; } },
  });
  s.defer(media.subscribe((what, rid) => { if (what === "video" && rid === info().timeline_id) sync(); }));
  s.watch("start_image_info cost_per_second backend", sync);
  s.follow("timeline_info", onInfo);
  return s.close;
}

const DIFF_KEYS = ["prompt", "negative_prompt", "duration", "start_image", "end_image"];
function diffLine(ops) {
  return h("p.fpw-diff", {}, ...(ops || []).map(([op, text]) =>
    op === "+" ? h("ins.fpw-add", { text, title: "added" }) : op === "-" ? h("del.fpw-del", { text, title: "removed" }) : h("span", { text }))
    .flatMap((e, i) => (i ? [" ", e] : [e])));
}

/** 2 to 4 runs side by side, played in lock-step, with what differs between them. */
function mountComparison(ctx, box) {
  const s = scope(ctx.model), { get, send, media } = ctx;
  const fps = get("limits").fps;
  const summary = h("p.fpw-diff-summary");
  const grid = h("div.fpw-grid");
  const playBtn = button("Play", { class: "fpw-play", disabled: true });
  const prevBtn = button("Previous frame", { class: "fpw-prev", title: `Back 1/${fps} s (key: ,)`, disabled: true });
  const nextBtn = button("Next frame", { class: "fpw-next", title: `Forward 1/${fps} s (key: .)`, disabled: true });
  const seek = h("input.fpw-seek", { type: "range", "aria-label": "Seek", min: 0, max: 0, step: 1 / fps, value: 0, disabled: true });
  const speed = h("select.fpw-speed", { "aria-label": "Playback speed" }, ...[0.25, 0.5, 1, 1.5, 2].map((r) => h("option", { value: r, selected: r === 1, text: `${r}×` })));
  const loopBox = h("input", { type: "checkbox", checked: true });
  const closeBtn = button("Close comparison", { class: "fpw-close" });
  const exportBtn = button("Export MP4", { class: "fpw-export", title: "One side-by-side MP4, labelled with what differs" });
  const section = h("section.fpw-compare", { "aria-label": "Comparison", hidden: true },
    h("div.fpw-history-head", {}, h("h3.fpw-h", { text: "Comparison" }), exportBtn, closeBtn), summary, grid,
    h("div.fpw-toolbar", {}, playBtn, prevBtn, nextBtn, seek, speed, h("label.fpw-loop", {}, loopBox, " Loop")));
  box.append(section);
  let ids = null, sync = null, cells = null, seeking = false; // cells: aborts the grid's own listeners
  const reset = () => { sync?.destroy(); sync = null; cells?.abort(); cells = null; };
  s.defer(reset);

  function build() {
    const cmp = get("comparison") || {};
    const now = cmp.run_ids || [];
    if (ids && now.join() === ids.join()) return fill();
    reset();
    ids = now.length ? now : null;
    section.hidden = !ids;
    section.dataset.ready = "false";
    grid.replaceChildren();
    if (!ids) return;
    cells = new AbortController();
    const d = cmp.differs || {};
    const diffs = DIFF_KEYS.filter((k) => d[k]).map((k) => k.replace("_", " "));
    summary.textContent = diffs.length ? `What differs: ${diffs.join(", ")}.` : "These runs have the same inputs.";
    const fact = (changed, text) => h("span", { class: changed ? "fpw-fact fpw-changed" : "fpw-fact", text });
    for (const item of cmp.items || []) {
      const v = video({ class: "fpw-cmp-video", preload: "auto", "data-run-id": item.run_id });
      const facts = [d.negative_prompt && fact(true, `Negative: ${item.negative_prompt || "(none)"}`), fact(d.duration, `${item.duration} s`),
        d.start_image && fact(true, `Start image ${item.start_image?.sha?.slice(0, 6) || "?"}`),
        d.end_image && fact(true, item.end_image ? `End image ${item.end_image.sha.slice(0, 6)}` : "No end image")];
      grid.append(h("figure.fpw-cell", { "data-run-id": item.run_id },
        h("figcaption", {}, h("strong.fpw-label", { text: item.label }), diffLine(item.prompt), h("div.fpw-facts", {}, ...facts)), v, h("p.fpw-cell-note")));
      v.addEventListener("loadedmetadata", () => { v.dataset.ready = "true"; maybeSync(); }, { signal: cells.signal });
    }
    fill();
    section.scrollIntoView?.({ block: "nearest" });
  }
  function fill() {
    const runs = new Map(ctx.runs().map((c) => [c.id, c]));
    for (const fig of grid.querySelectorAll(".fpw-cell")) {
      const rid = fig.dataset.runId, v = fig.querySelector("video"), note = fig.querySelector(".fpw-cell-note");
      const url = media.video(rid), poster = media.poster(rid), c = runs.get(rid);
      if (poster) v.setAttribute("poster", poster);
      if (url) { setSrc(v, url, ctx.urlRules); note.textContent = ""; }
      else if (!c || c.has_video) { media.request(rid); note.textContent = "Loading the video…"; }
      else note.textContent = `No video yet (${STAGES[c.stage] || c.stage}).`;
    }
    maybeSync();
  }
  function maybeSync() {
    const vids = [...grid.querySelectorAll("video")];
    if (sync || vids.length < 2 || !vids.every((v) => v.dataset.ready === "true")) return;
    const c = (sync = new SyncController(vids, { fps }));
    c.setRate(Number(speed.value));
    c.setLoop(loopBox.checked);
    seek.max = c.leader.duration || 0;
    [playBtn, prevBtn, nextBtn, seek].forEach((b) => { b.disabled = false; });
    section.dataset.ready = "true";
    const upd = () => { playBtn.textContent = c.paused ? "Play" : "Pause"; if (!seeking) seek.value = c.leader.currentTime; };
    for (const ev of ["play", "pause", "timeupdate", "seeked"]) c.leader.addEventListener(ev, upd, { signal: cells.signal });
    upd();
  }
  s.on(playBtn, "click", () => sync?.toggle());
  s.on(prevBtn, "click", () => sync?.step(-1));
  s.on(nextBtn, "click", () => sync?.step(1));
  s.on(seek, "input", () => { seeking = true; sync?.seek(Number(seek.value)); });
  s.on(seek, "change", () => { seeking = false; });
  s.on(speed, "change", () => sync?.setRate(Number(speed.value)));
  s.on(loopBox, "change", () => sync?.setLoop(loopBox.checked));
  s.on(closeBtn, "click", () => send({ type: "compare", run_ids: [] }));
  s.on(exportBtn, "click", () => send({ type: "export", what: "comparison" }));
  s.on(section, "keydown", (e) => {
    if (e.target.matches?.("input, select, textarea")) return;
    if (e.key === " " || e.key === "k") { e.preventDefault(); sync?.toggle(); }
    else if (e.key === ",") sync?.step(-1);
    else if (e.key === ".") sync?.step(1);
  });
  s.defer(media.subscribe((what) => { if (what === "video" && ids) fill(); }));
  s.watch("history", () => ids && fill()); // a compared run may have just finished
  s.follow("comparison", build);
  return s.close;
}

// ----- the view

/** What the mounts of one view share: model accessors, the view's id and root, the media
 * store and the run cards paged in beyond the history trait. Close it with ctx.media.close. */
export function context(model, root) {
  const older = [];
  const ctx = {
    model, root, older,
    id: "fpw" + Math.random().toString(36).slice(2, 8),
    get: (k) => model.get(k),
    save(k, v) { model.set(k, v); model.save_changes(); },
    send: (msg, buffers) => model.send(msg, undefined, buffers),
    /** The history trait's cards, then older pages not in it. */
    runs() {
      const hist = model.get("history") || [], ids = new Set(hist.map((c) => c.id));
      return [...hist, ...older.filter((c) => !ids.has(c.id))];
    },
  };
  ctx.media = mediaStore(ctx);
  return ctx;
}

function render({ model, el }) {
  const root = h("div.fpw-root");
  el.replaceChildren(root);
  const ctx = context(model, root);
  const main = h("div.fpw-main");
  const output = h("section.fpw-output", { "aria-label": "Result" });
  const cleanups = [ctx.media.close, mountHeader(ctx, root)];
  root.append(main);
  cleanups.push(mountInputs(ctx, main));
  main.append(output);
  cleanups.push(mountStatus(ctx, output), mountResult(ctx, output),
    mountSweep(ctx, root), mountQueued(ctx, root), mountTimeline(ctx, root), mountHistory(ctx, root),
    mountComparison(ctx, root));
  ctx.send({ type: "hello" });
  return () => {
    for (const cleanup of cleanups.reverse()) cleanup();
    el.replaceChildren();
  };
}

export { STAGES, mountHeader, mountInputs, mountStatus, mountResult, mountSweep, mountTimeline, mountHistory, mountComparison, mediaStore };
export default { initialize() {}, render }; // all state is per view: nothing per model
