"""Sharing runs: a side-by-side comparison MP4, the "what differs" labels, and a run card.

Everything here works on finished runs' local videos, so it costs nothing and needs no key.
PyAV, PIL and numpy are imported inside the functions that need them: importing this
module stays as cheap as importing the rest of the package.

Run card format (decided here): one ``.zip`` per run, because a single file is what a
browser download, a chat message or a course page can carry. It holds

- ``card.json``: the run's record as `Run.to_dict()` gives it (prompt, negative prompt,
  duration, task id, stage and status history, timings, cost, backend, image hashes),
  without what means nothing elsewhere or must not travel (the local video path, URL query
  strings, which may hold signed tokens; never the API key, never image bytes), plus a few
  facts about the export itself,
- ``poster.jpg``: the middle frame of the video (the start image when there is no video),
- optionally ``video.mp4`` (``include_video=True``).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import uuid
import zipfile
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from .compare import labels_for
from .constants import FPS, MAX_COMPARED, MODEL, TASK_TYPE, VERSION
from .errors import InvalidInputError
from .video import SETTINGS_TAG, combined_settings, read_settings, run_settings, settings_text

log = logging.getLogger(__name__)

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    from PIL import Image

    from .runs import Run

__all__ = [
    "export_comparison",
    "export_run_comparison",
    "run_card",
    "export_run_card",
    "poster_frame",
    "read_run_card",
    "wrap_label",
    "CARD_FORMAT",
    "CARD_VERSION",
]

CARD_FORMAT = "framepack-run-card"
CARD_VERSION = 2  # 2: the run as Run.to_dict() writes it
MAX_TILES = MAX_COMPARED

# --------------------------------------------------------------------------------------
# The comparison video
# --------------------------------------------------------------------------------------


def _even(value: float) -> int:
    return max(2, int(round(value / 2.0)) * 2)


def _font(size: int) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: a fixed bitmap font
        return ImageFont.load_default()


def _text_width(font: Any, text: str) -> float:
    if hasattr(font, "getlength"):
        return float(font.getlength(text))
    box = font.getbbox(text)
    return float(box[2] - box[0])


def _fit(font: Any, text: str, width: float) -> str:
    """`text` cut with an ellipsis so that it fits in `width` pixels."""
    if _text_width(font, text) <= width:
        return text
    ellipsis = "…"
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _text_width(font, text[:mid].rstrip() + ellipsis) <= width:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo].rstrip() + ellipsis


def wrap_label(font: Any, text: str, width: float, max_lines: int) -> list[str]:
    """Greedy word wrap into at most `max_lines` lines; the last one ellipsised if needed."""
    words = " ".join(str(text).split()).split(" ")
    lines: list[str] = []
    current = ""
    i = 0
    while i < len(words):
        word = words[i]
        candidate = f"{current} {word}".strip()
        if _text_width(font, candidate) <= width or not current:
            if not current and _text_width(font, word) > width:
                # One word wider than the tile: cut it (it may continue on the next line).
                if len(lines) == max_lines - 1:
                    break
                lines.append(_fit(font, word, width))
                i += 1
                continue
            current = candidate
            i += 1
        else:
            lines.append(current)
            current = ""
            if len(lines) == max_lines:
                break
    remaining = words[i:]
    if len(lines) < max_lines:
        tail = " ".join(([current] if current else []) + remaining).strip()
        if tail or not lines:
            lines.append(_fit(font, tail, width))
    elif remaining or current:
        lines[-1] = _fit(font, lines[-1] + " " + " ".join(([current] if current else []) + remaining), width)
    return lines[:max_lines]


def _yuv_planes(packed: "np.ndarray", w: int, h: int) -> "tuple[np.ndarray, np.ndarray, np.ndarray]":
    """Views of the Y (h x w), U and V (h/2 x w/2) planes of a packed yuv420p array."""
    flat = packed.reshape(-1)
    y_size, c_size = w * h, (w // 2) * (h // 2)
    return (
        flat[:y_size].reshape(h, w),
        flat[y_size : y_size + c_size].reshape(h // 2, w // 2),
        flat[y_size + c_size : y_size + 2 * c_size].reshape(h // 2, w // 2),
    )


class _Source:
    """One input video, decoded lazily, scaled to its tile, holding its last frame at the end."""

    def __init__(self, path: Path) -> None:
        import av

        if not path.is_file():
            raise InvalidInputError(f"no video at {path}: finish (or re-download) that run first")
        try:
            self.container = av.open(str(path))
        except av.error.FFmpegError as exc:  # type: ignore[attr-defined]
            raise InvalidInputError(f"{path} is not a readable video ({exc})") from exc
        if not self.container.streams.video:
            self.container.close()
            raise InvalidInputError(f"{path} has no video stream")
        self.path = path
        self.stream = self.container.streams.video[0]
        self.stream.thread_type = "AUTO"
        self.width = int(self.stream.codec_context.width or 0)
        self.height = int(self.stream.codec_context.height or 0)
        rate = self.stream.average_rate or self.stream.guessed_rate
        self.frame_seconds = 1.0 / float(rate) if rate else 1.0 / 30.0
        self.expected_seconds = self._metadata_seconds()
        self._frames = self.container.decode(self.stream)
        self._t0: float | None = None
        self._index = 0
        self._next: Any = None
        self._next_time = 0.0
        self.exhausted = False
        self.current: "tuple[np.ndarray, np.ndarray, np.ndarray] | None" = None  # Y, U, V planes
        self.changed = False
        self.end_time = 0.0
        self.size: tuple[int, int] = (self.width, self.height)

    def _metadata_seconds(self) -> float | None:
        if self.stream.frames:
            return self.stream.frames * self.frame_seconds
        if self.stream.duration is not None and self.stream.time_base is not None:
            return float(self.stream.duration * self.stream.time_base)
        if self.container.duration:
            return self.container.duration / 1_000_000
        return None

    def _peek(self) -> None:
        if self._next is not None or self.exhausted:
            return
        try:
            frame = next(self._frames)
        except StopIteration:
            self.exhausted = True
            return
        except Exception as exc:  # a truncated file: keep what decoded so far
            if self.current is None and self._index == 0:
                raise InvalidInputError(f"{self.path} could not be decoded ({exc})") from exc
            self.exhausted = True
            return
        t = frame.time if frame.time is not None else self._index * self.frame_seconds
        if self._t0 is None:
            self._t0 = t
        self._next = frame
        self._next_time = max(0.0, t - self._t0)
        self._index += 1

    def advance_to(self, t: float) -> None:
        """Make `current` the last frame shown at or before time `t` (the first one at t=0)."""
        self._peek()
        shown = None
        while self._next is not None and (self._next_time <= t or (self.current is None and shown is None)):
            shown = self._next
            self.end_time = self._next_time + self.frame_seconds
            self._next = None
            self._peek()
        if shown is not None:
            # Only the frame that will be shown is converted: planar YUV 4:2:0 at the tile's size
            # (a no-op for the usual yuv420p input that needs no scaling).
            w, h = self.size
            self.current = _yuv_planes(shown.reformat(width=w, height=h, format="yuv420p").to_ndarray(), w, h)
            self.changed = True
        if self.current is None:
            raise InvalidInputError(f"{self.path} has no video frames")

    @property
    def done(self) -> bool:
        return self.exhausted and self._next is None

    def close(self) -> None:
        self.container.close()


def export_comparison(
    videos: Sequence[str | os.PathLike[str]],
    labels: Sequence[str] | None,
    out_path: str | os.PathLike[str],
    *,
    fps: int = 30,
    height: int = 360,
    max_width: int = 1920,
    columns: int | None = None,
    crf: int = 23,
    on_progress: Callable[[float], None] | None = None,
    settings: Mapping[str, Any] | None = None,
) -> Path:
    """Put 1–4 videos side by side (2x2 for four) in one browser-playable MP4.

    Each tile gets a caption band above it with its label (PIL's default font, wrapped
    onto at most two lines and ellipsised). Tiles share one size: the video is scaled to
    at most `height` pixels tall (never upscaled past the tallest input), letterboxed,
    and the whole frame is shrunk to fit `max_width`. The result is H.264, yuv420p, `fps`
    frames per second, with the index at the front (+faststart) so browsers can start
    playing at once. It lasts as long as the longest input; shorter ones hold their last
    frame. Written to a temporary file beside `out_path` and renamed into place, so a
    crash never leaves a half-written file under the final name. Returns the path.

    `settings` go into the MP4's comment tag (`framepack_widgets.video`); by default the
    videos' own settings, combined, when every one carries them.
    """
    import av
    from PIL import Image, ImageDraw

    paths = [Path(v) for v in videos]
    if not 1 <= len(paths) <= MAX_TILES:
        raise InvalidInputError(f"a comparison takes 1 to {MAX_TILES} videos, got {len(paths)}: pick fewer runs")
    if labels is None:
        labels = [str(i + 1) for i in range(len(paths))]
    labels = [str(label) for label in labels]
    if len(labels) != len(paths):
        raise InvalidInputError(f"got {len(paths)} videos but {len(labels)} labels: give one label per video")
    if fps <= 0 or height < 16 or max_width < 32:
        raise InvalidInputError("fps must be positive, height at least 16 and max_width at least 32 pixels")
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    comment = settings_text(settings) if settings is not None else _shown_settings(paths, labels)

    n = len(paths)
    cols = columns or (2 if n == 4 else n)
    cols = max(1, min(cols, n))
    rows = math.ceil(n / cols)

    sources: list[_Source] = []
    tmp_name: str | None = None
    try:
        for p in paths:
            sources.append(_Source(p))
        # Tile geometry: a common video area, every input letterboxed into it.
        tallest = max(s.height for s in sources if s.height) if any(s.height for s in sources) else height
        video_h = _even(min(height, tallest))
        aspects = [(s.width / s.height) if s.width and s.height else 16 / 9 for s in sources]
        gap = 2
        room = max_width - (cols - 1) * gap  # for the tiles themselves
        tile_w = _even(max(video_h * a for a in aspects))
        if cols * tile_w > room:
            video_h = _even(video_h * room / (cols * tile_w))
            tile_w = _even(max(video_h * a for a in aspects))
            while cols * tile_w > room and tile_w > 2:
                tile_w -= 2
        for s, a in zip(sources, aspects):
            w = min(tile_w, _even(video_h * a))
            h = min(video_h, _even(w / a))
            s.size = (w, h)

        font_size = int(min(22, max(11, tile_w / 30)))
        font = _font(font_size)
        ascent, descent = font.getmetrics() if hasattr(font, "getmetrics") else (font_size, 2)
        line_h = ascent + descent + 2
        pad = max(4, font_size // 3)
        wrapped = [wrap_label(font, label, tile_w - 2 * pad, 2) for label in labels]
        band_h = _even(max(len(w) for w in wrapped) * line_h + 2 * pad)
        tile_h = band_h + video_h
        width = _even(cols * tile_w + (cols - 1) * gap)
        total_h = _even(rows * tile_h + (rows - 1) * gap)

        base = Image.new("RGB", (width, total_h), (24, 24, 24))
        draw = ImageDraw.Draw(base)
        offsets: list[tuple[int, int]] = []
        for k, lines in enumerate(wrapped):
            x0 = (k % cols) * (tile_w + gap)
            y0 = (k // cols) * (tile_h + gap)
            draw.rectangle([x0, y0, x0 + tile_w - 1, y0 + band_h - 1], fill=(40, 40, 46))
            draw.rectangle([x0, y0 + band_h, x0 + tile_w - 1, y0 + tile_h - 1], fill=(0, 0, 0))
            for li, line in enumerate(lines):
                draw.text((x0 + pad, y0 + pad + li * line_h), line, fill=(240, 240, 240), font=font)
            w, h = sources[k].size
            # Even offsets, so the half-resolution chroma planes line up.
            offsets.append((x0 + (tile_w - w) // 4 * 2, y0 + band_h + (video_h - h) // 4 * 2))
        # Compose straight in yuv420p: the caption bands are converted once, decoded frames
        # are pasted plane by plane (no RGB round trip per frame), only when they change.
        canvas = av.VideoFrame.from_image(base).reformat(format="yuv420p").to_ndarray().copy()
        planes = _yuv_planes(canvas, width, total_h)

        tmp_name = _temp_beside(out)
        expected = max((s.expected_seconds or 0.0) for s in sources) or None
        with av.open(tmp_name, mode="w", format="mp4", container_options={"movflags": "+faststart"}) as container:
            if comment is not None:
                container.metadata[SETTINGS_TAG] = comment
            stream = container.add_stream("libx264", rate=fps)
            stream.width = width
            stream.height = total_h
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": str(crf), "preset": "veryfast"}
            stream.thread_type = "AUTO"  # x264's own threads: several times faster on multi-core
            i = 0
            half = 0.5 / fps
            while True:
                t = i / fps
                for s in sources:
                    s.advance_to(t + half)
                if all(s.done for s in sources):
                    longest = max(s.end_time for s in sources)
                    if i >= max(1, round(longest * fps - 1e-6)):
                        break
                for s, (x, y) in zip(sources, offsets):
                    if not s.changed or s.current is None:
                        continue
                    s.changed = False
                    for plane, tile, sub in zip(planes, s.current, (1, 2, 2)):
                        th, tw = tile.shape
                        plane[y // sub : y // sub + th, x // sub : x // sub + tw] = tile
                vf = av.VideoFrame.from_ndarray(canvas, format="yuv420p")
                vf.pts = i
                for packet in stream.encode(vf):
                    container.mux(packet)
                i += 1
                if on_progress is not None and expected and i % fps == 0:
                    on_progress(min(0.99, i / (expected * fps)))
            for packet in stream.encode(None):
                container.mux(packet)
        os.replace(tmp_name, out)
        tmp_name = None
        if on_progress is not None:
            on_progress(1.0)
        return out
    finally:
        for s in sources:
            s.close()
        if tmp_name is not None:
            try:
                os.unlink(tmp_name)
            except OSError:
                pass


def export_run_comparison(runs: Sequence["Run"], out_path: str | os.PathLike[str], **kwargs: Any) -> Path:
    """`export_comparison` for Run objects: their local videos, labelled by `labels_for`."""
    missing = [r.run_id for r in runs if r.video_path is None]
    if missing:
        raise InvalidInputError(
            f"run(s) {', '.join(map(str, missing))} have no local video yet: wait for them to finish"
        )
    labels = labels_for(runs)
    kwargs.setdefault("settings", combined_settings("comparison", [run_settings(r) for r in runs], labels=labels))
    return export_comparison([r.video_path for r in runs], labels, out_path, **kwargs)


def _shown_settings(paths: Sequence[Path], labels: Sequence[str]) -> str | None:
    """A comparison's settings from its videos' own, when every one carries them (None when
    one does not, or when together they are more than a tag holds)."""
    parts = [p for p in map(read_settings, paths) if p is not None]
    if len(parts) != len(paths):
        return None
    try:
        return settings_text(combined_settings("comparison", parts, labels=list(labels)))
    except ValueError:
        return None


# --------------------------------------------------------------------------------------
# Run card
# --------------------------------------------------------------------------------------


def poster_frame(video_path: str | os.PathLike[str], *, where: float = 0.5) -> "Image.Image":
    """A frame `where` of the way through the video (0 = first frame), as a PIL RGB image."""
    import av

    with av.open(str(video_path)) as container:
        stream = container.streams.video[0]
        total = stream.frames or 0
        if not total:
            total = sum(1 for _ in container.decode(stream))
            container.seek(0)
        target = max(0, min(total - 1, int(total * where))) if total else 0
        chosen = None
        for index, frame in enumerate(container.decode(stream)):
            chosen = frame
            if index >= target:
                break
        if chosen is None:
            raise InvalidInputError(f"{video_path} has no video frames")
        return chosen.to_image().convert("RGB")


def _without_query(url: str | None) -> str | None:
    """The address without its query string (signed URLs carry tokens there)."""
    if not url:
        return url
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def _shareable_image(info: dict[str, Any] | None) -> dict[str, Any] | None:
    if not info or not info.get("url"):
        return info
    clean = dict(info, url=_without_query(info["url"]))
    if clean["url"] != info["url"]:
        clean["url_query_removed"] = True
    return clean


def _video_facts(path: Path) -> dict[str, Any]:
    import av

    facts: dict[str, Any] = {"file": path.name, "bytes": path.stat().st_size}
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            rate = stream.average_rate
            facts.update(
                codec=stream.codec_context.name,
                width=stream.codec_context.width,
                height=stream.codec_context.height,
                fps=float(rate) if rate else None,
                frames=stream.frames or None,
                seconds=round(container.duration / 1_000_000, 3) if container.duration else None,
            )
    except Exception:  # noqa: BLE001 - facts are a courtesy; the card is still useful
        pass
    return facts


def run_card(run: "Run") -> dict[str, Any]:
    """The JSON-safe card of one run for sharing: its record and what the export adds.
    No key, no image or video bytes, no local path, no URL query strings."""
    record = run.to_dict()
    record.pop("video_path")
    record["notebook"] = PurePath(record["notebook"]).name if record["notebook"] else None  # no folder
    record["video_url"] = _without_query(record["video_url"])
    params = record["params"]
    for key in ("start_image", "end_image"):
        params[key] = _shareable_image(params.get(key))
    card: dict[str, Any] = {
        "format": CARD_FORMAT,
        "version": CARD_VERSION,
        "exported_at": datetime.now(timezone.utc).isoformat(),
        "framepack_widgets_version": VERSION,
        "model": MODEL,
        "task_type": TASK_TYPE,
        "fps": FPS,
        "synthetic": run.simulated,
        "cost_note": (
            "what PiAPI would charge; nothing was charged (offline simulator)"
            if run.simulated
            else "PiAPI's list price for this duration"
        ),
        **record,
        "video": _video_facts(run.video_path) if run.video_path and run.video_path.is_file() else None,
    }
    if run.simulated:
        card["note"] = "Made by the offline simulator: the video is synthetic, not FramePack's output."
    return _scrub(card)


def _scrub(value: Any) -> Any:
    """Belt and braces: blank any occurrence of the configured API key."""
    secrets = [s for s in (os.environ.get("PIAPI_API_KEY"),) if s and len(s) >= 6]
    if not secrets:
        return value

    def clean(v: Any) -> Any:
        if isinstance(v, str):
            for secret in secrets:
                v = v.replace(secret, "[redacted]")
            return v
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v

    return clean(value)


def export_run_card(
    run: "Run",
    folder: str | os.PathLike[str],
    *,
    include_video: bool = False,
    poster_where: float = 0.5,
) -> Path:
    """Write ``<folder>/framepack-run-<id>.zip`` (card.json + poster.jpg [+ video.mp4]).

    The poster is the frame `poster_where` of the way through the video (middle by
    default: the first frame is just the start image), or the start image when the run
    has no local video. Written to a temporary file and renamed. Returns the zip's path.
    """
    folder_path = Path(folder)
    folder_path.mkdir(parents=True, exist_ok=True)
    card = run_card(run)
    run_id = str(card.get("run_id") or card.get("task_id") or "run")
    safe_id = re.sub(r"[^A-Za-z0-9_.-]+", "-", run_id)[:40].strip("-.") or "run"
    out = folder_path / f"framepack-run-{safe_id}.zip"

    video = run.video_path if run.video_path is not None and run.video_path.is_file() else None
    poster = None
    poster_source = None
    if video is not None:
        poster = poster_frame(video, where=poster_where)
        poster_source = "video"
    else:
        try:
            start = run.input.start_image
            if start.data:
                poster = start.to_pil().convert("RGB")
                poster_source = "start image"
        except Exception:  # noqa: BLE001 - e.g. a stored image went missing: a card without poster
            log.warning("no poster for run %s", run.run_id, exc_info=True)
    card["poster"] = "poster.jpg" if poster is not None else None
    card["poster_source"] = poster_source
    if include_video and video is not None:
        card["video_file"] = "video.mp4"

    tmp_name = _temp_beside(out)
    try:
        with zipfile.ZipFile(tmp_name, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("card.json", json.dumps(card, indent=2, ensure_ascii=False) + "\n")
            if poster is not None:
                import io

                buf = io.BytesIO()
                poster.save(buf, format="JPEG", quality=88)
                zf.writestr(zipfile.ZipInfo("poster.jpg", _zip_time()), buf.getvalue(), zipfile.ZIP_STORED)
            if include_video and video is not None:
                zf.write(video, "video.mp4", compress_type=zipfile.ZIP_STORED)
        os.replace(tmp_name, out)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except OSError:
            pass
        raise
    return out


def _temp_beside(out: Path) -> str:
    """A fresh hidden name in the same folder (so the final rename is atomic), normal permissions."""
    return str(out.with_name(f".{out.name}.{uuid.uuid4().hex[:10]}.part"))


def _zip_time() -> tuple[int, int, int, int, int, int]:
    now = datetime.now()
    return (max(1980, now.year), now.month, now.day, now.hour, now.minute, now.second)


def read_run_card(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The card.json of an exported run card (for tests and for re-importing)."""
    with zipfile.ZipFile(path) as zf:
        return json.loads(zf.read("card.json"))
