// The start and end image slots: a file, a drop, a paste or a URL in; the kernel's
// thumbnail out.

import { button, h, safeUrl } from "../dom.js";
import { scope } from "../scope.js";
import { downscale, sendInChunks } from "../uploads.js";

/** The image slots and their names on screen. */
export const SLOT_NAMES = { start: "Start image", end: "End image" };

/** @param {unknown} slot @returns {slot is keyof SLOT_NAMES} */
const isSlot = (slot) => typeof slot === "string" && Object.hasOwn(SLOT_NAMES, slot);

/** @param {FileList | File[] | undefined | null} files */
const firstImage = (files) => [...(files || [])].find((f) => f.type.startsWith("image/"));

/**
 * @param {import("../types.js").Ctx} ctx
 * @param {HTMLElement} box
 * @param {(message: string) => void} say   shows an input error under the inputs
 * @returns {() => void}
 */
export function mountSlots(ctx, box, say) {
  const s = scope(ctx.model);
  const { id, get, send } = ctx;
  /** @type {Record<string, any>} */
  const slots = {};
  for (const [slot, name] of Object.entries(SLOT_NAMES)) {
    const fid = `${id}-${slot}`;
    const file = /** @type {HTMLInputElement} */ (h("input.fpw-file", {
      type: "file", accept: "image/*", id: fid, "aria-describedby": `${fid}-hint`,
    }));
    const img = h("img.fpw-thumb", { alt: "", hidden: true });
    const needed = slot === "start" ? "Required" : "Optional";
    const hint = h("span.fpw-slot-hint", {
      id: `${fid}-hint`, text: `${needed}. Drop, paste or click to choose.`,
    });
    const meta = h("span.fpw-slot-meta");
    const clear = button("×", {
      class: "fpw-clear", "aria-label": `Remove ${name.toLowerCase()}`, title: "Remove",
      hidden: true,
    });
    const url = /** @type {HTMLInputElement} */ (h("input.fpw-url", {
      type: "url", "aria-label": `${name} URL`, placeholder: "or an image URL (https://…)",
    }));
    const label = h("label.fpw-slot-label", { for: fid, text: name });
    const drop = h("div.fpw-drop", {}, img, label, hint, meta, file);
    const slotBox = h("div", { class: `fpw-slot fpw-slot-${slot}`, "data-slot": slot },
      drop, clear, url);
    slots[slot] = { box: slotBox, img, meta, clear, url, preview: null, thumb: null };
    box.append(slotBox);

    s.on(drop, "click", (e) => {
      if (e.target !== file && !e.target.closest?.("label")) file.click();
    });
    s.on(file, "change", () => {
      if (file.files?.[0]) upload(slot, file.files[0]);
      file.value = "";
    });
    s.on(drop, "dragover", (e) => {
      e.preventDefault();
      drop.classList.add("fpw-over");
    });
    s.on(drop, "dragleave", () => drop.classList.remove("fpw-over"));
    s.on(drop, "drop", (e) => {
      e.preventDefault();
      drop.classList.remove("fpw-over");
      const f = firstImage(e.dataTransfer?.files);
      const text = (/** @type {string} */ type) => e.dataTransfer?.getData?.(type);
      const u = text("text/uri-list") || text("text/plain");
      if (f) upload(slot, f);
      else if (u) sendUrl(slot, u.split(/\s+/)[0]);
    });
    s.on(url, "keydown", (e) => {
      if (e.key !== "Enter") return;
      e.preventDefault();
      sendUrl(slot, url.value);
    });
    s.on(url, "change", () => url.value.trim() && sendUrl(slot, url.value));
    s.on(clear, "click", () => send({ type: "clear_image", slot }));
  }
  // A pasted image fills the slot it was pasted on, else the first empty one.
  s.on(ctx.root, "paste", (e) => {
    const f = firstImage(e.clipboardData?.files);
    if (!f) return;
    e.preventDefault();
    const target = e.target.closest?.(".fpw-slot")?.dataset.slot;
    upload(target || (get("_start_image_info") ? "end" : "start"), f);
  });

  /** @param {keyof SLOT_NAMES} slot @param {File} file */
  async function upload(slot, file) {
    const name = SLOT_NAMES[slot];
    if (!file.type.startsWith("image/") && file.type) {
      say(`${name}: “${file.name}” is not an image. Choose a JPEG, PNG or WebP file.`);
      return;
    }
    const t = slots[slot];
    t.meta.textContent = "Preparing…";
    try {
      const { max_side, chunk_bytes, max_upload_bytes } = get("_limits");
      const img = await downscale(file, max_side, chunk_bytes);
      if (s.closed) return;
      const mb = (img.buffer.byteLength / 2 ** 20).toFixed(1);
      if (img.buffer.byteLength > max_upload_bytes) {
        throw new Error(`the file is too large to send from the browser (${mb} MB); `
          + `set widget.${slot}_image from Python instead`);
      }
      s.drop(t.preview);
      t.preview = s.url(new Blob([img.buffer], { type: img.mime }));
      show(slot);
      const head = {
        type: "upload", slot, name: file.name || "pasted image", mime: img.mime,
        size: file.size, width: img.width, height: img.height,
      };
      sendInChunks(send, head, img.buffer, chunk_bytes);
    } catch (err) {
      t.meta.textContent = "";
      say(`${name} could not be read: ${/** @type {any} */ (err)?.message || err}`);
    }
  }
  /** @param {string} slot @param {string} value */
  function sendUrl(slot, value) {
    const u = safeUrl(value, { blob: false });
    if (!u) return say("An image URL must start with http:// or https://.");
    send({ type: "image_url", slot, url: u });
  }
  /**
   * The slot's picture: this view's preview, else the kernel's thumbnail or URL.
   * @param {string} slot
   */
  function show(slot) {
    const t = slots[slot];
    const info = get(`_${slot}_image_info`);
    const u = safeUrl(t.preview || t.thumb || info?.url);
    t.img.hidden = !u;
    if (u) t.img.src = u;
    else t.img.removeAttribute("src");
    t.box.classList.toggle("fpw-has-image", !!u);
    t.clear.hidden = !u;
  }
  /** @param {string} slot @param {string | null} thumb */
  function setThumb(slot, thumb) {
    const t = slots[slot];
    s.drop(t.preview);
    if (t.thumb !== thumb) s.drop(t.thumb);
    t.preview = null;
    t.thumb = thumb;
    show(slot);
  }
  /** @param {string} slot */
  function sync(slot) {
    const info = get(`_${slot}_image_info`);
    const t = slots[slot];
    const size = info?.width ? ` · ${info.width}×${info.height}` : "";
    t.meta.textContent = info ? `${info.name || ""}${size}` : "";
    if (info) show(slot);
    else {
      t.url.value = "";
      setThumb(slot, null);
    }
  }
  s.messages({
    image(msg, buf) {
      if (!isSlot(msg.slot)) return;
      setThumb(msg.slot, buf ? s.url(new Blob([buf], { type: msg.mime || "image/jpeg" })) : null);
    },
    error(msg) {
      if (!isSlot(msg.slot)) return;
      s.drop(slots[msg.slot].preview);
      slots[msg.slot].preview = null;
      sync(msg.slot);
    },
  });
  for (const slot of Object.keys(SLOT_NAMES)) s.follow(`_${slot}_image_info`, () => sync(slot));
  return s.close;
}
