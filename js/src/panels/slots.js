// The start and end image slots: a file, a drop, a paste or a URL in; the kernel's
// thumbnail out. Several images on the Start image slot plan an image sweep; an MP4 dropped
// anywhere gives back the settings it carries. The start image says where it came from
// ("last frame of run #3", with "back to ..."); Loop makes it the end image too.

import { button, h, safeUrl } from "../dom.js";
import { scope } from "../scope.js";
import { downscale, sendInChunks } from "../uploads.js";

/** The image slots and their names on screen. */
export const SLOT_NAMES = { start: "Start image", end: "End image" };

/** @param {unknown} slot @returns {slot is keyof SLOT_NAMES} */
const isSlot = (slot) => typeof slot === "string" && Object.hasOwn(SLOT_NAMES, slot);

/** @param {FileList | File[] | undefined | null} files */
const firstImage = (files) => [...(files || [])].find((f) => f.type.startsWith("image/"));

/** @param {File} f */
const isVideo = (f) => f.type.startsWith("video/");

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
    const start = slot === "start";
    const file = /** @type {HTMLInputElement} */ (h("input.fpw-file", {
      type: "file", accept: start ? "image/*,video/mp4" : "image/*", id: fid,
      "aria-describedby": `${fid}-hint`, multiple: start,
    }));
    const img = h("img.fpw-thumb", { alt: "", hidden: true });
    const needed = start ? "Required" : "Optional";
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
    // Start: "back to <the image before>"; end: the Loop switch.
    const extra = start
      ? button("", { class: "fpw-back", hidden: true })
      : h("label.fpw-loop-switch", {}, h("input", { type: "checkbox", role: "switch", "aria-label": "Loop" }), "Loop");
    const drop = h("div.fpw-drop", {}, img, label, hint, meta, file);
    const slotBox = h("div", { class: `fpw-slot fpw-slot-${slot}`, "data-slot": slot },
      drop, clear, url, extra);
    slots[slot] = { box: slotBox, img, meta, clear, url, extra, preview: null, thumb: null };
    box.append(slotBox);

    s.on(drop, "click", (e) => {
      if (e.target !== file && !e.target.closest?.("label")) file.click();
    });
    s.on(file, "change", () => {
      take(slot, [...(file.files || [])]);
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
      const text = (/** @type {string} */ type) => e.dataTransfer?.getData?.(type);
      const u = text("text/uri-list") || text("text/plain");
      if (e.dataTransfer?.files?.length) take(slot, [...e.dataTransfer.files]);
      else if (u) sendUrl(slot, u.split(/\s+/)[0]);
    });
    s.on(url, "keydown", (e) => {
      if (e.key !== "Enter") return;
      e.preventDefault();
      sendUrl(slot, url.value);
    });
    s.on(url, "change", () => url.value.trim() && sendUrl(slot, url.value));
    s.on(clear, "click", () => send({ type: "clear_image", slot }));
    s.on(extra, start ? "click" : "change", (e) => start
      ? send({ type: "image_back", slot })
      : ctx.save("loop", e.target.checked));
  }
  // An MP4 dropped anywhere on the widget (not on a slot) gives back its settings.
  s.on(ctx.root, "dragover", (e) => e.dataTransfer?.types?.includes?.("Files") && e.preventDefault());
  s.on(ctx.root, "drop", (e) => {
    const f = [...(e.dataTransfer?.files || [])].find(isVideo);
    if (!f || e.defaultPrevented) return;
    e.preventDefault();
    upload("start", f);
  });
  // A pasted image fills the slot it was pasted on, else the first empty one.
  s.on(ctx.root, "paste", (e) => {
    const f = firstImage(e.clipboardData?.files);
    if (!f) return;
    e.preventDefault();
    const target = e.target.closest?.(".fpw-slot")?.dataset.slot;
    upload(target || (get("_start_image_info") ? "end" : "start"), f);
  });

  /**
   * Files chosen or dropped on a slot: an MP4 (the kernel restores its settings), one image,
   * or several on the start slot, sent one after another: the kernel plans an image sweep.
   * @param {keyof SLOT_NAMES} slot @param {File[]} files
   */
  async function take(slot, files) {
    const video = files.find(isVideo);
    if (video || !files[1] || slot !== "start") return upload(slot, video || files[0]);
    const id = Math.random().toString(36).slice(2);
    for (const [i, f] of files.entries()) await upload(slot, f, [id, i, files.length]);
  }
  /**
   * @param {keyof SLOT_NAMES} slot @param {File | undefined} file
   * @param {any[]} [batch] [id, index, count] of several images (no preview then)
   */
  async function upload(slot, file, batch) {
    const name = SLOT_NAMES[slot];
    if (!file) return;
    if (!file.type.startsWith("image/") && file.type && !isVideo(file)) {
      say(`${name}: “${file.name}” is not an image. Choose a JPEG, PNG or WebP file.`);
      return;
    }
    const t = slots[slot];
    t.meta.textContent = "Preparing…";
    try {
      const { max_side, chunk_bytes, max_upload_bytes } = get("_limits");
      // A video is not decoded: it goes as it is.
      const img = await downscale(file, max_side, chunk_bytes);
      if (s.closed) return;
      const mb = (img.buffer.byteLength / 2 ** 20).toFixed(1);
      const movie = isVideo(file);
      if (img.buffer.byteLength > max_upload_bytes) {
        throw new Error(`the file is too large to send from the browser (${mb} MB); `
          + `set widget.${movie ? "restore_settings(path)" : `${slot}_image`} from Python instead`);
      }
      if (!movie && !batch) {
        s.drop(t.preview);
        t.preview = s.url(new Blob([img.buffer], { type: img.mime }));
        show(slot);
      }
      const head = {
        type: "upload", slot, name: file.name || "pasted image", mime: img.mime,
        size: file.size, width: img.width, height: img.height, batch,
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
    const looped = slot === "end" && get("loop");
    const from = looped ? "start" : slot;
    const f = slots[from];
    const u = safeUrl(f.preview || f.thumb || get(`_${from}_image_info`)?.url);
    t.img.hidden = !u;
    if (u) t.img.src = u;
    else t.img.removeAttribute("src");
    t.box.classList.toggle("fpw-has-image", !!u);
    t.clear.hidden = !u || looped;
  }
  /** @param {string} slot @param {string | null} thumb */
  function setThumb(slot, thumb) {
    const t = slots[slot];
    s.drop(t.preview);
    if (t.thumb !== thumb) s.drop(t.thumb);
    t.preview = null;
    t.thumb = thumb;
    show(slot);
    show("end"); // with Loop on, the end slot shows the start image
  }
  /** @param {string} slot */
  function sync(slot) {
    const info = get(`_${slot}_image_info`);
    const t = slots[slot];
    const size = info?.width ? ` · ${info.width}×${info.height}` : "";
    const loop = slot === "end" && get("loop");
    t.meta.textContent = loop ? "Loop: the start image" : info ? `${info.name || ""}${size}` : "";
    t.box.classList.toggle("fpw-looped", loop);
    if (slot === "start") {
      t.extra.hidden = !info?.back;
      t.extra.textContent = `back to ${info?.back}`;
    } else t.extra.firstChild.checked = !!get("loop");
    if (!info) {
      t.url.value = "";
      setThumb(slot, null);
    }
    show(slot);
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
  s.follow("_start_image_info", () => {
    sync("start");
    sync("end"); // with Loop on, the end slot shows the start image
  });
  s.follow("_end_image_info loop", () => sync("end"));
  return s.close;
}
