// DOM helpers. Text only ever goes in through textContent (never parsed as HTML), and only
// vetted URLs reach a src or href.

/**
 * Only http(s) and blob: URLs may reach a src (not javascript:, data:...). `local` also
 * allows a relative path inside the page's folder (the gallery's files); `web: false`
 * refuses http(s).
 * @param {unknown} url
 * @param {import("./types.js").UrlRules} [rules]
 * @returns {string | null}
 */
export function safeUrl(url, { blob = true, local = false, web = true } = {}) {
  if (typeof url !== "string") return null;
  const u = url.trim();
  if ((web && /^https?:\/\//i.test(u)) || (blob && /^blob:/i.test(u))) return u;
  if (local && /^[\w-][\w./-]*$/.test(u) && !u.split("/").includes("..")) return u;
  return null;
}

/**
 * h("p.fpw-note", { role: "status" }, ...kids): classes follow the tag name; strings
 * become text nodes; `text` sets textContent; null, undefined and false are left out.
 * @param {string} tag
 * @param {Record<string, any>} [attrs]
 * @param {...any} kids
 * @returns {HTMLElement}
 */
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

/**
 * A button of type="button": it never submits a form the widget sits in.
 * @param {string} text
 * @param {Record<string, any>} [attrs]
 * @returns {HTMLButtonElement}
 */
export const button = (text, attrs) =>
  /** @type {HTMLButtonElement} */ (h("button", { type: "button", text, ...attrs }));

/**
 * A muted, looping inline video (the attribute alone does not mute a created element).
 * @param {Record<string, any>} attrs
 * @returns {HTMLVideoElement}
 */
export function video(attrs) {
  const v = /** @type {HTMLVideoElement} */ (
    h("video", { muted: true, playsinline: true, loop: true, ...attrs })
  );
  v.muted = true;
  return v;
}

/**
 * Play; a refusal (autoplay rules, a source swapped meanwhile) is no error.
 * @param {{ play?: () => Promise<void> | void }} v
 */
export const play = (v) => {
  const p = v.play?.();
  if (p && typeof p.catch === "function") p.catch(() => {});
};

/**
 * Point a media element at `url` unless it already is, or the URL may not reach a src.
 * @param {HTMLElement} el
 * @param {string | undefined | null} url
 * @param {import("./types.js").UrlRules} [rules]
 * @returns {boolean} whether the src changed
 */
export function setSrc(el, url, rules) {
  if (!url || el.getAttribute("src") === url || !safeUrl(url, rules)) return false;
  /** @type {any} */ (el).src = url;
  return true;
}

/**
 * A hidden section (class `cls`) holding a line of text (class `cls`-text) and buttons:
 * the shape of the sweep and queued-runs bars.
 * @param {HTMLElement} box
 * @param {string} cls
 * @param {string} label
 * @param {...HTMLElement} buttons
 */
export function actionBar(box, cls, label, ...buttons) {
  const text = h("p", { class: `${cls}-text` });
  const section = h("section", { class: cls, "aria-label": label, hidden: true },
    text, h("div.fpw-actions", {}, ...buttons));
  box.append(section);
  return { section, text };
}
