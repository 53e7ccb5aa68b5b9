// Lock-step playback of 2 to 4 videos: the comparison grid's player, in the widget and in
// the shared gallery.

import { play } from "./dom.js";

/**
 * The part of an HTMLVideoElement the controller uses (tests pass look-alikes).
 * @typedef {object} SyncedVideo
 * @property {number} duration
 * @property {number} currentTime
 * @property {number} playbackRate
 * @property {boolean} paused
 * @property {boolean} ended
 * @property {boolean} loop
 * @property {() => any} play
 * @property {() => void} pause
 * @property {(type: string, fn: () => void, opts?: any) => void} addEventListener
 * @property {(fn: () => void) => void} [requestVideoFrameCallback]
 */

/**
 * Keeps 2-4 videos in step behind a leader (the longest): a follower drifting more than a
 * third of a frame is nudged (playbackRate) or, far off, seeked. Ticks on the leader's
 * frames.
 */
export class SyncController {
  /**
   * @param {Iterable<SyncedVideo>} videos
   * @param {{ fps: number, raf?: (fn: () => void) => void }} options
   */
  constructor(videos, { fps, raf }) {
    this.videos = [...videos];
    this.fps = fps;
    this.tol = 1 / (3 * fps);
    this.raf = raf ?? globalThis.requestAnimationFrame?.bind(globalThis);
    this.rate = 1;
    this.running = false;
    this.maxDrift = 0;
    this.leader = this.videos.reduce((a, b) => ((b.duration || 0) > (a.duration || 0) ? b : a));
    this.ac = new AbortController();
    const opts = { signal: this.ac.signal };
    const L = this.leader;
    L.addEventListener("play", () => {
      this.followers.forEach(play);
      this.start();
    }, opts);
    L.addEventListener("pause", () => {
      this.followers.forEach((v) => v.pause());
      this.align();
    }, opts);
    L.addEventListener("seeked", () => this.align(), opts);
    this.setLoop(true);
  }

  get followers() {
    return this.videos.filter((v) => v !== this.leader);
  }

  get paused() {
    return this.leader.paused;
  }

  /**
   * Where follower `v` should be when the leader is at `t` (a shorter clip holds its end).
   * @param {SyncedVideo} v
   * @param {number} t
   */
  target(v, t) {
    const d = v.duration;
    return Number.isFinite(d) && d > 0 ? Math.min(t, Math.max(0, d - 0.001)) : t;
  }

  /**
   * Signed drift of a follower against the leader, unwrapped across a loop boundary.
   * @param {SyncedVideo} v
   */
  drift(v) {
    const L = this.leader;
    let d = v.currentTime - this.target(v, L.currentTime);
    const D = L.duration;
    const sameLength = Math.abs((v.duration || 0) - D) < 1 / this.fps;
    if (Number.isFinite(D) && sameLength && Math.abs(d) > D / 2) d -= Math.sign(d) * D;
    return d;
  }

  /** Followers exactly where the leader is, at the common rate. */
  align() {
    const t = this.leader.currentTime;
    for (const v of this.followers) {
      v.currentTime = this.target(v, t);
      v.playbackRate = this.rate;
    }
  }

  /** One correction step; returns the worst drift seen, in seconds. */
  tick() {
    const L = this.leader;
    let worst = 0;
    for (const v of this.followers) {
      const want = this.target(v, L.currentTime);
      const d = this.drift(v);
      const ad = Math.abs(d);
      worst = Math.max(worst, ad);
      if (L.paused) {
        if (ad > this.tol) v.currentTime = want;
        continue;
      }
      if (v.paused || v.ended) {
        // A shorter follower that ended restarts once the leader loops back.
        if (want < (v.duration || Infinity) - this.tol) {
          v.currentTime = want;
          play(v);
        }
        continue;
      }
      if (ad > 4 / this.fps) {
        v.currentTime = want;
        v.playbackRate = this.rate;
      } else if (ad > this.tol) {
        v.playbackRate = this.rate * (1 - Math.max(-0.2, Math.min(0.2, d * 2)));
      } else {
        v.playbackRate = this.rate;
      }
    }
    if (!L.paused) this.maxDrift = Math.max(this.maxDrift, worst);
    return worst;
  }

  /** Tick on every frame of the leader until it pauses. */
  start() {
    if (this.running || this.ac.signal.aborted) return;
    this.running = true;
    const L = this.leader;
    const frame = () => {
      if (!this.running) return; // paused or destroyed meanwhile
      this.tick();
      if (L.paused) {
        this.running = false;
        return;
      }
      next();
    };
    const next = () => {
      if (L.requestVideoFrameCallback) L.requestVideoFrameCallback(frame);
      else if (this.raf) this.raf(frame);
      else setTimeout(frame, 16);
    };
    next();
  }

  play() {
    this.align();
    this.videos.forEach((v) => {
      v.playbackRate = this.rate;
      play(v);
    });
    this.start();
  }

  pause() {
    this.running = false;
    this.videos.forEach((v) => v.pause());
    this.align();
  }

  toggle() {
    if (this.paused) this.play();
    else this.pause();
  }

  /** @param {number} t seconds, clamped to the leader */
  seek(t) {
    const D = this.leader.duration;
    this.leader.currentTime = Math.max(0, Number.isFinite(D) ? Math.min(t, D) : t);
    this.align();
  }

  /** @param {number} frames forward (negative: back), after pausing */
  step(frames) {
    this.pause();
    this.seek(this.leader.currentTime + frames / this.fps);
  }

  /** @param {number} r */
  setRate(r) {
    this.rate = r;
    this.videos.forEach((v) => {
      v.playbackRate = r;
    });
  }

  /** @param {boolean} on */
  setLoop(on) {
    // Shorter followers hold their last frame until the leader loops back.
    const end = (this.leader.duration || 0) - 1 / this.fps;
    this.videos.forEach((v) => {
      v.loop = on && (v === this.leader || !((v.duration || 0) < end));
    });
  }

  destroy() {
    this.running = false;
    this.ac.abort();
  }
}
