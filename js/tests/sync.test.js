import { test } from "node:test";
import assert from "node:assert/strict";
import { FakeVideo } from "./fake.js";

const { SyncController } = await import("../src/sync.js");
const FRAME = 1 / 30;
const noRaf = () => {}; // ticks are driven by the test

function pair(durations = [10, 10]) {
  const vids = durations.map((d) => new FakeVideo(d));
  return { vids, s: new SyncController(vids, { fps: 30, raf: noRaf }) };
}

test("the longest video leads", () => {
  const vids = [new FakeVideo(10), new FakeVideo(20), new FakeVideo(15)];
  const s = new SyncController(vids, { fps: 30, raf: noRaf });
  assert.equal(s.leader, vids[1]);
  assert.equal(s.followers.length, 2);
});

test("drift beyond a few frames is corrected by seeking", () => {
  const { vids: [a, b], s } = pair();
  s.play();
  a.currentTime = 5; b.currentTime = 5.2;
  s.tick();
  assert.equal(b.currentTime, 5);
  assert.equal(b.playbackRate, 1);
});

test("small drift (over a third of a frame) is corrected by nudging playbackRate", () => {
  const { vids: [a, b], s } = pair();
  s.play();
  a.currentTime = 5; b.currentTime = 5 + FRAME; // follower ahead: slow it down
  s.tick();
  assert.ok(b.playbackRate < 1, `rate ${b.playbackRate}`);
  assert.equal(b.currentTime, 5 + FRAME, "no seek for small drift");
  b.currentTime = 5 - FRAME; // behind: speed it up
  s.tick();
  assert.ok(b.playbackRate > 1);
  b.currentTime = 5 + FRAME / 10; // within tolerance: back to the common rate
  s.tick();
  assert.equal(b.playbackRate, 1);
});

test("drift across the loop point is unwrapped, not 'fixed' with a seek", () => {
  const { vids: [a, b], s } = pair();
  s.play();
  a.currentTime = 0.005; b.currentTime = 9.995;
  const worst = s.tick();
  assert.ok(worst < FRAME, `drift ${worst}`);
  assert.equal(b.currentTime, 9.995);
});

test("play, pause, seek, rate, loop and frame steps act on every video", () => {
  const { vids, s } = pair([10, 10]);
  const [a, b] = vids;
  s.play();
  assert.ok(vids.every((v) => !v.paused && v.plays >= 1));
  s.setRate(2);
  assert.ok(vids.every((v) => v.playbackRate === 2));
  a.currentTime = 3; b.currentTime = 3.5;
  s.pause();
  assert.ok(vids.every((v) => v.paused));
  assert.equal(b.currentTime, 3, "pausing aligns followers exactly");
  s.seek(7.25);
  assert.ok(vids.every((v) => v.currentTime === 7.25));
  s.step(1);
  assert.ok(Math.abs(a.currentTime - (7.25 + FRAME)) < 1e-9 && b.currentTime === a.currentTime);
  s.step(-2);
  assert.ok(Math.abs(b.currentTime - (7.25 - FRAME)) < 1e-9);
  s.setLoop(false);
  assert.ok(vids.every((v) => v.loop === false));
  s.setLoop(true);
  assert.ok(vids.every((v) => v.loop === true));
  s.seek(99);
  assert.equal(a.currentTime, 10, "seeks clamp to the clip");
});

test("the leader's own controls drive the followers (play/pause/seeked events)", () => {
  const { vids: [a, b], s } = pair();
  a.play();
  assert.equal(b.paused, false);
  a.currentTime = 4;
  a.dispatch("seeked");
  assert.equal(b.currentTime, 4);
  a.pause();
  assert.equal(b.paused, true);
  s.destroy();
  a.play();
  assert.equal(b.paused, true, "destroyed controllers no longer listen");
});

test("a shorter follower holds its last frame, then restarts when the leader loops", () => {
  const { vids: [a, b], s } = pair([20, 10]);
  assert.equal(a.loop, true);
  assert.equal(b.loop, false);
  s.play();
  a.currentTime = 15; b.currentTime = 9.999; b.paused = true; b.ended = true;
  s.tick();
  assert.equal(b.paused, true, "holds while the leader is past its end");
  a.currentTime = 0.5;
  s.tick();
  assert.equal(b.paused, false);
  assert.equal(b.currentTime, 0.5);
});

test("simulated playback: a follower whose clock runs 0.5% fast stays within a frame over 10 s", () => {
  for (const skew of [1.005, 0.995, 1.02]) {
    const { vids: [a, b], s } = pair();
    s.play();
    let worst = 0;
    for (let i = 0; i < 60 * 12; i++) { // 12 s of 60 Hz ticks, across a loop
      a.advance(1 / 60);
      b.advance(1 / 60, skew);
      s.tick();
      worst = Math.max(worst, Math.abs(s.drift(b)));
    }
    assert.ok(worst < FRAME, `skew ${skew}: worst drift ${(worst * 1000).toFixed(1)} ms`);
    assert.ok(s.maxDrift < FRAME);
  }
});
