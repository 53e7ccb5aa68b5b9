"""Synthetic FramePack video: a real H.264 MP4 made from the start (and end) image.

The clip starts exactly on the start image, ends exactly on the end image when one is
given (cross-fading through the clip), and moves the "camera" as the prompt asks
("zoom in", "zoom out", "pan left/right", "tilt up/down"; a gentle drift otherwise).
It is what the offline simulator serves, so it has to be cheap: every frame is two
box-resizes from pre-padded layers, one blend and one small label paste.

PIL, numpy and av are imported inside functions only: importing the simulator package
must stay light.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..constants import FPS
from ..errors import FramepackError, InvalidInputError

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

__all__ = [
    "FPS",
    "LONG_SIDE",
    "RENDER_VERSION",
    "RenderCancelled",
    "RenderResult",
    "detect_motion",
    "placeholder_png",
    "probe_image",
    "render_key",
    "output_size",
    "render_video",
]

LONG_SIDE = 640
#: Renders this many pixels on the long side instead (smaller is faster: tests, slow machines).
LONG_SIDE_ENV = "FRAMEPACK_SIM_LONG_SIDE"


def resolve_long_side(long_side: int | None) -> int:
    """`long_side`, else FRAMEPACK_SIM_LONG_SIDE, else LONG_SIDE; ValueError below 16."""
    text = str(long_side) if long_side is not None else os.environ.get(LONG_SIDE_ENV, "").strip()
    if not text:
        return LONG_SIDE
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 16:
        where = f"{LONG_SIDE_ENV}={text!r}" if long_side is None else f"long_side={long_side!r}"
        raise InvalidInputError(f"{where}: the long side must be a whole number of pixels, at least 16")
    return value
RENDER_VERSION = "2"  # bump when the picture changes, so cached renders are not reused

_MIN_SHORT_SIDE = 128
_SUPERSAMPLE = 1.25  # layers are kept a little larger than the output so zooms stay crisp
_MARGIN = 0.35  # mirrored padding around each layer, as a fraction of its size
_LABEL = "SIMULATED"

# Camera moves over the whole clip: zoom factor gained, and shift as a fraction of the frame.
# A pan pushes in by _PAN_ZOOM and slides the view to the image's edge, so a pure pan or
# tilt never shows anything outside the picture; zooming out does (a soft, dimmed mirror).
_ZOOM = 0.35
_PAN_ZOOM = 0.3
_PAN = (1.0 - 1.0 / (1.0 + _PAN_ZOOM)) / 2.0


class RenderCancelled(FramepackError):
    """The simulator stopped while this render was running."""


@dataclass(frozen=True)
class RenderResult:
    path: Path
    width: int
    height: int
    frames: int
    seconds: float  # wall time spent rendering


# --------------------------------------------------------------------------- prompts

_MOTION_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern))
    for name, pattern in (
        ("zoom_in", r"\b(?:zoom(?:s|ed|ing)?|push(?:es|ed|ing)?|dolly|dollies|dollying)\s+in(?:to|wards?)?\b"),
        ("zoom_out", r"\b(?:zoom(?:s|ed|ing)?|pull(?:s|ed|ing)?|dolly|dollies|dollying)\s+(?:out|back)\b"),
        ("pan_left", r"\bpan(?:s|ned|ning)?\s+(?:to\s+the\s+)?left\b"),
        ("pan_right", r"\bpan(?:s|ned|ning)?\s+(?:to\s+the\s+)?right\b"),
        ("tilt_up", r"\btilt(?:s|ed|ing)?\s+up(?:wards?)?\b"),
        ("tilt_down", r"\btilt(?:s|ed|ing)?\s+down(?:wards?)?\b"),
    )
)


def detect_motion(prompt: str) -> str:
    """Camera motion named by the prompt: "zoom_in", "pan_left+zoom_in", ... or "drift"."""
    text = " ".join(str(prompt or "").lower().split())
    hits: dict[str, int] = {}
    for name, pattern in _MOTION_PATTERNS:
        match = pattern.search(text)
        if match:
            hits[name] = match.start()
    # Opposite moves cannot both happen: keep the one the prompt names first.
    for a, b in (("zoom_in", "zoom_out"), ("pan_left", "pan_right"), ("tilt_up", "tilt_down")):
        if a in hits and b in hits:
            del hits[b if hits[a] <= hits[b] else a]
    return "+".join(sorted(hits)) if hits else "drift"


def _camera(motion: str, e: float) -> tuple[float, float, float]:
    """View (centre x, centre y, size) in start-image units at eased time e in [0, 1]."""
    parts = set(motion.split("+"))
    zoom = 1.0
    cx = cy = 0.5
    if parts == {"drift"}:
        return 0.5 + 0.025 * e, 0.5 - 0.012 * e, 1.0 / (1.0 + 0.06 * e)
    if "zoom_in" in parts:
        zoom *= 1.0 + _ZOOM * e
    if "zoom_out" in parts:
        zoom /= 1.0 + _ZOOM * e
    if parts & {"pan_left", "pan_right", "tilt_up", "tilt_down"}:
        zoom *= 1.0 + _PAN_ZOOM * e
    if "pan_left" in parts:
        cx -= _PAN * e
    if "pan_right" in parts:
        cx += _PAN * e
    if "tilt_up" in parts:
        cy -= _PAN * e
    if "tilt_down" in parts:
        cy += _PAN * e
    return cx, cy, 1.0 / zoom


def _smoothstep(t: float) -> float:
    t = min(1.0, max(0.0, t))
    return t * t * (3.0 - 2.0 * t)


# --------------------------------------------------------------------------- images


def probe_image(data: bytes) -> tuple[int, int]:
    """(width, height) of encoded image bytes; ValueError when they are not an image."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"not a readable image ({exc.__class__.__name__})") from None
    if width < 1 or height < 1:
        raise ValueError("the image has no pixels")
    return width, height


