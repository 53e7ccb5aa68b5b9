// The line under a player: "Loading the video…", or the kernel's video_error with a Retry
// button that asks for the video again. One behaviour for every place a video plays (the
// result, the comparison cells, the timeline and chain player).

import { button, h } from "./dom.js";

export const LOADING = "Loading the video…";

/**
 * @param {import("./types.js").MediaStore} media
 * @param {string} cls   the note's class (its place's own styles)
 */
export function videoNote(media, cls) {
  const text = h("span.fpw-video-note-text");
  const retry = button("Retry", { class: "fpw-retry", hidden: true });
  const el = h("p", { class: `${cls} fpw-video-note`, "aria-live": "polite", hidden: true },
    text, retry);
  /** @type {string | null} */
  let rid = null;
  retry.addEventListener("click", () => {
    if (rid) media.retry(rid);
  });
  /** @param {string} message @param {boolean} failed */
  const say = (message, failed) => {
    text.textContent = message;
    retry.hidden = !failed;
    el.classList.toggle("fpw-video-failed", failed);
    el.hidden = !message;
  };
  return {
    el,
    /**
     * Show what is known of `id`'s video: nothing once it is there, else its error (with
     * Retry), else ask for it and say it is loading.
     * @param {string} id
     */
    follow(id) {
      rid = id;
      if (media.video(id)) return say("", false);
      const error = media.error(id);
      if (error) return say(error, true);
      media.request(id);
      say(LOADING, false);
    },
    /** A line of its own (e.g. why there is no video), no Retry. @param {string} message */
    say(message) {
      rid = null;
      say(message, false);
    },
  };
}
