"""Settings travel with the video: JSON in the MP4's comment tag, written by stream copy.

Written: every packet as it was (compared byte for byte), the other tags kept, the file
replaced whole with its mode. Read back: None, never an exception, for a file without
settings, with a damaged or oversized tag, or no video at all. Used by the side-by-side
comparison export (the runs it shows).
"""

from __future__ import annotations

import json
import os
import sys
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace

import av
import numpy as np
import pytest

from framepack_widgets.compare import labels_for
from framepack_widgets.constants import MODEL, VERSION
from framepack_widgets.errors import FramepackError
from framepack_widgets.export import export_comparison, export_run_comparison
from framepack_widgets.inputs import FramepackInput
from framepack_widgets.runs import Run
from framepack_widgets.video import (
    MAX_SETTINGS_CHARS,
    VideoFileError,
    combined_settings,
    read_settings,
    run_settings,
    settings_text,
    video_settings,
    write_settings,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stitch_clips import chain  # noqa: E402

SETTINGS = video_settings(prompt="the camera zooms in", negative_prompt="blurry", duration=10, run_id="r1",
                          parent_id="r0", task_id="t-1", simulated=True, seed=7)


def _everything(path: Path) -> list[tuple]:
    """Each packet's stream, timestamps, flags and bytes, in file order."""
    with av.open(str(path)) as container:
        return [(p.stream.type, p.pts, p.dts, p.duration, p.is_keyframe, bytes(p))
                for p in container.demux() if p.dts is not None]


def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="yuv420p") for f in container.decode(video=0)]


def _with_audio(path: Path) -> Path:
    """A short MP4 with a video and an AAC audio stream, a title and a stream language."""
    with av.open(str(path), "w", format="mp4") as container:
        container.metadata["title"] = "a meadow"
        video = container.add_stream("libx264", rate=30)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = container.add_stream("aac", rate=48000)
        audio.metadata["language"] = "fra"
        for i in range(15):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 8 * i, np.uint8), format="rgb24")
            frame.pts = i
            container.mux(video.encode(frame))
        for i in range(12):
            samples = np.sin(np.arange(1024) / 20.0 + i).astype(np.float32)[None, :]
            sound = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            sound.sample_rate, sound.pts, sound.time_base = 48000, i * 1024, Fraction(1, 48000)
            container.mux(audio.encode(sound))
        container.mux(video.encode(None))
        container.mux(audio.encode(None))
    return path


# --------------------------------------------------------------------------- writing
def test_settings_are_written_by_stream_copy_and_read_back(tmp_path: Path) -> None:
    clip = chain(tmp_path, [45], gop=10)[0]
    os.chmod(clip, 0o600)
    before, frames = _everything(clip), _frames(clip)
    assert read_settings(clip) is None, "a video without settings"
    assert write_settings(clip, SETTINGS) == clip
    assert read_settings(clip) == SETTINGS
    assert _everything(clip) == before, "every packet as it was"
    assert all(np.array_equal(a, b) for a, b in zip(_frames(clip), frames, strict=True))
    assert os.stat(clip).st_mode & 0o777 == 0o600, "its mode kept (the run store's files are private)"
    assert sorted(p.name for p in tmp_path.iterdir()) == [clip.name], "no temporary file left"
    with av.open(str(clip)) as container:  # the tag as any tool sees it: one JSON object
        assert json.loads(container.metadata["comment"])["made_by"] == f"framepack_widgets {VERSION}"


def test_writing_again_replaces_the_settings(tmp_path: Path) -> None:
    clip = chain(tmp_path, [20], gop=10)[0]
    write_settings(clip, SETTINGS)
    other = video_settings(prompt="pan left", duration=20)
    write_settings(clip, other)
    assert read_settings(clip) == other
    with av.open(str(clip)) as container:
        assert list(container.metadata).count("comment") == 1


def test_audio_and_the_other_tags_are_kept(tmp_path: Path) -> None:
    clip = _with_audio(tmp_path / "sound.mp4")
    before = _everything(clip)
    assert {k for k, *_ in before} == {"video", "audio"}
    write_settings(clip, SETTINGS)
    assert _everything(clip) == before
    with av.open(str(clip)) as container:
        assert container.metadata["title"] == "a meadow"
        assert container.streams.audio[0].metadata.get("language") == "fra"
    assert read_settings(clip) == SETTINGS


@pytest.mark.parametrize("what", ["missing", "folder", "garbage", "webm"])
def test_what_is_not_an_mp4_video_is_refused_and_left_alone(tmp_path: Path, what: str) -> None:
    path = tmp_path / "thing.mp4"
    if what == "folder":
        path.mkdir()
    elif what == "garbage":
        path.write_bytes(b"\x00\x00\x00\x18ftypisom" + os.urandom(2000))
    elif what == "webm":
        path = tmp_path / "thing.webm"
        with av.open(str(path), "w", format="webm") as container:
            stream = container.add_stream("libvpx-vp9", rate=30)
            stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
            for i in range(3):
                frame = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")
                frame.pts = i
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
    before = path.read_bytes() if path.is_file() else None
    with pytest.raises(VideoFileError) as err:
        write_settings(path, SETTINGS)
    assert isinstance(err.value, FramepackError) and "no settings were written" in str(err.value)
    assert (path.read_bytes() if path.is_file() else None) == before
    assert not [p for p in tmp_path.iterdir() if ".part" in p.name]


def test_settings_text_refuses_what_it_cannot_carry() -> None:
    with pytest.raises(ValueError, match="lack run_id, parent_id"):
        settings_text({"prompt": "a", "negative_prompt": "", "duration": 10, "model": MODEL})
    with pytest.raises(ValueError, match="JSON"):
        settings_text({**SETTINGS, "seed": float("nan")})
    with pytest.raises(ValueError, match="at most"):
        settings_text({**SETTINGS, "prompt": "x" * MAX_SETTINGS_CHARS})


