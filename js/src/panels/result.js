// The current run's player, its download link, the run-card export and Extend (the run's
// last frame becomes the start image).

import { button, h, play, setSrc, video } from "../dom.js";
import { exportNote } from "../export-note.js";
import { scope } from "../scope.js";
import { videoNote } from "../video-note.js";

/** @type {import("../types.js").Panel} */
export function mountResult(ctx, box) {
  const s = scope(ctx.model);
  const { get, send, media } = ctx;
  const player = video({
    class: "fpw-video", "aria-label": "Result video", controls: true, preload: "metadata",
    hidden: true,
  });
  const note = videoNote(media, "fpw-player-note");
  const saveVideo = /** @type {HTMLAnchorElement} */ (
    h("a.fpw-link", { text: "Download video", hidden: true })
  );
  const cardBtn = button("Run card", {
    class: "fpw-card-export", title: "Download a run card (.zip: metadata and poster)",
    hidden: true,
  });
  const extend = button("Extend", { class: "fpw-extend", hidden: true });
  box.append(player, note.el,
    h("div.fpw-actions", {}, saveVideo, cardBtn, exportNote(s, cardBtn, "card"), extend));
  /** @type {Map<string, string>} the last stage seen per run */
  const lastStage = new Map();
  /** @type {string | null} a run that just finished here: its video plays once it arrives */
  let autoplay = null;

  function onStatus() {
    const st = get("status") || {};
    const prev = lastStage.get(st.run_id);
    if (st.run_id) lastStage.set(st.run_id, st.stage);
    if (st.stage === "completed" && prev && prev !== "completed") autoplay = st.run_id;
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
      const gone = rid && st.stage === "completed";
      note.say(gone ? "This run's video is not in the local cache." : "");
      return;
    }
    player.hidden = false;
    const url = media.video(rid);
    const poster = media.poster(rid);
    if (poster && player.getAttribute("poster") !== poster) player.setAttribute("poster", poster);
    if (player.dataset.runId !== rid) {
      saveVideo.hidden = true;
      player.dataset.runId = rid;
      player.dataset.ready = "false";
      player.removeAttribute("src");
      player.load?.();
    }
    note.follow(rid);
    if (!url) return;
    saveVideo.hidden = false;
    saveVideo.href = url;
    saveVideo.download = `framepack-run-${st.number || rid.slice(0, 8)}.mp4`;
    if (setSrc(player, url) && autoplay === rid) {
      autoplay = null;
      play(player);
    }
  }
  s.on(player, "loadedmetadata", () => {
    player.dataset.ready = "true";
  });
  s.on(player, "error", () => {
    player.dataset.ready = "error";
  });
  s.on(cardBtn, "click", () => {
    send({ type: "export", what: "card", run_id: get("status")?.run_id });
  });
  s.on(extend, "click", () => send({ type: "extend", run_id: get("status")?.run_id }));
  s.messages({
    extended() {
      /** @type {HTMLElement | null} */ (ctx.root.querySelector(".fpw-prompt"))?.focus();
    },
  });
  s.defer(media.subscribe((what, rid) => {
    if (what !== "poster" || rid === get("status")?.run_id) sync();
  }));
  s.follow("status", onStatus);
  return s.close;
}
