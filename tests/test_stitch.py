"""Stitching by stream copy: the segments' own packets, one GOP encoded again per join.

The rule kept from before: the stitched video repeats no frame at a join (its frames are
the segments' frames minus one per join). New: frames outside the GOPs encoded again are
the segments' own, bit for bit (decoded frames and packets compared); the GOPs encoded
again decode under the stream's own SPS/PPS (or carry theirs); segments that differ are
encoded again whole; the settings travel in the `comment` tag; a killed stitch's part
files are cleared.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import av
import numpy as np
import pytest
from stitch_clips import (
    FPS,
    chain,
    encode,
    keyframes,
    level_clip,
    levels,
    packets,
    psnr,
    scene,
    yuv_frames,
)

from framepack_widgets.timeline import _copy, stitch
from framepack_widgets.video import PartFile, read_settings, remove_stale_parts, video_settings, write_settings
from framepack_widgets.video.h264 import (
    annexb_units,
    avcc_parameter_sets,
    length_prefixed,
    prefixed_units,
    unit_type,
    x264_options_for_headers,
    x264_settings,
)

TICK = 512  # stream ticks per frame: MP4 at 30 fps keeps time in 1/15360 s


def _expected(clips: list[Path], keep: list[slice]) -> list[np.ndarray]:
    frames: list[np.ndarray] = []
    for clip, part in zip(clips, keep):
        frames += yuv_frames(clip)[part]
    return frames


def _differing(got: list[np.ndarray], want: list[np.ndarray]) -> list[int]:
    assert len(got) == len(want)
    return [i for i, (g, w) in enumerate(zip(got, want)) if not np.array_equal(g, w)]


def _nal_types(packet: tuple) -> list[int]:
    return [unit_type(u) for u in prefixed_units(packet[3], 4)]


# --------------------------------------------------------------------------- stream copy
def test_segments_from_one_encoder_are_copied_but_for_one_gop_per_join(tmp_path: Path) -> None:
    clips = chain(tmp_path, [40, 45, 30], gop=10)
    assert [keyframes(c) for c in clips] == [[0, 10, 20, 30], [0, 10, 20, 30, 40], [0, 10, 20]]
    result = stitch(clips, tmp_path / "out" / "all.mp4")
    assert result.copied and result.segment_frames == (40, 45, 30) and result.frames == 40 + 45 + 30 - 2
    # Join 1: both GOPs hold 10 frames, so the later segment's first frame goes (its GOP, 9
    # frames, encoded again). Join 2: the earlier segment's last GOP is the shorter (5 frames):
    # its last frame goes, 4 frames encoded again.
    assert result.encoded_frames == 9 + 4 and result.dropped == ((1, 0), (1, 44))
    got = yuv_frames(result.path)
    want = _expected(clips, [slice(None), slice(1, -1), slice(None)])
    assert len(got) == result.frames == 113
    assert _differing(got, want) == list(range(40, 49)) + list(range(79, 83)) or not _differing(got, want)
    outside = [i for i in range(113) if not (40 <= i < 49 or 79 <= i < 83)]
    assert all(np.array_equal(got[i], want[i]) for i in outside), "copied frames are the segments' own"
    assert min(psnr(got[i], want[i]) for i in [*range(40, 49), *range(79, 83)]) > 35

    out, (a, b, c) = packets(result.path), [packets(p) for p in clips]
    assert [p[3] for p in out[:40]] == [p[3] for p in a], "segment 1: every packet copied"
    assert [p[3] for p in out[49:79]] == [p[3] for p in b[10:40]], "segment 2 between its GOPs encoded again"
    assert [p[3] for p in out[83:]] == [p[3] for p in c], "segment 3: every packet copied"
    for first_new in (out[40], out[79]):  # the GOPs encoded again: an IDR frame, the stream's own SPS/PPS
        assert first_new[2] and 5 in _nal_types(first_new) and not {7, 8} & set(_nal_types(first_new))
    assert sorted(p[0] for p in out) == [i * TICK for i in range(113)], "one frame every 1/30 s"
    dts = [p[1] for p in out]
    assert all(x < y for x, y in zip(dts, dts[1:])) and all(p[1] <= p[0] for p in out)
    with av.open(str(result.path)) as container:
        stream = container.streams.video[0]
        seconds = float(stream.duration * stream.time_base)  # (the edit list keeps whole milliseconds)
        assert float(stream.average_rate) == FPS and seconds == pytest.approx(113 / FPS, abs=0.002)


def test_the_file_weighs_no_more_than_its_segments(tmp_path: Path) -> None:
    clips = chain(tmp_path, [60, 60, 60], gop=30)
    result = stitch(clips, tmp_path / "all.mp4")
    total = sum(p.stat().st_size for p in clips)
    assert result.copied and result.path.stat().st_size <= 1.1 * total  # was about 3x when every frame was encoded


def test_the_repeated_frame_in_the_shorter_gop_goes(tmp_path: Path) -> None:
    # Lossless clips whose frames have known levels tell which frame went at each join.
    a = level_clip(tmp_path / "a.mp4", 14, base=10, gop=10)  # GOPs of 10 and 4 frames
    b = level_clip(tmp_path / "b.mp4", 20, base=80, gop=10)  # 10 and 10
    c = level_clip(tmp_path / "c.mp4", 12, base=160, gop=10)  # 10 and 2
    result = stitch([a, b, c], tmp_path / "all.mp4")
    assert result.copied and result.frames == 14 + 20 + 12 - 2
    # a|b: a's last GOP (4) is shorter than b's first (10): a's last frame goes.
    # b|c: 10 and 10, a tie: c's first frame goes.
    want = levels(a)[:-1] + levels(b) + levels(c)[1:]
    got = levels(result.path)
    assert len(got) == len(want) and max(abs(g - w) for g, w in zip(got, want)) <= 1, (got, want)
    assert result.encoded_frames == 3 + 9 and result.dropped == ((0, 13), (2, 0))


def test_a_gop_whose_headers_cannot_be_repeated_carries_its_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def other_quality(settings):  # x264 set up so that its PPS differs from the stream's
        return {**x264_options_for_headers(settings), "crf": "30"}

    monkeypatch.setattr(_copy, "x264_options_for_headers", other_quality)
    clips = chain(tmp_path, [30, 30], gop=10)
    result = stitch(clips, tmp_path / "all.mp4")
    assert result.copied and result.frames == 59 and result.encoded_frames == 9
    out = packets(result.path)
    assert {7, 8} <= set(_nal_types(out[30])), "the GOP encoded again brings its SPS/PPS"
    own = [u for u in prefixed_units(out[30][3], 4) if unit_type(u) in (7, 8)]
    with av.open(str(clips[0])) as container:
        sets = avcc_parameter_sets(container.streams.video[0].codec_context.extradata)
    assert sets is not None and not sets.same_as(own) and sets.ids() == {0}
    got, want = yuv_frames(result.path), _expected(clips, [slice(None), slice(1, None)])
    assert _differing(got, want) == list(range(30, 39))
    assert [p[3] for p in out[39:]] == [p[3] for p in packets(clips[1])[10:]]


def test_segments_without_x264_settings_are_still_copied(tmp_path: Path) -> None:
    """Another encoder's segments (here: x264's without its settings text) are joined the
    same way; the GOP encoded again brings its own parameter sets."""
    clips = []
    for k, clip in enumerate(chain(tmp_path, [30, 30], gop=10)):
        clips.append(_without_sei(clip, tmp_path / f"plain{k}.mp4"))
    with av.open(str(clips[0])) as container:
        first = next(p for p in container.demux(video=0) if p.dts is not None)
        assert x264_settings(bytes(first), 4) is None
    result = stitch(clips, tmp_path / "all.mp4")
    assert result.copied and result.frames == 59
    out = packets(result.path)
    assert {7, 8} <= set(_nal_types(out[30]))
    got, want = yuv_frames(result.path), _expected(clips, [slice(None), slice(1, None)])
    assert _differing(got, want) == list(range(30, 39))
    assert min(psnr(got[i], want[i]) for i in range(30, 39)) > 35


def _without_sei(source: Path, target: Path) -> Path:
    with av.open(str(source)) as inp, av.open(str(target), "w", format="mp4") as out:
        stream = out.add_stream_from_template(inp.streams.video[0])
        for packet in inp.demux(video=0):
            if packet.dts is None:
                continue
            units = [u for u in prefixed_units(bytes(packet), 4) if unit_type(u) != 6]
            copy = av.Packet(length_prefixed(units, 4))
            copy.pts, copy.dts, copy.is_keyframe, copy.time_base = packet.pts, packet.dts, packet.is_keyframe, packet.time_base
            copy.stream = stream
            out.mux(copy)
    return target


def test_open_gops_are_never_cut_where_a_frame_refers_back(tmp_path: Path) -> None:
    clips = chain(tmp_path, [40, 40], gop=10, options={"x264-params": "open-gop=1"})
    for clip in clips:  # where a keyframe has frames after it shown before it, no cut
        pts = [p[0] for p in packets(clip)]
        for cut in _copy._scan(clip).cuts[1:]:
            assert max(pts[:cut]) < pts[cut] < min(pts[cut + 1 :] or [pts[cut] + 1])
    assert any(_copy._scan(c).cuts != keyframes(c) for c in clips), "the clips have open GOPs to skip"
    result = stitch(clips, tmp_path / "all.mp4")
    assert result.frames == 79
    got = yuv_frames(result.path)
    one, two = yuv_frames(clips[0]), yuv_frames(clips[1])
    changed = min((_differing(got, one + two[1:]), _differing(got, one[:-1] + two)), key=len)
    assert changed == list(range(changed[0], changed[0] + len(changed))), "one run of frames encoded again"
    assert len(changed) <= result.encoded_frames + 1  # (+ the repeated frame, from the other segment)
    assert min(psnr(g, w) for g, w in zip(got, one + two[1:])) > 30


def test_segments_that_differ_are_encoded_again_whole(tmp_path: Path) -> None:
    one = chain(tmp_path, [20], gop=10, prefix="one")[0]
    other = encode(tmp_path / "other.mp4", (scene(19 + i) for i in range(20)), gop=10, options={"crf": "35"})
    result = stitch([one, other], tmp_path / "all.mp4")
    assert not result.copied and result.frames == 39 and result.encoded_frames == 39 and result.dropped == ((1, 0),)
    got, want = yuv_frames(result.path), _expected([one, other], [slice(None), slice(1, None)])
    assert len(got) == 39 and min(psnr(g, w) for g, w in zip(got, want)) > 35


def test_a_segment_without_frames_cannot_be_stitched(tmp_path: Path) -> None:
    empty = encode(tmp_path / "empty.mp4", [], gop=10)
    clip = chain(tmp_path, [10], gop=10)[0]
    with pytest.raises(ValueError, match="no video frames"):
        stitch([clip, empty], tmp_path / "all.mp4")
    assert not list(tmp_path.glob("*.part.mp4")) and not (tmp_path / "all.mp4").exists()


def test_a_stopped_stitch_leaves_nothing(tmp_path: Path) -> None:
    clips = chain(tmp_path, [60, 60], gop=30)
    folder = tmp_path / "out"
    with pytest.raises(InterruptedError):
        stitch(clips, folder / "all.mp4", should_stop=lambda: True)
    assert list(folder.iterdir()) == []


# --------------------------------------------------------------------------- settings and part files
def test_the_stitched_video_carries_the_settings_given(tmp_path: Path) -> None:
    clips = chain(tmp_path, [20, 20], gop=10)
    settings = video_settings(prompt="zoom in", duration=20, run_id="r1", kind="timeline", timeline_id="t1",
                              parts=[{"prompt": "zoom in", "duration": 10}, {"prompt": "pan left", "duration": 10}])
    result = stitch(clips, tmp_path / "all.mp4", settings=settings)
    assert read_settings(result.path) == settings


def test_without_settings_given_the_segments_own_are_combined(tmp_path: Path) -> None:
    clips = chain(tmp_path, [20, 20], gop=10)
    assert read_settings(stitch(clips, tmp_path / "bare.mp4").path) is None, "nothing to combine: no tag"
    for k, (clip, prompt) in enumerate(zip(clips, ["zoom in", "pan left"])):
        write_settings(clip, video_settings(prompt=prompt, duration=10, run_id=f"r{k}",
                                            parent_id=f"r{k - 1}" if k else None, timeline_id="t9", segment=k))
    got = read_settings(stitch(clips, tmp_path / "all.mp4").path)
    assert got is not None and got["kind"] == "timeline" and got["timeline_id"] == "t9"
    assert [(p["prompt"], p["duration"], p["run_id"]) for p in got["parts"]] == [("zoom in", 10, "r0"), ("pan left", 10, "r1")]
    assert got["prompt"] == "zoom in" and got["total_duration"] == 20


def test_a_stitch_clears_part_files_a_killed_stitch_left(tmp_path: Path) -> None:
    clips = chain(tmp_path, [10, 10], gop=10)
    folder = tmp_path / "stitched"
    folder.mkdir()
    stale = folder / ".old.1234abcd.part.mp4"
    stale.write_bytes(b"half a video")
    os.utime(stale, (time.time() - 120, time.time() - 120))
    other = folder / "keep.mp4"
    other.write_bytes(b"not a part file")
    with PartFile(folder / "live.mp4") as live:  # another stitch, writing now
        os.utime(live.path, (time.time() - 120, time.time() - 120))
        stitch(clips, folder / "all.mp4")
        assert live.path.exists(), "a part file its writer holds is left alone"
    assert not stale.exists() and other.exists()
    assert sorted(p.name for p in folder.iterdir()) == ["all.mp4", "keep.mp4"]


def test_stale_part_files_are_told_by_their_lock_and_age(tmp_path: Path) -> None:
    now = time.time()
    young, old, older = (tmp_path / f".{n}.0123456789.part.mp4" for n in ("young", "old", "older"))
    for path, age in ((young, 0), (old, 120), (older, 3600)):
        path.write_bytes(b"half a video")
        os.utime(path, (now - age, now - age))
    (tmp_path / "video.mp4").write_bytes(b"a whole one")
    # A writer that takes no lock (the simulator's renders) is told by age alone.
    assert remove_stale_parts(tmp_path, min_age=600) == 1 and not older.exists() and old.exists()
    assert remove_stale_parts(tmp_path) == 1 and not old.exists()
    assert young.exists(), "just made: its writer may not hold it yet"
    assert (tmp_path / "video.mp4").exists() and remove_stale_parts(tmp_path / "missing") == 0


# --------------------------------------------------------------------------- H.264 facts
def test_h264_helpers_refuse_what_they_cannot_read() -> None:
    assert avcc_parameter_sets(b"") is None and avcc_parameter_sets(b"\x00\x00\x00\x01gB") is None
    assert avcc_parameter_sets(bytes([1, 100, 0, 30, 0xFF, 0xE1, 0x00, 0x40, 0x67])) is None, "a length past the end"
    assert annexb_units(b"\x00\x00\x00\x01\x67\x64\x00\x00\x01\x68\xee") == [b"\x67\x64", b"\x68\xee"]
    assert prefixed_units(b"\x00\x00\x00\x09\x65", 4) == [], "a length past the end ends the list"
    assert x264_settings(b"\x00\x00\x00\x02\x65\x88", 4) is None
    plain = {"rc": "crf", "crf": "23.0", "cabac": "1"}
    assert x264_options_for_headers(plain) is not None
    for odd in ({"cqm": "1"}, {"interlaced": "tff"}, {"rc": "abr", "bitrate": "900"}, {"crf": "23:dump-yuv=x"}):
        assert x264_options_for_headers({**plain, **odd}) is None, odd


def test_x264_settings_from_a_file_add_no_option_of_their_own() -> None:
    """A downloaded file's settings text is untrusted: a value carrying ':name=value' would
    give x264 an option (dump-yuv writes a file), so only numbers pass."""
    hostile = {"rc": "crf", "crf": "23.0", "cabac": "1:dump-yuv=/tmp/owned", "ref": "1", "aq": "1:1.0:dump-yuv=x",
               "deblock": "1:0:0:dump-yuv=x", "direct": "1:x"}
    options = x264_options_for_headers(hostile)
    assert options is not None and "cabac" not in options and options["ref"] == "1"
    assert not any("dump" in f"{k}={v}" or "/" in v for k, v in options.items()), options
