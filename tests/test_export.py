"""Comparison MP4, "what differs" labels and run cards, on videos generated here with PyAV."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from framepack_widgets.compare import labels_for, word_diff
from framepack_widgets.errors import InvalidInputError
from framepack_widgets.export import (
    export_comparison,
    export_run_card,
    export_run_comparison,
    read_run_card,
    run_card,
)
from framepack_widgets.runs import Run, RunStage
from framepack_widgets.task import TaskStatus


def make_video(path: Path, seconds: float, color: tuple[int, int, int], *, w: int = 160, h: int = 90, fps: int = 30) -> Path:
    import av
    import numpy as np

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for i in range(int(round(seconds * fps))):
            a = np.zeros((h, w, 3), np.uint8)
            a[:] = color
            a[:, (i * 3) % w] = 255  # a moving line, so frames differ
            frame = av.VideoFrame.from_ndarray(a, format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def probe(path: Path) -> dict:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        return {
            "codec": stream.codec_context.name,
            "pix_fmt": stream.codec_context.pix_fmt,
            "fps": float(stream.average_rate),
            "width": stream.codec_context.width,
            "height": stream.codec_context.height,
            "frames": frames,
        }


@pytest.fixture
def videos(tmp_path: Path) -> tuple[Path, Path]:
    return (
        make_video(tmp_path / "a.mp4", 1.0, (200, 30, 30)),
        make_video(tmp_path / "b.mp4", 2.0, (30, 200, 30)),
    )


def image_bytes(color: tuple[int, int, int]) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (64, 48), color).save(buf, format="PNG")
    return buf.getvalue()


# ------------------------------------------------------------------- word_diff / labels


def test_word_diff_marks_added_and_removed_words_in_order() -> None:
    diff = word_diff("a cat, camera zooms in", "a cat, camera pans left slowly")
    assert diff == [
        ("same", "a"),
        ("same", "cat,"),
        ("same", "camera"),
        ("removed", "zooms"),
        ("removed", "in"),
        ("added", "pans"),
        ("added", "left"),
        ("added", "slowly"),
    ]


def test_word_diff_ignores_case_and_punctuation_and_handles_empty() -> None:
    assert [op for op, _ in word_diff("Zoom in.", "zoom IN")] == ["same", "same"]
    assert word_diff("", "hello") == [("added", "hello")]
    assert word_diff("bye", "") == [("removed", "bye")]
    assert word_diff("", "") == []


def inp(prompt: str, *, run_id: str = "r", video_path: Path | None = None, **kw) -> Run:
    """A stored run with these params (its images are only hashes: nothing may read them)."""
    params = dict(prompt=prompt, negative_prompt="", duration=10, start_image={"sha256": "s1"}, end_image=None)
    params.update(kw)
    return Run.from_dict({"run_id": run_id, "params": params, "video_path": video_path and str(video_path)})


def test_labels_show_only_the_words_that_differ() -> None:
    labels = labels_for([inp("a cat, camera zooms in"), inp("a cat, camera pans left")])
    assert labels == ["“zooms in”", "“pans left”"]


def test_labels_name_the_other_differences() -> None:
    runs = [
        inp("a dog runs", duration=10),
        inp("a dog runs", duration=20, negative_prompt="blur"),
        inp("a dog runs", duration=10, start_image={"sha256": "s2"}, end_image={"sha256": "e"}),
    ]
    a, b, c = labels_for(runs)
    assert "10 s" in a and "20 s" in b and "10 s" in c
    assert "no negative prompt" in a and "blur" in b
    assert "start image 1" in a and "start image 2" in c
    assert "no end image" in a and "end image 1" in c
    assert "“" not in a  # the prompts are the same: not mentioned


def test_identical_runs_are_numbered_takes() -> None:
    assert labels_for([inp("x"), inp("x"), inp("x")]) == ["take 1", "take 2", "take 3"]


def test_labels_and_cards_of_stored_runs_use_params_not_images() -> None:
    png = {"sha256": "aa", "mime": "image/png", "width": 64, "height": 48}
    runs = [inp("camera zooms in", start_image=png), inp("camera pans left", start_image=png, end_image={"sha256": "bb"})]
    # A run read from a store without its images: rebuilding its input would fail.
    assert labels_for(runs) == ["“zooms in” · no end image", "“pans left” · end image 1"]
    card = run_card(runs[1])
    assert card["prompt"] == "camera pans left" and card["params"]["end_image"] == {"sha256": "bb"}
    assert card["params"]["start_image"] == png


def test_labels_with_real_inputs() -> None:
    from framepack_widgets.inputs import FramepackInput

    base = FramepackInput("a boat, camera zooms in", image_bytes((10, 20, 30)))
    other = base.replace(prompt="a boat, camera pans left", end_image=image_bytes((200, 10, 10)))
    assert labels_for([base, other]) == ["“zooms in” · no end image", "“pans left” · end image 1"]


# ------------------------------------------------------------------- comparison video


def test_comparison_is_browser_playable_side_by_side_and_as_long_as_the_longest(videos, tmp_path: Path) -> None:
    out = export_comparison(list(videos), ["zooms in", "pans left"], tmp_path / "out" / "cmp.mp4")
    assert out == tmp_path / "out" / "cmp.mp4" and out.is_file()
    info = probe(out)
    assert info["codec"] == "h264" and info["pix_fmt"] == "yuv420p" and info["fps"] == 30.0
    assert info["width"] >= 2 * 160 and info["width"] <= 2 * 160 + 4  # two 160 px tiles (+ a 2 px gap)
    assert info["height"] > 90  # the video plus a caption band
    assert len(info["frames"]) == 60  # 2 s, the longer input
    # +faststart: the index (moov) comes before the media data.
    head = out.read_bytes()[:4096]
    assert head.find(b"moov") != -1 and (head.find(b"mdat") == -1 or head.find(b"moov") < head.find(b"mdat"))
    # No temporary files left behind.
    assert [p.name for p in out.parent.iterdir()] == ["cmp.mp4"]


def test_shorter_video_holds_its_last_frame(videos, tmp_path: Path) -> None:
    out = export_comparison(list(videos), ["a", "b"], tmp_path / "cmp.mp4")
    frames = probe(out)["frames"]
    h = frames[0].shape[0]
    left = lambda f: f[h - 80 : h - 10, 10:150].astype(int)  # inside the first tile's video area
    right = lambda f: f[h - 80 : h - 10, 172:312].astype(int)
    # After 1 s the left tile is frozen, the right one still moves.
    assert abs(left(frames[40]) - left(frames[59])).mean() < 2
    assert abs(right(frames[40]) - right(frames[59])).mean() > 2
    # And the left tile is still the red video, not blank.
    assert left(frames[59])[..., 0].mean() > 120


def test_different_labels_give_different_caption_pixels(videos, tmp_path: Path) -> None:
    same = probe(export_comparison([videos[0], videos[0]], ["same", "same"], tmp_path / "same.mp4"))["frames"][0]
    diff = probe(export_comparison([videos[0], videos[0]], ["same", "WWWW other"], tmp_path / "diff.mp4"))["frames"][0]
    band_h = same.shape[0] - 90
    assert band_h >= 10
    band = lambda f, x0, x1: f[:band_h, x0:x1].astype(int)
    # Identical labels: both caption bands match; different labels: they don't.
    assert abs(band(same, 0, 160) - band(same, 162, 322)).mean() < 3
    assert abs(band(diff, 0, 160) - band(diff, 162, 322)).mean() > 3
    # The text is drawn: a band is not one flat colour.
    assert band(same, 0, 160).std() > 5


def test_long_labels_are_wrapped_not_overflowing(videos, tmp_path: Path) -> None:
    long = "word " * 200
    info = probe(export_comparison(list(videos), [long, "short"], tmp_path / "long.mp4"))
    assert info["height"] < 90 + 80  # at most two lines of caption


def test_four_runs_make_a_2x2_grid(videos, tmp_path: Path) -> None:
    info = probe(export_comparison([*videos, *videos], list("abcd"), tmp_path / "grid.mp4"))
    assert 320 <= info["width"] <= 324
    assert info["height"] >= 2 * 90


def test_tiles_shrink_to_max_width(videos, tmp_path: Path) -> None:
    info = probe(export_comparison(list(videos), ["a", "b"], tmp_path / "small.mp4", max_width=200))
    assert info["width"] <= 200 and info["width"] % 2 == 0 and info["height"] % 2 == 0


def test_bad_requests_are_refused_before_writing(videos, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="labels"):
        export_comparison(list(videos), ["only one"], tmp_path / "x.mp4")
    with pytest.raises(InvalidInputError, match="1 to 4"):
        export_comparison([videos[0]] * 5, list("abcde"), tmp_path / "x.mp4")
    with pytest.raises(InvalidInputError, match="no video at"):
        export_comparison([videos[0], tmp_path / "missing.mp4"], ["a", "b"], tmp_path / "x.mp4")
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all")
    with pytest.raises(InvalidInputError):
        export_comparison([videos[0], broken], ["a", "b"], tmp_path / "x.mp4")
    assert not (tmp_path / "x.mp4").exists()
    assert not list(tmp_path.glob(".x.mp4*"))


def test_export_run_comparison_uses_the_runs_labels(videos, tmp_path: Path) -> None:
    runs = [
        inp("camera zooms in", run_id="r1", video_path=videos[0]),
        inp("camera pans left", run_id="r2", video_path=videos[1]),
    ]
    out = export_run_comparison(runs, tmp_path / "runs.mp4")
    assert len(probe(out)["frames"]) == 60
    with pytest.raises(InvalidInputError, match="r3"):
        export_run_comparison([*runs, inp("x", run_id="r3")], tmp_path / "n.mp4")


# ------------------------------------------------------------------- run card


def fake_run(video: Path | None, *, backend: str = "simulator", start_image: object = None) -> Run:
    from framepack_widgets.inputs import FramepackInput

    t0 = datetime(2025, 6, 30, 7, 11, 30, tzinfo=timezone.utc)
    source = image_bytes((10, 90, 200)) if start_image is None else start_image
    run = Run.from_input(
        FramepackInput("a lighthouse, camera zooms in", source, negative_prompt="blurry", duration=20),
        backend=backend, run_id="run-123",
    )
    run.created_at = t0
    run.update(stage=RunStage.COMPLETED, status=TaskStatus.COMPLETED, task_id="8718d5c1-aaaa", submitted_at=t0 + timedelta(seconds=1),
               finished_at=t0 + timedelta(seconds=61), video_path=video,
               video_url="https://img.example/out.mp4?signature=SIGNED")
    return run


def test_run_card_zip_has_metadata_and_poster_and_no_key(videos, tmp_path: Path, monkeypatch) -> None:
    secret = "sk-test-SECRET-KEY-123456"
    monkeypatch.setenv("PIAPI_API_KEY", secret)
    monkeypatch.setenv("JPY_SESSION_NAME", "/home/teacher/private/lesson.ipynb")  # the run's notebook
    run = fake_run(videos[1])
    out = export_run_card(run, tmp_path / "cards")
    assert out.suffix == ".zip" and out.parent == tmp_path / "cards"
    with zipfile.ZipFile(out) as zf:
        assert sorted(zf.namelist()) == ["card.json", "poster.jpg"]
        raw = b"".join(zf.read(n) for n in zf.namelist())
        card = json.loads(zf.read("card.json"))
        from io import BytesIO

        from PIL import Image

        poster = Image.open(BytesIO(zf.read("poster.jpg")))
        assert poster.format == "JPEG" and poster.size == (160, 90)
    assert secret.encode() not in raw and secret.encode() not in out.read_bytes()
    assert card == read_run_card(out)
    assert card["prompt"] == "a lighthouse, camera zooms in"
    assert card["negative_prompt"] == "blurry"
    assert card["duration"] == 20 and card["fps"] == 30
    assert card["task_id"] == "8718d5c1-aaaa" and card["run_id"] == "run-123"
    assert card["status"] == "completed" and card["stage"] == "completed"
    assert card["backend"] == "simulator" and card["synthetic"] is True and "synthetic" in card["note"]
    assert card["cost_usd"] == 0.6 and "nothing was charged" in card["cost_note"]
    assert card["wall_time"] == 60.0
    assert card["created_at"].startswith("2025-06-30T07:11:30")
    assert card["params"]["start_image"]["sha256"] == run.input.start_image.sha256
    assert card["params"]["end_image"] is None
    assert [e["stage"] for e in card["history"]] == ["queued", "completed"]
    assert card["video_url"] == "https://img.example/out.mp4" and "video_path" not in card  # no token, no local path
    assert card["notebook"] == "lesson.ipynb" and b"/home/teacher" not in raw  # its notebook by name, no folder
    assert set(run.to_dict()) - {"video_path"} <= set(card)  # the card is the run's record ...
    assert Run.from_dict(card).history == run.history  # ... and reads back as one
    assert card["video"]["codec"] == "h264" and card["video"]["frames"] == 60
    assert card["poster"] == "poster.jpg" and card["poster_source"] == "video"
    # No bytes anywhere: every value is small.
    assert len(json.dumps(card)) < 4000


def test_run_card_without_video_uses_the_start_image_and_can_include_the_video(videos, tmp_path: Path) -> None:
    out = export_run_card(fake_run(None, backend="piapi"), tmp_path)
    with zipfile.ZipFile(out) as zf:
        card = json.loads(zf.read("card.json"))
        assert "poster.jpg" in zf.namelist()
    assert card["poster_source"] == "start image" and card["video"] is None
    assert card["synthetic"] is False and "note" not in card

    out = export_run_card(fake_run(videos[0]), tmp_path / "with_video", include_video=True)
    with zipfile.ZipFile(out) as zf:
        assert "video.mp4" in zf.namelist()
        assert zf.read("video.mp4") == videos[0].read_bytes()


def test_run_card_strips_url_query_strings() -> None:
    from framepack_widgets.inputs import FramepackInput

    run = fake_run(None, start_image="https://example.com/img.png?token=abc")
    card = run_card(run)
    assert card["params"]["start_image"]["url"] == "https://example.com/img.png"
    assert card["params"]["start_image"]["url_query_removed"] is True
    assert "abc" not in json.dumps(card)


def test_importing_export_stays_light() -> None:
    code = (
        "import sys, framepack_widgets.export, framepack_widgets.compare, framepack_widgets.runs, "
        "framepack_widgets.sweeps; "
        "print(sorted(m for m in ('PIL', 'numpy', 'av') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
