"""Browser -> kernel uploads in chunks: the kernel joins them, and refuses what is too big.

The browser half (cutting, refusing before sending) is in js/tests/upload.test.js; here the
kernel half, through the same custom messages the browser sends.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from framepack_widgets import FramepackWidget
from framepack_widgets.client import AsyncClient
from framepack_widgets.constants import MAX_UPLOAD_BYTES, MESSAGE_CHUNK_BYTES
from framepack_widgets.runs import RunStore
from framepack_widgets.simulator import Simulator
from framepack_widgets.widget._uploads import UploadRefused, Uploads


def noisy_png(size: tuple[int, int] = (700, 500)) -> bytes:
    """A PNG well over one chunk (noise does not compress)."""
    import numpy as np

    pixels = np.random.default_rng(3).integers(0, 255, size=(size[1], size[0], 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG")
    return out.getvalue()


def cut(data: bytes, size: int, upload_id: str = "u1", slot: str = "start") -> list[tuple[dict, bytes]]:
    pieces = [data[i : i + size] for i in range(0, max(len(data), 1), size)]
    return [
        ({"type": "upload", "slot": slot, "name": "big.png", "mime": "image/png", "size": len(data),
          "upload_id": upload_id, "index": i, "count": len(pieces), "total": len(data)}, piece)
        for i, piece in enumerate(pieces)
    ]


# ------------------------------------------------------------------ the joiner on its own
def test_chunks_are_joined_in_any_order() -> None:
    uploads = Uploads(limit=10_000, chunk=1_000)
    data = bytes(range(256)) * 10  # 2560 bytes: 3 chunks
    parts = cut(data, 1_000)
    assert uploads.add("start", *parts[2]) is None
    assert uploads.add("start", *parts[0]) is None
    assert uploads.add("start", *parts[0]) is None  # a repeated chunk counts once
    assert uploads.pending() == {"start": (2, 3)}
    assert uploads.add("start", *parts[1]) == data
    assert uploads.pending() == {}


def test_a_new_upload_to_a_slot_replaces_its_unfinished_one() -> None:
    uploads = Uploads(limit=10_000, chunk=1_000)
    old, new = b"a" * 2500, b"b" * 1500
    uploads.add("start", *cut(old, 1_000, "old")[0])
    first, second = cut(new, 1_000, "new")
    assert uploads.add("start", *first) is None
    assert uploads.add("start", *second) == new


def test_too_big_or_garbled_uploads_are_refused_with_what_to_do() -> None:
    uploads = Uploads(limit=3_000, chunk=1_000)
    with pytest.raises(UploadRefused, match=r"too large to send from the browser.*widget\.end_image from Python"):
        uploads.add("end", *cut(b"x" * 3_500, 1_000, slot="end")[0])
    head = {"upload_id": "u", "index": 5, "count": 2, "total": 1_500}
    with pytest.raises(UploadRefused, match="garbled"):
        uploads.add("start", head, b"x")
    with pytest.raises(UploadRefused, match="garbled"):  # a piece larger than a chunk
        uploads.add("start", {"upload_id": "u", "index": 0, "count": 1}, b"x" * 1_001)
    with pytest.raises(UploadRefused, match="incomplete"):
        uploads.add("start", {"upload_id": "u", "index": 0, "count": 1, "total": 20}, b"x" * 10)


# ------------------------------------------------------------------ through the widget
@pytest.fixture(scope="module")
def sim():
    with Simulator(time_scale=200, render_workers=1) as simulator:
        yield simulator


@pytest.fixture
async def widget(sim: Simulator, tmp_path: Path):
    store = RunStore(tmp_path / "store")
    client = AsyncClient(sim.api_key, base_url=sim.base_url, poll=0.02)
    w = FramepackWidget(client, store=store)
    sent: list[dict] = []
    w.send = lambda content, buffers=None: sent.append(content)  # type: ignore[method-assign]
    w.sent = sent  # type: ignore[attr-defined]
    yield w
    await w.runner.aclose()
    w.close()
    await client.close()
    store.close()


async def test_the_widget_takes_an_image_sent_in_chunks(widget: FramepackWidget) -> None:
    data = noisy_png()
    assert len(data) > 2 * MESSAGE_CHUNK_BYTES
    assert widget._limits["chunk_bytes"] == MESSAGE_CHUNK_BYTES
    assert widget._limits["max_upload_bytes"] == MAX_UPLOAD_BYTES
    parts = cut(data, widget._limits["chunk_bytes"])
    for content, piece in parts[:-1]:
        widget._handle_custom_msg(content, [memoryview(piece)])
        assert widget.start_image is None, "the image is set only once every chunk is in"
    widget._handle_custom_msg(parts[-1][0], [memoryview(parts[-1][1])])
    assert widget.start_image is not None
    assert widget._start_image_info["width"] == 700 and widget._start_image_info["size"] == len(data)
    assert [m for m in widget.sent if m["type"] == "error"] == []


async def test_the_widget_refuses_an_upload_over_the_limit(widget: FramepackWidget) -> None:
    content = {"type": "upload", "slot": "start", "name": "huge.tif", "mime": "image/tiff", "upload_id": "u",
               "index": 0, "count": 20, "total": MAX_UPLOAD_BYTES + 1}
    widget._handle_custom_msg(content, [memoryview(b"x" * 100)])
    assert widget.start_image is None
    (error,) = [m for m in widget.sent if m["type"] == "error"]
    assert error["slot"] == "start" and "set widget.start_image from Python" in error["message"]
    assert widget._input_error == error["message"]
