"""Run cards: one run, shared as a file, and the poster frame a card (or a gallery) shows.

Format (decided here): one ``.zip`` per run, because a single file is what a browser
download, a chat message or a course page can carry. It holds

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
import os
import re
import uuid
import zipfile
from datetime import datetime, timezone
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from ..constants import FPS, MODEL, TASK_TYPE, VERSION
from ..errors import InvalidInputError

log = logging.getLogger(__name__)

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

    from ..runs import Run

__all__ = ["CARD_FORMAT", "CARD_VERSION", "export_run_card", "poster_frame", "read_run_card", "run_card"]

CARD_FORMAT = "framepack-run-card"
CARD_VERSION = 2  # 2: the run as Run.to_dict() writes it

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
