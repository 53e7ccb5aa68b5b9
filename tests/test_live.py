"""Opt-in checks against the real PiAPI. They cost money ($0.30 per generate) and never run in CI.

    FRAMEPACK_LIVE_TESTS=1 PIAPI_API_KEY=... .venv/bin/python -m pytest tests/test_live.py -m live

The key is read here, at collection, because the suite's autouse fixture removes it from the
environment of every test (so nothing else can reach PiAPI by accident). `.ci/test` unsets it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

LIVE_KEY = os.environ.get("PIAPI_API_KEY") if os.environ.get("FRAMEPACK_LIVE_TESTS") == "1" else None

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(LIVE_KEY is None, reason="live PiAPI tests need FRAMEPACK_LIVE_TESTS=1 and PIAPI_API_KEY"),
]


def test_account_info_answers() -> None:
    from framepack_widgets import Client

    with Client(LIVE_KEY) as client:
        info = client.account_info()
    assert isinstance(info, dict) and info


def test_unknown_task_is_not_found() -> None:
    from framepack_widgets import Client
    from framepack_widgets.errors import NotFoundError

    with Client(LIVE_KEY) as client, pytest.raises(NotFoundError):
        client.get_task("00000000-0000-0000-0000-000000000000")


def test_generate_and_download_a_10_second_video(tmp_path: Path) -> None:
    from PIL import Image, ImageDraw

    from framepack_widgets import Client, FramepackInput

    image = Image.new("RGB", (960, 640), (60, 120, 200))
    ImageDraw.Draw(image).ellipse((380, 220, 580, 420), fill=(250, 200, 40))
    request = FramepackInput("the camera zooms in slowly on the sun", image, duration=10)
    with Client(LIVE_KEY) as client:
        task = client.generate(request, timeout=1800)
        path = client.download(task, tmp_path / "live.mp4")
    assert path.stat().st_size > 10_000