# --------------------------------------------------------------------------- reading
def _tagged(path: Path, comment: str) -> Path:
    """A copy of a clip whose comment tag is `comment`, as another program might write it."""
    clip = chain(path.parent, [10], gop=10, prefix=path.stem + "-source")[0]
    with av.open(str(clip)) as inp, av.open(str(path), "w", format="mp4") as out:
        out.metadata["comment"] = comment
        stream = out.add_stream_from_template(inp.streams.video[0])
        for packet in inp.demux(video=0):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    return path


@pytest.mark.parametrize("comment", [
    "shot on a phone", "{not json", "[1, 2, 3]", '{"negative_prompt": "no prompt"}', '{"prompt": 3}',
    '{"prompt": "a", "seed": NaN}', json.dumps({"prompt": "x" * MAX_SETTINGS_CHARS}), "[" * 100_000,
])
def test_a_tag_that_is_not_our_settings_reads_as_none(tmp_path: Path, comment: str) -> None:
    assert read_settings(_tagged(tmp_path / "tagged.mp4", comment)) is None


def test_reading_never_raises_for_a_bad_file(tmp_path: Path) -> None:
    (tmp_path / "garbage.mp4").write_bytes(os.urandom(5000))
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "folder.mp4").mkdir()
    for name in ("garbage.mp4", "empty.mp4", "folder.mp4", "missing.mp4"):
        assert read_settings(tmp_path / name) is None, name


# --------------------------------------------------------------------------- what the settings hold
def test_a_runs_settings_say_how_to_make_it_again_and_nothing_secret(tmp_path: Path) -> None:
    run = Run.from_input(FramepackInput("the camera zooms in", "https://user:pw@img.example/a.jpg?token=SECRET",
                                        negative_prompt="blurry", duration=20), backend="simulator",
                         run_id="r2", parent_id="r1", timeline_id="t1", segment=1)
    run.task_id = "task-9"
    settings = run_settings(run)
    assert settings.items() >= {
        "prompt": "the camera zooms in", "negative_prompt": "blurry", "duration": 20, "model": MODEL,
        "run_id": "r2", "parent_id": "r1", "task_id": "task-9", "timeline_id": "t1", "segment": 1,
        "simulated": True, "start_image": {"url": "https://img.example/a.jpg"},
        "made_by": f"framepack_widgets {VERSION}",
    }.items()
    assert "end_image" not in settings and settings.keys() - run.params.keys() >= {"model", "run_id", "made_by"}
    assert "SECRET" not in settings_text(settings) and "pw@" not in settings_text(settings)
    stored = SimpleNamespace(prompt="p", negative_prompt="", duration=10, run_id="r", parent_id=None,
                             params={"start_image": {"sha256": "ab" * 32, "mime": "image/png"}, "seed": 3})
    assert run_settings(stored)["start_image"] == {"sha256": "ab" * 32} and run_settings(stored)["seed"] == 3


def test_a_video_of_several_runs_lists_them_all() -> None:
    parts = [video_settings(prompt="zoom in", duration=10, run_id="a"),
             video_settings(prompt="pan left", duration=20, run_id="b", parent_id="a")]
    timeline = combined_settings("timeline", parts, timeline_id="t1")
    assert timeline["kind"] == "timeline" and timeline["timeline_id"] == "t1"
    assert (timeline["prompt"], timeline["duration"], timeline["total_duration"]) == ("zoom in", 10, 30)
    assert [p["run_id"] for p in timeline["parts"]] == ["a", "b"]
    assert combined_settings("comparison", parts)["total_duration"] == 20, "side by side: the longest"
    settings_text(timeline)  # writable as it is


# --------------------------------------------------------------------------- the comparison export
def test_the_side_by_side_video_carries_the_runs_it_shows(tmp_path: Path) -> None:
    one, two = chain(tmp_path, [30, 45], gop=10)
    runs = [Run.from_input(FramepackInput(prompt, np.zeros((48, 64, 3), np.uint8), duration=10), run_id=rid)
            for prompt, rid in (("the camera zooms in", "r1"), ("the camera pans left", "r2"))]
    for run, video in zip(runs, (one, two)):
        run.video_path = video
    out = export_run_comparison(runs, tmp_path / "side.mp4")
    settings = read_settings(out)
    assert settings is not None and settings["kind"] == "comparison"
    assert [p["run_id"] for p in settings["parts"]] == ["r1", "r2"]
    assert [p["prompt"] for p in settings["parts"]] == ["the camera zooms in", "the camera pans left"]
    assert settings["labels"] == labels_for(runs) and settings["prompt"] == "the camera zooms in"


def test_a_comparison_of_videos_that_carry_settings_combines_them(tmp_path: Path) -> None:
    one, two = chain(tmp_path, [30, 30], gop=10)
    assert read_settings(export_comparison([one, two], ["a", "b"], tmp_path / "bare.mp4")) is None
    write_settings(one, video_settings(prompt="zoom in", duration=10, run_id="r1"))
    write_settings(two, video_settings(prompt="pan left", duration=10, run_id="r2"))
    settings = read_settings(export_comparison([one, two], ["a", "b"], tmp_path / "side.mp4"))
    assert settings is not None and [p["run_id"] for p in settings["parts"]] == ["r1", "r2"]
    given = video_settings(prompt="mine", run_id="x")
    assert read_settings(export_comparison([one, two], ["a", "b"], tmp_path / "own.mp4", settings=given)) == given
