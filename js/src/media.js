// Videos, posters and downloads from the kernel: reassembled from chunked buffers into blob
// URLs that the store owns. Panels read them and subscribe to arrivals.

import { h } from "./dom.js";
import { scope } from "./scope.js";

/** Blob URLs of videos kept per view, besides those on screen. */
const KEEP_VIDEOS = 8;

/**
 * @param {{ model: import("./types.js").Model, root: HTMLElement, id: string,
 *   send: (msg: object) => void }} view
 * @returns {import("./types.js").MediaStore}
 */
export function mediaStore({ model, root, id, send }) {
  const s = scope(model);
  /** @type {Map<string, string>} */
  const videos = new Map();
  /** @type {Map<string, string>} */
  const posters = new Map();
  /** @type {Map<string, string>} the kernel's video_error message by id */
  const errors = new Map();
  /** @type {Map<string, { parts: any[], got: number }>} */
  const incoming = new Map();
  /** @type {Set<string>} */
  const requested = new Set();
  /** @type {Set<(what: string, id: string, message?: string) => void>} */
  const subs = new Set();
  /** @param {string} what @param {string} rid @param {string} [message] */
  const tell = (what, rid, message) => {
    for (const fn of [...subs]) fn(what, rid, message);
  };

  /**
   * One chunk in; the whole file once every chunk is there.
   * @param {string} key @param {any} msg @param {any} buf @param {string} mime
   */
  function gather(key, msg, buf, mime) {
    const { index, count } = msg;
    const valid = Number.isInteger(count) && Number.isInteger(index) && index >= 0 && index < count;
    if (!buf || !valid) return null;
    const t = incoming.get(key) || { parts: [], got: 0 };
    if (!t.parts[index]) {
      t.parts[index] = buf;
      t.got++;
    }
    incoming.set(key, t);
    if (t.got < count) return null;
    incoming.delete(key);
    return new Blob(t.parts, { type: msg.mime || mime });
  }

  /** Keep a new video; let go of old ones nobody shows. @param {string} rid @param {string} url */
  function keep(rid, url) {
    videos.set(rid, url);
    const shown = new Set([...root.querySelectorAll("video")].map((v) => v.getAttribute("src")));
    for (const [k, u] of videos) {
      if (videos.size <= KEEP_VIDEOS) break;
      if (!shown.has(u)) {
        videos.delete(k);
        s.drop(u);
        requested.delete(k);
      }
    }
  }

  s.messages({
    video(msg, buf) {
      if (videos.has(msg.run_id)) return;
      const blob = gather(`v:${msg.run_id}/${msg.nonce}`, msg, buf, "video/mp4");
      if (!blob) return;
      errors.delete(msg.run_id);
      keep(msg.run_id, s.url(blob));
      tell("video", msg.run_id);
    },
    video_error(msg) {
      requested.delete(msg.run_id);
      const message = msg.message || "The kernel could not send this video.";
      errors.set(msg.run_id, message);
      tell("video_error", msg.run_id, message);
    },
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
      root.append(a);
      a.click();
      a.remove();
    },
  });

  /** @param {string} rid */
  function request(rid) {
    if (s.closed || requested.has(rid) || videos.has(rid)) return;
    requested.add(rid);
    send({ type: "video", run_id: rid, nonce: id });
  }

  return {
    video: (rid) => videos.get(rid),
    poster: (rid) => posters.get(rid),
    error: (rid) => errors.get(rid),
    request,
    retry(rid) {
      errors.delete(rid);
      requested.delete(rid);
      request(rid);
      tell("retry", rid);
    },
    subscribe(fn) {
      subs.add(fn);
      return () => subs.delete(fn);
    },
    close: s.close,
  };
}
