"""`framepack generate -o`: the MP4 written carries the run's settings in its comment tag."""

from __future__ import annotations

from pathlib import Path

import av
import pytest

from framepack_widgets import cli, video
from framepack_widgets.constants import MODEL
from framepack_widgets.video import read_settings


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    from PIL import Image

    path = tmp_path / "photo.jpg"
    Image.new("RGB", (320, 240), (40, 90, 200)).save(path, quality=90)
    return path


def test_generate_writes_the_settings_into_its_video(
    photo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FRAMEPACK_SIM_TIME_SCALE", "40")
    out = tmp_path / "out.mp4"
    code = cli.main(["generate", str(photo), "--prompt", "camera zooms in slowly", "--negative-prompt", "blurry",
                     "--duration", "10", "-o", str(out)])
    assert code == cli.EXIT_OK, capsys.readouterr().err
    settings = read_settings(out)
    assert settings is not None
    assert {k: settings[k] for k in ("prompt", "negative_prompt", "duration", "model", "run_id", "parent_id")} == {
        "prompt": "camera zooms in slowly", "negative_prompt": "blurry", "duration": 10, "model": MODEL,
        "run_id": None, "parent_id": None,
    }
    assert settings["simulated"] is True and settings["task_id"] and settings["made_by"].startswith("framepack_widgets ")
    assert set(settings["start_image"]) == {"sha256"} and "end_image" not in settings
    with av.open(str(out)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 10 * 30, "the video itself is whole"
    assert not list(tmp_path.glob(".*.part*")), "no temporary file left beside it"


def test_a_video_whose_settings_cannot_be_written_is_kept(
    photo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def refuse(path: object, settings: object) -> None:
        raise video.VideoFileError(f"{path} is a Matroska file, not an MP4: no settings were written")

    monkeypatch.setenv("FRAMEPACK_SIM_TIME_SCALE", "40")
    monkeypatch.setattr(video, "write_settings", refuse)
    out = tmp_path / "out.mp4"
    code = cli.main(["generate", str(photo), "--prompt", "pan left", "-o", str(out)])
    err = capsys.readouterr().err
    assert code == cli.EXIT_OK, err
    assert out.stat().st_size > 0 and read_settings(out) is None
    assert "saved as it came" in err and "not an MP4" in err
