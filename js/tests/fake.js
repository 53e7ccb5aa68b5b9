// Test helpers (not a test file): a jsdom window as globals and a fake anywidget model.
import { File as BufferFile } from "node:buffer";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { JSDOM } from "jsdom";

export function setupDom() {
  const dom = new JSDOM("<!doctype html><html><body></body></html>", { pretendToBeVisual: true });
  const { window } = dom;
  for (const key of ["document", "HTMLElement", "Event", "KeyboardEvent", "MouseEvent", "Node", "AbortController"]) {
    globalThis[key] = window[key];
  }
  globalThis.window = window; // File and Blob stay node's own (with arrayBuffer(), as in browsers)
  globalThis.File ??= BufferFile; // a global from Node 20 on; Debian bookworm's Node is 18
  // jsdom does not implement media playback: make it inert.
  const media = window.HTMLMediaElement.prototype;
  media.load = function () {};
  media.pause = function () {};
  media.play = function () { return Promise.resolve(); };
  const created = [], revoked = [];
  let n = 0;
  globalThis.URL.createObjectURL = (blob) => { const u = `blob:fake/${++n}`; created.push({ url: u, blob }); return u; };
  globalThis.URL.revokeObjectURL = (u) => { revoked.push(u); };
  return { window, created, revoked };
}

export const DEFAULTS = {
  prompt: "", negative_prompt: "", duration: 10, _cost_per_second: 0.03, _min_duration: 10, _max_duration: 30,
  backend: "simulator", _backend_label: "Offline simulator \u2014 videos are synthetic, not FramePack's", balance: "",
  _start_image_info: null, _end_image_info: null, _input_error: "", busy: false, status: {},
  _history: [], _history_total: 0, selected: [], _comparison: {}, session_cost: 0,
  _limits: { fps: 30, max_side: 1280, max_prompt_chars: 2000, max_compared: 4, chunk_bytes: 524288, max_upload_bytes: 8388608 },
};

export class FakeModel {
  constructor(state = {}) {
    this.state = { ...DEFAULTS, ...state };
    this.handlers = new Map();
    this.sent = [];
    this.saves = 0;
  }
  get(k) { return this.state[k]; }
  set(k, v) { this.state[k] = v; this.emit(`change:${k}`); } // Backbone fires change events on set
  save_changes() { this.saves++; }
  on(name, fn) { if (!this.handlers.has(name)) this.handlers.set(name, new Set()); this.handlers.get(name).add(fn); }
  off(name, fn) { this.handlers.get(name)?.delete(fn); }
  send(content, callbacks, buffers) { this.sent.push({ content, buffers }); }
  emit(name, ...args) { for (const fn of [...(this.handlers.get(name) || [])]) fn(...args); }
  listenerCount() { let c = 0; for (const s of this.handlers.values()) c += s.size; return c; }
  // What the kernel does:
  update(values) { for (const [k, v] of Object.entries(values)) { this.state[k] = v; this.emit(`change:${k}`); } }
  custom(msg, buffers = []) { this.emit("msg:custom", msg, buffers.map((b) => new DataView(b instanceof ArrayBuffer ? b : new Uint8Array(b).buffer))); }
  messages(type) { return this.sent.filter((m) => m.content.type === type); }
}

/** The element a person would find by its accessible name (label, aria-label or button text). */
export function byName(root, name) {
  const found = [];
  for (const e of root.querySelectorAll("[aria-label]")) if (e.getAttribute("aria-label") === name) found.push(e);
  for (const l of root.querySelectorAll("label[for]")) if (l.textContent.trim() === name) found.push(root.ownerDocument.getElementById(l.htmlFor));
  for (const b of root.querySelectorAll("button")) if (!b.hasAttribute("aria-label") && b.textContent.trim() === name) found.push(b);
  return found;
}

export const flush = () => new Promise((r) => setTimeout(r, 0));

/** A video-shaped object for the sync controller: time advances only when the test says so. */
export class FakeVideo {
  constructor(duration = 10) {
    this.duration = duration; this.currentTime = 0; this.paused = true; this.ended = false;
    this.playbackRate = 1; this.loop = false; this.listeners = {}; this.plays = 0;
  }
  addEventListener(ev, fn, opts) {
    (this.listeners[ev] ||= []).push(fn);
    opts?.signal?.addEventListener("abort", () => { this.listeners[ev] = this.listeners[ev].filter((f) => f !== fn); });
  }
  dispatch(ev) { for (const fn of this.listeners[ev] || []) fn(); }
  play() { this.plays++; if (this.paused) { this.paused = false; this.dispatch("play"); } return Promise.resolve(); }
  pause() { if (!this.paused) { this.paused = true; this.dispatch("pause"); } }
  /** Advance the media clock by dt seconds of wall time (skew = this clip's own clock error). */
  advance(dt, skew = 1) {
    if (this.paused) return;
    let t = this.currentTime + dt * this.playbackRate * skew;
    if (t >= this.duration) { if (this.loop) t -= this.duration; else { t = this.duration; this.paused = true; this.ended = true; } }
    this.currentTime = t;
  }
}

/** Every module and stylesheet in js/src, for checks that read the source itself. */
export function sources() {
  const root = fileURLToPath(new URL("../src/", import.meta.url));
  const found = [];
  const walk = (dir) => {
    for (const entry of readdirSync(join(root, dir), { withFileTypes: true })) {
      const name = dir ? `${dir}/${entry.name}` : entry.name;
      if (entry.isDirectory()) walk(name);
      else if (/\.(js|css)$/.test(name)) found.push({ path: `js/src/${name}`, text: readFileSync(join(root, name), "utf8") });
    }
  };
  walk("");
  return found;
}

/**
 * setTimeout and clearTimeout on a clock the test moves with tick(ms) (Node's own mock
 * timers changed their API between Node 18 and 20). restore() puts the real ones back.
 */
export function fakeTimeouts() {
  const real = { setTimeout: globalThis.setTimeout, clearTimeout: globalThis.clearTimeout };
  const due = new Map();
  let now = 0, next = 1;
  globalThis.setTimeout = (fn, ms = 0, ...args) => { due.set(next, { at: now + ms, fn, args }); return next++; };
  globalThis.clearTimeout = (id) => { due.delete(id); };
  return {
    tick(ms) {
      now += ms;
      for (const [id, t] of [...due].sort((a, b) => a[1].at - b[1].at)) {
        if (t.at > now || !due.has(id)) continue;
        due.delete(id);
        t.fn(...t.args);
      }
    },
    restore() { Object.assign(globalThis, real); },
  };
}
