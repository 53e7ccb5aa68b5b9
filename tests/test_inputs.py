"""FramepackInput / ImageSource / normalize_image: what is accepted, what is refused, and how.

Every test image is generated here with PIL/numpy; no binaries are committed.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import math
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms, ImageFile

from framepack_widgets import _images
from framepack_widgets.constants import COST_PER_SECOND, MAX_DURATION, MAX_PROMPT_CHARS, MIN_DURATION
from framepack_widgets.errors import InvalidInputError
from framepack_widgets.inputs import FramepackInput, ImageSource, normalize_image

# --------------------------------------------------------------------------- helpers


def gradient(width: int = 320, height: int = 240, mode: str = "RGB") -> Image.Image:
    """A smooth colour gradient with some noise (photo-like enough that JPEG wins)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.int32)
    rng = np.random.default_rng(0)
    arr = np.stack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1), (x + y) % 256], axis=-1)
    arr = np.clip(arr.astype(np.int16) + rng.integers(-20, 21, arr.shape, dtype=np.int16), 0, 255)
    arr = arr.astype(np.uint8)
    img = Image.fromarray(arr)
    return img if mode == "RGB" else img.convert(mode)


def halves(width: int, height: int, left=(255, 0, 0), right=(0, 0, 255)) -> Image.Image:
    img = Image.new("RGB", (width, height), right)
    img.paste(left, (0, 0, width // 2, height))
    return img


def encode(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def decoded(src: ImageSource) -> Image.Image:
    img = src.to_pil()
    assert img.mode == "RGB"
    assert (img.width, img.height) == (src.width, src.height)
    return img


def close(c1, c2, tol: int = 40) -> bool:
    return all(abs(int(a) - int(b)) <= tol for a, b in zip(c1, c2, strict=True))


@pytest.fixture
def jpeg_bytes() -> bytes:
    return encode(gradient(), "JPEG", quality=92)


@pytest.fixture
def jpeg_path(tmp_path: Path, jpeg_bytes: bytes) -> Path:
    path = tmp_path / "photo.jpg"
    path.write_bytes(jpeg_bytes)
    return path


def refused(value, *fragments: str, **kwargs) -> str:
    with pytest.raises(InvalidInputError) as info:
        normalize_image(value, **kwargs)
    message = str(info.value)
    for fragment in fragments:
        assert fragment.lower() in message.lower(), message
    assert isinstance(info.value, ValueError)
    return message


# --------------------------------------------------------------------------- accepted types


def test_str_path(jpeg_path: Path) -> None:
    src = normalize_image(str(jpeg_path))
    assert src.url is None and src.mime == "image/jpeg"
    assert (src.width, src.height) == (320, 240)
    assert src.original_size == jpeg_path.stat().st_size
    decoded(src)


def test_pathlib_path(jpeg_path: Path) -> None:
    assert normalize_image(jpeg_path).sha256 == normalize_image(str(jpeg_path)).sha256


def test_home_relative_path(jpeg_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(jpeg_path.parent))
    assert normalize_image("~/photo.jpg").width == 320


@pytest.mark.parametrize("wrap", [bytes, bytearray, memoryview, io.BytesIO])
def test_bytes_like_and_file_objects(jpeg_bytes: bytes, wrap) -> None:
    src = normalize_image(wrap(jpeg_bytes))
    assert src.data and (src.width, src.height) == (320, 240)
    assert src.sha256 == normalize_image(jpeg_bytes).sha256


def test_open_binary_file(jpeg_path: Path) -> None:
    with open(jpeg_path, "rb") as fh:
        assert normalize_image(fh).width == 320


def test_text_mode_file_refused(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text("hello")
    with open(path) as fh:
        refused(fh, "text mode", "rb")


def test_pil_image_is_not_modified() -> None:
    img = gradient(300, 200, "RGBA")
    before = img.tobytes()
    src = normalize_image(img)
    assert (src.width, src.height) == (300, 200)
    assert img.mode == "RGBA" and img.tobytes() == before
    decoded(src)


def test_lazy_pil_image_from_file(jpeg_path: Path) -> None:
    with Image.open(jpeg_path) as img:
        assert normalize_image(img).width == 320


@pytest.mark.parametrize(
    "arr",
    [
        np.full((60, 80), 128, np.uint8),
        np.full((60, 80, 1), 128, np.uint8),
        np.full((60, 80, 3), 128, np.uint8),
        np.full((60, 80, 4), 128, np.uint8),
        np.full((60, 80, 3), 0.5, np.float32),
        np.full((60, 80), 0.5, np.float64),
        np.ones((60, 80), bool),
        np.full((60, 80, 3), 128, np.int64),
    ],
    ids=["HxW", "HxWx1", "HxWx3", "HxWx4", "float32", "float64-grey", "bool", "int64-in-range"],
)
def test_numpy_arrays(arr: np.ndarray) -> None:
    src = normalize_image(arr)
    assert (src.width, src.height) == (80, 60)
    decoded(src)


def test_numpy_float_values_are_scaled() -> None:
    arr = np.zeros((40, 40, 3), np.float32)
    arr[..., 0] = 1.0
    assert close(decoded(normalize_image(arr)).getpixel((20, 20)), (255, 0, 0), 8)


def test_numpy_rgba_flattened_on_white() -> None:
    arr = np.zeros((40, 40, 4), np.uint8)  # fully transparent black
    assert close(decoded(normalize_image(arr)).getpixel((20, 20)), (255, 255, 255), 3)


def test_non_contiguous_array() -> None:
    arr = np.asarray(gradient(200, 100))[::2, ::2]
    assert normalize_image(arr).width == 100


@pytest.mark.parametrize(
    "arr, fragment",
    [
        (np.zeros((10, 10, 2), np.uint8), "shape"),
        (np.zeros((3, 40, 50), np.uint8), "transpose(1, 2, 0)"),
        (np.zeros((4, 4, 4, 4), np.uint8), "shape"),
        (np.zeros((0, 10), np.uint8), "empty"),
        (np.full((10, 10), 2.0), "0..1"),
        (np.full((10, 10), -0.1), "0..1"),
        (np.full((10, 10), np.nan), "nan"),
        (np.full((10, 10), 1000, np.uint16), "uint8"),
        (np.full((10, 10), 1 + 1j), "dtype"),
    ],
)
def test_numpy_refusals(arr: np.ndarray, fragment: str) -> None:
    refused(arr, fragment)


@pytest.mark.parametrize(
    "url", ["https://example.com/cat.png", "http://127.0.0.1:8000/a.jpg?x=1", "HTTPS://EXAMPLE.COM/A.PNG"]
)
def test_urls_pass_through_untouched(url: str) -> None:
    src = normalize_image(url)
    assert src.url == url and src.data is None and src.mime is None and src.width is None
    assert src.request_value() == url and src.request_value("data_uri") == url
    assert src.to_params() == {"url": url}
    assert len(src.sha256) == 64


def test_data_uri_accepted(jpeg_bytes: bytes) -> None:
    uri = "data:image/jpeg;base64," + base64.b64encode(jpeg_bytes).decode()
    assert normalize_image(uri).width == 320


def test_image_source_is_idempotent(jpeg_bytes: bytes) -> None:
    src = normalize_image(jpeg_bytes)
    assert normalize_image(src) is src
    url = normalize_image("https://example.com/a.png")
    assert normalize_image(url, max_side=64) is url


def test_image_source_larger_than_max_side_is_shrunk() -> None:
    src = normalize_image(gradient(1000, 500))
    small = normalize_image(src, max_side=200)
    assert (small.width, small.height) == (200, 100)


def test_normalised_bytes_round_trip_unchanged(jpeg_bytes: bytes) -> None:
    """Re-normalising our own output keeps the very same bytes (store reload, reruns)."""
    for value in (jpeg_bytes, gradient(2000, 1500), flat_graphic()):
        src = normalize_image(value)
        again = normalize_image(src.data)
        assert again.sha256 == src.sha256 and again.mime == src.mime


# --------------------------------------------------------------------------- formats


@pytest.mark.parametrize(
    "fmt, kwargs",
    [
        ("JPEG", {"quality": 90}),
        ("PNG", {}),
        ("WEBP", {"quality": 90}),
        ("GIF", {}),
        ("BMP", {}),
        ("TIFF", {}),
        ("TIFF", {"compression": "tiff_lzw"}),
    ],
)
def test_accepted_formats(fmt: str, kwargs: dict, tmp_path: Path) -> None:
    img = halves(240, 160)
    path = tmp_path / f"img.{fmt.lower()}"
    img.save(path, fmt, **kwargs)
    src = normalize_image(path)
    assert src.mime in ("image/jpeg", "image/png")
    assert (src.width, src.height) == (240, 160)
    out = decoded(src)
    assert close(out.getpixel((10, 80)), (255, 0, 0))
    assert close(out.getpixel((230, 80)), (0, 0, 255))


def test_gif_first_frame_only() -> None:
    frames = [Image.new("RGB", (64, 64), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert close(decoded(normalize_image(data)).getpixel((32, 32)), (255, 0, 0), 10)


def test_animated_webp_first_frame() -> None:
    frames = [Image.new("RGB", (64, 64), c) for c in ((0, 255, 0), (255, 0, 0))]
    data = encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], lossless=True)
    assert close(decoded(normalize_image(data)).getpixel((32, 32)), (0, 255, 0), 10)


def test_multi_page_tiff_first_page() -> None:
    pages = [Image.new("RGB", (50, 40), (0, 0, 255)), Image.new("RGB", (50, 40), (255, 0, 0))]
    data = encode(pages[0], "TIFF", save_all=True, append_images=pages[1:])
    assert close(decoded(normalize_image(data)).getpixel((25, 20)), (0, 0, 255), 10)


# --------------------------------------------------------------------------- cleaning


def with_orientation(img: Image.Image, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(img, "JPEG", quality=95, exif=exif.tobytes())


def test_exif_orientation_6_rotates() -> None:
    # Stored landscape, red on the left; orientation 6 = rotate 90 degrees clockwise to view.
    src = normalize_image(with_orientation(halves(200, 100), 6))
    assert (src.width, src.height) == (100, 200)
    out = decoded(src)
    assert close(out.getpixel((50, 20)), (255, 0, 0))  # left edge became the top
    assert close(out.getpixel((50, 180)), (0, 0, 255))


def test_exif_orientation_3_rotates_180() -> None:
    out = decoded(normalize_image(with_orientation(halves(200, 100), 3)))
    assert out.size == (200, 100)
    assert close(out.getpixel((20, 50)), (0, 0, 255))


def test_exif_orientation_applied_to_pil_images_too() -> None:
    with Image.open(io.BytesIO(with_orientation(halves(200, 100), 6))) as img:
        assert normalize_image(img).width == 100


def test_exif_orientation_with_downscale() -> None:
    src = normalize_image(with_orientation(gradient(3000, 1500), 6))
    assert (src.width, src.height) == (640, 1280)


def test_metadata_is_stripped() -> None:
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # camera make; GPS would be in the same block
    exif[0x0112] = 1
    src = normalize_image(encode(gradient(), "JPEG", quality=90, exif=exif.tobytes()))
    info = src.to_pil().info
    assert "exif" not in info and b"PhoneMaker" not in src.data


def test_png_text_chunks_are_stripped() -> None:
    from PIL import PngImagePlugin

    meta = PngImagePlugin.PngInfo()
    meta.add_text("parameters", "secret prompt")
    src = normalize_image(encode(flat_graphic(), "PNG", pnginfo=meta))
    assert b"secret prompt" not in src.data


def test_rgba_flattened_on_white() -> None:
    img = Image.new("RGBA", (100, 50), (0, 0, 0, 0))
    img.paste((255, 0, 0, 255), (0, 0, 50, 50))
    out = decoded(normalize_image(encode(img, "PNG")))
    assert close(out.getpixel((25, 25)), (255, 0, 0), 3)
    assert close(out.getpixel((75, 25)), (255, 255, 255), 3)


def test_half_transparent_blends_with_white() -> None:
    img = Image.new("RGBA", (40, 40), (0, 0, 0, 128))
    out = decoded(normalize_image(encode(img, "PNG")))
    assert close(out.getpixel((20, 20)), (127, 127, 127), 4)


def test_la_and_palette_transparency() -> None:
    la = Image.new("LA", (40, 40), (0, 0))
    assert close(decoded(normalize_image(encode(la, "PNG"))).getpixel((5, 5)), (255, 255, 255), 3)
    pal = Image.new("P", (40, 40), 1)
    pal.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    pal.paste(0, (0, 0, 20, 40))
    out = decoded(normalize_image(encode(pal, "GIF", transparency=0)))
    assert close(out.getpixel((5, 20)), (255, 255, 255), 3)
    assert close(out.getpixel((35, 20)), (255, 0, 0), 3)


@pytest.mark.parametrize(
    "img, fmt, expected",
    [
        (Image.new("L", (40, 40), 200), "PNG", (200, 200, 200)),
        (Image.new("1", (40, 40), 1), "PNG", (255, 255, 255)),
        (Image.new("P", (40, 40), 0), "PNG", (0, 0, 0)),
        (Image.new("CMYK", (40, 40), (0, 255, 255, 0)), "JPEG", (255, 0, 0)),
        (Image.new("CMYK", (40, 40), (0, 255, 255, 0)), "TIFF", (255, 0, 0)),
        (Image.new("L", (40, 40), 90), "JPEG", (90, 90, 90)),
    ],
    ids=["L-png", "1-bit", "palette", "CMYK-jpeg", "CMYK-tiff", "L-jpeg"],
)
def test_modes_become_rgb(img: Image.Image, fmt: str, expected) -> None:
    out = decoded(normalize_image(encode(img, fmt)))
    assert close(out.getpixel((20, 20)), expected, 6)


def test_16_bit_greyscale_is_scaled_not_clipped() -> None:
    data = encode(Image.fromarray(np.full((40, 40), 32768, np.uint16)), "PNG")
    out = decoded(normalize_image(data))
    assert close(out.getpixel((20, 20)), (128, 128, 128), 3)


def test_icc_profile_converted_and_dropped() -> None:
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    src = normalize_image(encode(gradient(), "JPEG", icc_profile=srgb))
    assert "icc_profile" not in src.to_pil().info


def test_garbage_icc_profile_is_ignored() -> None:
    src = normalize_image(encode(halves(80, 40), "PNG", icc_profile=b"not a profile"))
    assert close(decoded(src).getpixel((10, 20)), (255, 0, 0), 6)


# --------------------------------------------------------------------------- size and encoding


def test_downscale_long_side_landscape_and_portrait() -> None:
    assert (normalize_image(gradient(3000, 1000)).width, normalize_image(gradient(3000, 1000)).height) == (1280, 427)
    tall = normalize_image(gradient(600, 2400))
    assert (tall.width, tall.height) == (320, 1280)


def test_never_upscales() -> None:
    src = normalize_image(gradient(300, 200))
    assert (src.width, src.height) == (300, 200)
    tiny = normalize_image(Image.new("RGB", (1, 1), "red"))
    assert (tiny.width, tiny.height) == (1, 1)


def test_max_side_configurable() -> None:
    src = normalize_image(gradient(1000, 800), max_side=512)
    assert (src.width, src.height) == (512, 410)
    inp = FramepackInput("go", gradient(1000, 800), end_image=gradient(900, 900), max_side=256)
    assert max(inp.start_image.width, inp.start_image.height) == 256
    assert (inp.end_image.width, inp.end_image.height) == (256, 256)


def test_large_jpeg_decoded_in_draft_mode_still_exact_size() -> None:
    src = normalize_image(encode(gradient(4000, 3000), "JPEG", quality=90))
    assert (src.width, src.height) == (1280, 960)


@pytest.mark.parametrize("bad", [0, 10, 100_000, 1280.5, "1280", True, None])
def test_max_side_refused(bad) -> None:
    refused(gradient(), "max_side", max_side=bad)


def flat_graphic() -> Image.Image:
    img = Image.new("RGB", (400, 300), (250, 240, 220))
    img.paste((20, 90, 200), (50, 50, 200, 150))
    img.paste((220, 30, 30), (220, 100, 380, 280))
    return img


def test_flat_graphics_become_png_photos_jpeg() -> None:
    flat = normalize_image(flat_graphic())
    assert flat.mime == "image/png"
    assert decoded(flat).tobytes() == flat_graphic().tobytes()  # lossless
    assert normalize_image(gradient(400, 300)).mime == "image/jpeg"


def test_output_is_compact() -> None:
    big = encode(gradient(3000, 2000), "PNG")
    src = normalize_image(big)
    assert src.nbytes < len(big) / 10


# --------------------------------------------------------------------------- refusals


def test_svg_refused(tmp_path: Path) -> None:
    path = tmp_path / "logo.svg"
    path.write_text('<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>')
    message = refused(path, "SVG", "export it as PNG or JPEG", "logo.svg")
    assert message.startswith("Start image")
    refused(b"<svg xmlns='http://www.w3.org/2000/svg'></svg>", "SVG")


def test_fake_heic_refused() -> None:
    data = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64
    refused(data, "HEIC", "JPEG")


def test_mp4_and_pdf_refused() -> None:
    refused(b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2" + b"\x00" * 40, "video")
    refused(b"%PDF-1.7\n...", "PDF")
    refused(b"<!DOCTYPE html><html><body>hi</body></html>", "HTML")


def test_truncated_jpeg_refused() -> None:
    data = encode(gradient(), "JPEG", quality=90)
    refused(data[: len(data) // 2], "truncated")


def test_truncated_header_refused() -> None:
    refused(encode(gradient(), "JPEG")[:300], "truncated")


def test_truncated_png_refused() -> None:
    data = encode(gradient(), "PNG")
    refused(data[: len(data) // 2], "truncated")


def test_truncation_detected_even_if_user_enabled_lenient_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    data = encode(gradient(), "JPEG", quality=90)
    refused(data[: len(data) // 2], "truncated")
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # restored


def test_zero_bytes_refused(tmp_path: Path) -> None:
    refused(b"", "empty")
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    refused(path, "empty", "empty.png")


def test_random_bytes_refused() -> None:
    data = np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    refused(b"\x8f\x01" + data, "isn't an image", "PNG or JPEG")


def test_text_refused() -> None:
    refused(b"just some notes, not a picture\n", "text")


def test_other_pillow_format_named() -> None:
    refused(encode(Image.new("RGB", (8, 8)), "ICO"), "ICO")


def test_missing_path_refused(tmp_path: Path) -> None:
    refused(tmp_path / "nope.jpg", "no such file", "nope.jpg")
    refused("definitely/not/here.png", "no such file", "relative")


def test_path_with_nul_refused() -> None:
    refused("cat\x00.png", "valid file path")


def test_directory_refused(tmp_path: Path) -> None:
    refused(tmp_path, "folder")
    refused(str(tmp_path), "folder")


@pytest.mark.parametrize(
    "value, fragment",
    [
        ("ftp://example.com/a.png", "ftp"),
        ("javascript:alert(1)", "javascript"),
        ("file:///tmp/a.png", "path"),
        ("gopher://x/y", "gopher"),
        ("http://", "host"),
        ("https:///a.png", "host"),
        ("https://exa mple.com/a.png", "spaces"),
        ("data:text/plain,hello", "data:"),
    ],
)
def test_bad_urls_refused(value: str, fragment: str) -> None:
    refused(value, fragment)


def test_file_name_with_colon_is_a_path(tmp_path: Path, jpeg_bytes: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "shot:1.jpg").write_bytes(jpeg_bytes)
    monkeypatch.chdir(tmp_path)
    assert normalize_image("shot:1.jpg").width == 320


def test_base64_text_gets_a_hint(jpeg_bytes: bytes) -> None:
    refused(base64.b64encode(jpeg_bytes).decode(), "b64decode")


@pytest.mark.parametrize("value", [None, "", "   "])
def test_missing_image_refused(value) -> None:
    refused(value, "start image")


@pytest.mark.parametrize("value", [42, 3.5, {"a": 1}, object()])
def test_wrong_type_refused(value) -> None:
    refused(value, "must be a file path")


def test_what_names_the_image() -> None:
    refused(b"", "End image", what="end image")


def decompression_bomb_png(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height pixels."""
    data = encode(Image.new("L", (1, 1)), "PNG")
    ihdr = struct.pack(">II", width, height) + data[24:29]
    chunk = b"IHDR" + ihdr
    return data[:12] + chunk + struct.pack(">I", zlib.crc32(chunk)) + data[33:]


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("side", [10_000, 20_000, 60_000])
def test_decompression_bomb_refused(side: int) -> None:
    refused(decompression_bomb_png(side, side), "decompression bomb")


def test_huge_file_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jpeg_path: Path) -> None:
    monkeypatch.setattr(_images, "MAX_FILE_BYTES", 100)
    refused(jpeg_path, "MB", "aren't accepted")
    refused(jpeg_path.read_bytes(), "aren't accepted")


# --------------------------------------------------------------------------- duration


@pytest.mark.parametrize(
    "value, expected",
    [(10, 10), (10.0, 10), (30, 30), (30.0, 30), (19, 19), (np.int64(12), 12), (np.int32(30), 30),
     (np.float64(15.0), 15)],
)
def test_duration_accepted(jpeg_bytes: bytes, value, expected: int) -> None:
    inp = FramepackInput("go", jpeg_bytes, duration=value)
    assert inp.duration == expected and type(inp.duration) is int
    assert json.dumps(inp.to_params())


@pytest.mark.parametrize(
    "value", [9, 31, 0, -10, 10.5, 29.999, True, False, np.bool_(True), math.nan, math.inf, -math.inf,
              "ten", "10", None, [10]],
)
def test_duration_refused(value) -> None:
    with pytest.raises(InvalidInputError, match="duration") as info:
        FramepackInput("go", "https://example.com/a.png", duration=value)
    assert "10" in str(info.value) and "30" in str(info.value)


def test_duration_checked_before_image_decoding() -> None:
    with pytest.raises(InvalidInputError, match="duration"):
        FramepackInput("go", b"not an image", duration=5)


# --------------------------------------------------------------------------- prompts

URL = "https://example.com/a.png"


def test_prompt_trimmed_and_newlines_kept() -> None:
    inp = FramepackInput("  a cat\n\tblinks  \r\n", URL)
    assert inp.prompt == "a cat\n\tblinks"
    assert FramepackInput("one\r\ntwo\rthree", URL).prompt == "one\ntwo\nthree"


@pytest.mark.parametrize("value", ["", "   ", "\n\t ", None, 42, b"bytes"])
def test_prompt_required_and_text(value) -> None:
    with pytest.raises(InvalidInputError, match="prompt"):
        FramepackInput(value, URL)


def test_prompt_length_limit() -> None:
    assert len(FramepackInput("x" * MAX_PROMPT_CHARS, URL).prompt) == MAX_PROMPT_CHARS
    assert FramepackInput("  " + "x" * MAX_PROMPT_CHARS + "  ", URL).prompt  # trimmed first
    with pytest.raises(InvalidInputError, match=str(MAX_PROMPT_CHARS)):
        FramepackInput("x" * (MAX_PROMPT_CHARS + 1), URL)


@pytest.mark.parametrize("ch", ["\x00", "\x07", "\x1b", "\x0b", "\x0c", "\x7f", "\x85", "\x9f", "\ud800"])
def test_prompt_control_characters_refused(ch: str) -> None:
    with pytest.raises(InvalidInputError, match=f"U\\+{ord(ch):04X}"):
        FramepackInput(f"a cat{ch}blinks", URL)
    with pytest.raises(InvalidInputError, match="negative prompt"):
        FramepackInput("ok", URL, negative_prompt=f"blur{ch}")


def test_prompt_unicode_fine() -> None:
    assert FramepackInput("猫がまばたきする 🐱 — café", URL).prompt.endswith("café")


def test_negative_prompt_rules() -> None:
    assert FramepackInput("go", URL).negative_prompt == ""
    assert FramepackInput("go", URL, negative_prompt=None).negative_prompt == ""
    assert FramepackInput("go", URL, negative_prompt="   ").negative_prompt == ""
    assert FramepackInput("go", URL, negative_prompt=" blurry\n").negative_prompt == "blurry"
    with pytest.raises(InvalidInputError, match="negative prompt"):
        FramepackInput("go", URL, negative_prompt="x" * (MAX_PROMPT_CHARS + 1))
    with pytest.raises(InvalidInputError, match="negative prompt"):
        FramepackInput("go", URL, negative_prompt=3)


# --------------------------------------------------------------------------- FramepackInput


@pytest.fixture
def inp(jpeg_bytes: bytes) -> FramepackInput:
    return FramepackInput("the cat blinks", jpeg_bytes, end_image=flat_graphic(),
                          negative_prompt="blurry", duration=12)


def test_request_input_base64(inp: FramepackInput) -> None:
    body = inp.request_input()
    assert list(body) == ["prompt", "negative_prompt", "start_image", "end_image", "duration"]
    assert body["prompt"] == "the cat blinks" and body["negative_prompt"] == "blurry" and body["duration"] == 12
    assert base64.b64decode(body["start_image"], validate=True) == inp.start_image.data
    assert base64.b64decode(body["end_image"], validate=True) == inp.end_image.data
    assert json.loads(json.dumps(body)) == body


def test_request_input_data_uri(inp: FramepackInput) -> None:
    body = inp.replace(image_encoding="data_uri").request_input()
    assert body["start_image"].startswith("data:image/jpeg;base64,")
    assert body["end_image"].startswith("data:image/png;base64,")
    assert inp.request_input(encoding="data_uri") == body
    payload = body["start_image"].split(",", 1)[1]
    assert base64.b64decode(payload) == inp.start_image.data


def test_request_input_upload_falls_back_and_substitutes(inp: FramepackInput) -> None:
    upload = inp.replace(image_encoding="upload")
    assert upload.request_input() == inp.request_input()  # no URLs yet: base64
    body = upload.request_input(uploaded={"start_image": "https://img.theapi.app/ephemeral/a.jpg"})
    assert body["start_image"] == "https://img.theapi.app/ephemeral/a.jpg"
    assert body["end_image"] == inp.end_image.request_value("base64")
    with pytest.raises(InvalidInputError):
        upload.request_input(uploaded={"middle_image": "https://x/y.png"})
    with pytest.raises(InvalidInputError):
        upload.request_input(uploaded={"start_image": "ftp://x/y.png"})


def test_request_input_without_end_image(jpeg_bytes: bytes) -> None:
    body = FramepackInput("go", jpeg_bytes).request_input()
    assert "end_image" not in body and body["duration"] == 10 and body["negative_prompt"] == ""


def test_request_input_with_url_images() -> None:
    body = FramepackInput("go", URL, end_image="http://example.com/b.jpg").request_input(encoding="data_uri")
    assert body["start_image"] == URL and body["end_image"] == "http://example.com/b.jpg"


@pytest.mark.parametrize("bad", ["base32", "", None, "url", 1])
def test_invalid_encoding_refused(bad, jpeg_bytes: bytes) -> None:
    with pytest.raises(InvalidInputError, match="image_encoding"):
        FramepackInput("go", jpeg_bytes, image_encoding=bad)
    if bad is not None:
        with pytest.raises(InvalidInputError, match="image_encoding"):
            FramepackInput("go", jpeg_bytes).request_input(encoding=bad)


def test_encoding_case_insensitive(jpeg_bytes: bytes) -> None:
    assert FramepackInput("go", jpeg_bytes, image_encoding=" Data_URI ").image_encoding == "data_uri"


def test_to_params_is_json_safe_without_bytes(inp: FramepackInput) -> None:
    params = inp.to_params()
    assert set(params) == {"prompt", "negative_prompt", "duration", "start_image", "end_image"}
    assert set(params["start_image"]) == {"sha256", "mime", "width", "height"}
    assert params["start_image"]["sha256"] == inp.start_image.sha256
    text = json.dumps(params)
    assert base64.b64encode(inp.start_image.data[:30]).decode()[:20] not in text

    def walk(value):
        assert not isinstance(value, (bytes, bytearray, memoryview))
        if isinstance(value, dict):
            for v in value.values():
                walk(v)

    walk(params)
    assert FramepackInput("go", URL).to_params()["start_image"] == {"url": URL}
    assert FramepackInput("go", URL).to_params()["end_image"] is None


def test_replace_revalidates(inp: FramepackInput) -> None:
    longer = inp.replace(duration=20, prompt="  the cat yawns ")
    assert longer.duration == 20 and longer.prompt == "the cat yawns"
    assert longer.start_image is inp.start_image and inp.duration == 12  # original untouched
    with pytest.raises(InvalidInputError, match="duration"):
        inp.replace(duration=31)
    with pytest.raises(InvalidInputError, match="prompt"):
        inp.replace(prompt="")
    with pytest.raises(InvalidInputError, match="Start image"):
        inp.replace(start_image=b"")
    with pytest.raises(InvalidInputError, match="Unknown field"):
        inp.replace(seconds=12)
    assert inp.replace(end_image=None).end_image is None
    assert inp.replace(start_image=URL).start_image.url == URL


def test_replace_smaller_max_side_shrinks_images(inp: FramepackInput) -> None:
    small = inp.replace(max_side=128)
    assert max(small.start_image.width, small.start_image.height) == 128
    assert max(small.end_image.width, small.end_image.height) == 128


def test_frozen_equal_and_hashable(jpeg_bytes: bytes) -> None:
    a = FramepackInput("go", jpeg_bytes, duration=11)
    b = FramepackInput("go", bytearray(jpeg_bytes), duration=11.0)
    assert a == b and hash(a) == hash(b) and a != a.replace(duration=12)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.duration = 20  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.start_image.data = b""  # type: ignore[misc]


@pytest.mark.parametrize("seconds", [MIN_DURATION, 17, MAX_DURATION])
def test_cost(seconds: int) -> None:
    cost = FramepackInput("go", URL, duration=seconds).cost_usd
    assert cost == round(COST_PER_SECOND * seconds, 2)
    assert FramepackInput("go", URL, duration=10).cost_usd == 0.3


def test_reprs_do_not_dump_base64(inp: FramepackInput) -> None:
    text = repr(inp.start_image)
    assert "image/jpeg" in text and "320x240" in text and inp.start_image.sha256[:12] in text
    b64_head = inp.start_image.request_value()[:40]
    assert b64_head not in repr(inp) and b64_head not in str(inp)
    assert len(repr(inp)) < 600
    assert repr(normalize_image(URL)) == f"ImageSource(url={URL!r})"


def test_image_source_helpers(inp: FramepackInput) -> None:
    src = inp.start_image
    assert src.filename.endswith(".jpg") and src.filename.startswith(src.sha256[:16])
    assert inp.end_image.filename.endswith(".png")
    assert src.nbytes == len(src.data)
    assert src.request_value("upload") == src.request_value("base64")
    with pytest.raises(InvalidInputError, match="image_encoding"):
        src.request_value("hex")
    with pytest.raises(InvalidInputError, match="URL"):
        normalize_image(URL).to_pil()
    assert set(inp.images()) == {"start_image", "end_image"}


def test_image_source_direct_construction(inp: FramepackInput) -> None:
    src = inp.start_image
    copy = ImageSource(data=src.data, mime=src.mime, width=src.width, height=src.height, sha256=src.sha256)
    assert copy == src
    with pytest.raises(InvalidInputError, match="damaged"):
        ImageSource(data=src.data, mime=src.mime, sha256="0" * 64)
    with pytest.raises(InvalidInputError):
        ImageSource()
    with pytest.raises(InvalidInputError):
        ImageSource(url=URL, data=b"x")


def test_image_source_mime_inferred_when_missing(inp: FramepackInput) -> None:
    assert ImageSource(data=inp.end_image.data).mime == "image/png"
    assert ImageSource(data=inp.start_image.data).mime == "image/jpeg"


def test_pickle_and_deepcopy(inp: FramepackInput) -> None:
    import copy
    import pickle

    assert pickle.loads(pickle.dumps(inp)) == inp
    clone = copy.deepcopy(inp)
    assert clone == inp and clone.start_image.data == inp.start_image.data


def test_errors_are_value_errors() -> None:
    with pytest.raises(ValueError):
        FramepackInput("", URL)


# --------------------------------------------------------------------------- import cost


def test_import_does_not_load_pil_or_numpy() -> None:
    code = (
        "import sys\n"
        "import framepack_widgets.inputs as m\n"
        "import framepack_widgets\n"
        "assert framepack_widgets.FramepackInput is m.FramepackInput\n"
        "m.FramepackInput('go', 'https://example.com/a.png', duration=12).request_input()\n"
        "heavy = sorted(n for n in sys.modules if n.split('.')[0] in ('PIL', 'numpy'))\n"
        "print(heavy)\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("uri", "words"),
    [
        ("data:image/png;base64,@@@@", "not valid base64"),
        ("data:image/png;base64,!!!!!!!!", "not valid base64"),
        ("data:image/png;base64,iVBORw0KGgo=%%%", "not valid base64"),
        ("data:image/png;base64,", "nothing after 'base64,'"),
    ],
)
def test_a_data_uri_with_bad_base64_says_so_not_that_it_is_empty(uri: str, words: str) -> None:
    with pytest.raises(InvalidInputError, match=words) as info:
        FramepackInput("x", uri)
    assert "0 bytes" not in str(info.value) and info.value.__cause__ is None