_placeholder_lock = threading.Lock()
_placeholder_cache: dict[str, bytes] = {}


def placeholder_png(text: str) -> bytes:
    """A calm, deterministic stand-in picture for an image the simulator cannot fetch."""
    with _placeholder_lock:
        cached = _placeholder_cache.get(text)
    if cached is not None:
        return cached
    import numpy as np
    from PIL import Image, ImageDraw

    digest = hashlib.sha256(text.encode("utf-8")).digest()
    w, h = 640, 480
    c1 = np.array(list(digest[0:3]), dtype=np.float32)
    c2 = np.array(list(digest[3:6]), dtype=np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    mix = ((xx / w + yy / h) / 2.0)[..., None]
    pixels = (c1 * (1 - mix) + c2 * mix) * 0.6 + 40
    # A few soft discs give the camera motion something to show.
    for k in range(4):
        px = digest[6 + k] / 255 * w
        py = digest[10 + k] / 255 * h
        radius = 40 + digest[14 + k] / 255 * 90
        inside = ((xx - px) ** 2 + (yy - py) ** 2) < radius**2
        pixels[inside] = pixels[inside] * 0.5 + np.array(list(digest[18 + 3 * k : 21 + 3 * k]), np.float32) * 0.5
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    font = _font(20)
    lines = ["image not available offline", "(simulator placeholder)"]
    y = h // 2 - 24
    for line in lines:
        box = draw.textbbox((0, 0), line, font=font)
        draw.text(((w - (box[2] - box[0])) // 2, y), line, fill=(255, 255, 255), font=font)
        y += 28
    out = io.BytesIO()
    image.save(out, "PNG")
    data = out.getvalue()
    with _placeholder_lock:
        _placeholder_cache[text] = data
    return data


def _font(size: int) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: bitmap font, fixed size
        return ImageFont.load_default()


def _decode(data: bytes) -> "Image.Image":
    from PIL import Image, ImageOps

    with Image.open(io.BytesIO(data)) as opened:
        image = ImageOps.exif_transpose(opened)
        if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
            rgba = image.convert("RGBA")
            flat = Image.new("RGB", rgba.size, (255, 255, 255))
            flat.paste(rgba, mask=rgba.getchannel("A"))
            return flat
        return image.convert("RGB")


def output_size(width: int, height: int, long_side: int = LONG_SIDE) -> tuple[int, int]:
    """Even (width, height) with the long side `long_side` and the image's aspect ratio."""
    long_side = max(2, long_side - long_side % 2)
    short_min = min(_MIN_SHORT_SIDE, long_side)
    if width >= height:
        short = max(short_min, round(long_side * height / width / 2) * 2)
        return long_side, short
    short = max(short_min, round(long_side * width / height / 2) * 2)
    return short, long_side


class _Layer:
    """An image fitted to the output aspect, supersampled, with mirrored borders."""

    def __init__(self, image: "Image.Image", out_w: int, out_h: int) -> None:
        import numpy as np
        from PIL import Image, ImageFilter, ImageOps

        lw, lh = round(out_w * _SUPERSAMPLE), round(out_h * _SUPERSAMPLE)
        fitted = ImageOps.fit(image, (lw, lh), Image.Resampling.LANCZOS)
        mx, my = round(lw * _MARGIN), round(lh * _MARGIN)
        padded = np.pad(np.asarray(fitted), ((my, my), (mx, mx), (0, 0)), mode="symmetric")
        # Outside the picture (only seen when zooming out): a blurred, dimmed mirror.
        border = Image.fromarray(padded, "RGB").reduce(4).filter(ImageFilter.GaussianBlur(3))
        border = Image.eval(border.resize((padded.shape[1], padded.shape[0])), lambda v: int(v * 0.75))
        border.paste(fitted, (mx, my))
        self.image = border
        self.w, self.h = lw, lh
        self.mx, self.my = mx, my
        self.out = (out_w, out_h)

    def view(self, cx: float, cy: float, size: float) -> "Image.Image":
        """The output-sized picture of the view centred at (cx, cy), `size` of the layer wide."""
        from PIL import Image

        bw, bh = size * self.w, size * self.h
        full_w, full_h = self.image.size
        scale = min(1.0, full_w / bw, full_h / bh)  # never ask for more than the padded layer
        bw, bh = bw * scale, bh * scale
        x0 = self.mx + cx * self.w - bw / 2
        y0 = self.my + cy * self.h - bh / 2
        x0 = min(max(0.0, x0), full_w - bw)
        y0 = min(max(0.0, y0), full_h - bh)
        return self.image.resize(self.out, Image.Resampling.BILINEAR, box=(x0, y0, x0 + bw, y0 + bh))


def _label(width: int) -> tuple["Image.Image", "Image.Image"]:
    """A small "SIMULATED" tag (RGB picture and alpha mask) for the bottom-right corner."""
    from PIL import Image, ImageDraw

    font = _font(max(10, width // 48))
    probe = ImageDraw.Draw(Image.new("L", (1, 1)))
    left, top, right, bottom = probe.textbbox((0, 0), _LABEL, font=font)
    pad = 4
    size = (right - left + 2 * pad, bottom - top + 2 * pad)
    tag = Image.new("RGBA", size, (0, 0, 0, 110))
    ImageDraw.Draw(tag).text((pad - left, pad - top), _LABEL, font=font, fill=(255, 255, 255, 200))
    return tag.convert("RGB"), tag.getchannel("A")


# --------------------------------------------------------------------------- render


def render_key(
    start_sha: str, end_sha: str | None, motion: str, duration: int, long_side: int = LONG_SIDE, label: bool = True
) -> str:
    """Content key of a render: identical requests share one file."""
    parts = [RENDER_VERSION, start_sha, end_sha or "-", motion, str(duration), str(long_side), str(int(label))]
    text = "|".join(parts)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def render_video(
    path: str | os.PathLike[str],
    start: bytes,
    end: bytes | None,
    *,
    motion: str,
    duration: int,
    long_side: int = LONG_SIDE,
    label: bool = True,
    should_stop: Callable[[], bool] | None = None,
) -> RenderResult:
    """Write an H.264 MP4 of exactly `duration * FPS` frames to `path` (atomically)."""
    import time

    import av
    from PIL import Image

    began = time.perf_counter()
    start_image = _decode(start)
    out_w, out_h = output_size(*start_image.size, long_side=long_side)
    start_layer = _Layer(start_image, out_w, out_h)
    end_layer = _Layer(_decode(end), out_w, out_h) if end is not None else None
    tag = _label(out_w) if label else None
    margin = max(4, out_w // 80)

    frames = int(duration) * FPS
    last = max(1, frames - 1)
    end_cx, end_cy, end_size = _camera(motion, 1.0)

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=target.stem + ".", suffix=".part.mp4", dir=target.parent)
    os.close(fd)
    try:
        with av.open(tmp_name, mode="w", format="mp4", options={"movflags": "+faststart"}) as container:
            stream = container.add_stream("libx264", rate=FPS)
            stream.width, stream.height = out_w, out_h
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": "23", "preset": "superfast", "g": str(2 * FPS)}
            stream.codec_context.time_base = Fraction(1, FPS)
            for index in range(frames):
                if should_stop is not None and index % 15 == 0 and should_stop():
                    raise RenderCancelled("the simulator stopped")
                t = index / last
                e = _smoothstep(t)
                cx, cy, size = _camera(motion, e)
                picture = start_layer.view(cx, cy, size)
                if end_layer is not None:
                    alpha = _smoothstep(t)
                    if alpha > 0.0:
                        # The end image is what the camera sees at the end of its move.
                        view = end_layer.view(
                            (cx - end_cx) / end_size + 0.5,
                            (cy - end_cy) / end_size + 0.5,
                            size / end_size,
                        )
                        picture = view if alpha >= 1.0 else Image.blend(picture, view, alpha)
                if tag is not None:
                    rgb, mask = tag
                    picture.paste(rgb, (out_w - rgb.width - margin, out_h - rgb.height - margin), mask)
                frame = av.VideoFrame.from_image(picture)
                frame.pts = index
                frame.time_base = Fraction(1, FPS)
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode(None):
                container.mux(packet)
        os.replace(tmp_name, target)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except OSError:
            pass
        raise
    return RenderResult(target, out_w, out_h, frames, time.perf_counter() - began)
