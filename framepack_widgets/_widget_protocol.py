"""What the widget's Python half and js/widget.js say to each other, and the small pure
helpers that shape it (run cards, status, word diffs, thumbnails).

Kept apart from widget.py so that the wire format lives in one place and can be tested
without a kernel. Nothing here holds bytes in a trait: bytes travel only as buffers of
custom messages, cut into chunks small enough for Colab (which drops messages over ~1 MB).

Browser -> kernel (``content["type"]``; buffers only where noted):
    hello                                   a view appeared: resend the slot thumbnails
    upload      slot, name, mime, size      buffers[0] = image the browser downscaled (JPEG)
    image_url   slot, url                   an http(s) image URL
    clear_image slot
    generate    request_id, prompt?, negative_prompt?, duration?   duplicates are ignored
    cancel      run_id?
    show        run_id                      make a run the current one (status + player)
    compare     run_ids (2-4, or [] to close)
    video       run_id, nonce               send this run's mp4 to the views
    posters     run_ids                     send small poster JPEGs for history cards
    history     offset                      a page of older run cards
Kernel -> browser:
    image       slot, name, mime  + buffers[0] (thumbnail JPEG) | slot, url | slot, clear
    generated   request_id, run_id          the generate request became a run
    error       message, hint?, request_id?
    video       run_id, nonce, index, count, size, mime  + buffers[0] (one chunk of the mp4)
    video_error run_id, message
    poster      run_id, mime  + buffers[0]
    history_page offset, total, runs
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

__all__ = [
    "CHUNK_BYTES",
    "HISTORY_LIMIT",
    "chunks",
    "stage_of",
    "run_card",
    "run_status",
    "word_diff",
    "comparison",
    "format_balance",
    "thumbnail_jpeg",
    "run_fields",
]

CHUNK_BYTES = 512 * 1024  # per custom message; Colab drops messages over about 1 MB
HISTORY_LIMIT = 50  # run cards kept in the synced trait; older ones are paged on request
LOG_LINES = 4
TEXT_LIMIT = 400  # characters of prompt kept in a card (the full prompt stays in Python)

SLOTS = ("start", "end")
FINAL_STAGES = frozenset(
    {"completed", "failed", "cancelled", "submission_unknown", "timed_out", "error"}
)
IN_FLIGHT_STAGES = frozenset({"queued", "submitting"})

# Hints shown when the run itself carries none: what a person can do next.
DEFAULT_HINTS = {
    "failed": "Try again, perhaps with a different image or prompt; nothing more is charged for a failed task.",
    "cancelled": "Press Generate to start again.",
    "submission_unknown": (
        "The request may or may not have reached PiAPI. Check the task list on the PiAPI "
        "dashboard before generating again, so you are not charged twice."
    ),
    "timed_out": (
        "The task may still finish on the server: it stays in the history and is picked up "
        "again when this widget is opened."
    ),
    "error": "Check the message above; if it is about the network or the API, try again in a minute.",
}

def chunks(data: bytes, size: int = CHUNK_BYTES) -> list[bytes]:
    """Cut bytes into pieces of at most `size` (at least one piece, even for b"")."""
    view = memoryview(data)
    return [bytes(view[i : i + size]) for i in range(0, max(len(data), 1), size)]


def _value(x: Any) -> Any:
    return getattr(x, "value", x)


def stage_of(run: Any) -> str:
    """RunStage (or anything with a value) as the lowercase code the browser understands."""
    stage = getattr(run, "stage", None)
    return str(_value(stage) or "queued").lower()


def _timestamp(value: Any) -> float | None:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.timestamp()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _clip(text: Any, limit: int = TEXT_LIMIT) -> str:
    text = "" if text is None else str(text)
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def wall_seconds(run: Any) -> float | None:
    """The run's wall time: the Run's own figure, else created -> finished (or now)."""
    value = _finite(getattr(run, "wall_time", None))
    if value is not None:
        return max(0.0, value)
    start = _timestamp(getattr(run, "created_at", None))
    if start is None:
        return None
    end = _timestamp(getattr(run, "finished_at", None))
    if end is None:
        end = datetime.now(timezone.utc).timestamp()
    return max(0.0, end - start)


def run_fields(run: Any) -> tuple[str, str, int]:
    """prompt, negative prompt, duration: from a Run's stored params when it has them (no
    image is loaded), else from its input."""
    if hasattr(run, "params") and hasattr(run, "prompt"):
        return str(run.prompt or ""), str(run.negative_prompt or ""), int(run.duration or 0)
    inp = getattr(run, "input", None)
    return (
        str(getattr(inp, "prompt", "") or ""),
        str(getattr(inp, "negative_prompt", "") or ""),
        int(getattr(inp, "duration", 0) or 0),
    )


def image_keys(run: Any) -> tuple[str | None, str | None]:
    """Content hashes of the start and end images (a URL's hash for URL images)."""
    if hasattr(run, "start_image_sha"):
        return run.start_image_sha, getattr(run, "end_image_sha", None)
    inp = getattr(run, "input", None)
    start, end = getattr(inp, "start_image", None), getattr(inp, "end_image", None)
    return getattr(start, "sha256", None), getattr(end, "sha256", None) if end is not None else None


def run_card(run: Any) -> dict:
    """One history entry: small, JSON-safe, no bytes, no key. Excludes fast-changing
    fields (percent, logs) so the history trait changes only when a card would."""
    prompt, negative, duration = run_fields(run)
    stage = stage_of(run)
    cost = _finite(getattr(run, "cost_usd", None))
    if cost is None:
        cost = round(0.03 * duration, 2)
    wall = wall_seconds(run) if stage in FINAL_STAGES else None
    video_path = getattr(run, "video_path", None)
    card = {
        "id": str(run.run_id),
        "seq": getattr(run, "seq", None),
        "task_id": getattr(run, "task_id", None),
        "stage": stage,
        "final": stage in FINAL_STAGES,
        "prompt": _clip(prompt),
        "negative_prompt": _clip(negative, 200),
        "duration": duration,
        "cost": round(cost, 2),
        "wall": None if wall is None else round(wall, 1),
        "created": _timestamp(getattr(run, "created_at", None)),
        "backend": str(getattr(run, "backend", "") or ""),
        "has_video": bool(video_path) and stage == "completed",
        "error": _clip(getattr(run, "error", None) or "", 300) or None,
    }
    sweep = getattr(run, "sweep_id", None)
    if sweep:
        card["sweep_id"] = str(sweep)
    return card


def run_status(run: Any, *, eta: float | None = None, eta_text: str | None = None) -> dict:
    """The live status of the current run. `elapsed` (since Generate) is measured now; the
    browser ticks it forward itself while `running`, so the kernel only sends a status when
    it changes. `eta` is the expected total seconds, for a progress estimate."""
    stage = stage_of(run)
    running = stage not in FINAL_STAGES
    percent = _finite(getattr(run, "percent", None))
    if stage == "completed":
        percent = 100.0
    logs = [_clip(line, 300) for line in tuple(getattr(run, "logs", ()) or ())[-LOG_LINES:]]
    error = getattr(run, "error", None)
    hint = getattr(run, "hint", None) or (DEFAULT_HINTS.get(stage) if stage != "completed" else None)
    start = _timestamp(getattr(run, "created_at", None))
    end = _timestamp(getattr(run, "finished_at", None)) if not running else None
    elapsed = None
    if start is not None:
        elapsed = max(0.0, (end if end is not None else datetime.now(timezone.utc).timestamp()) - start)
    return {
        "run_id": str(run.run_id),
        "stage": stage,
        "api_status": str(_value(getattr(run, "status", None)) or "") or None,
        "percent": percent,
        "percent_is_estimate": percent is None and running,
        "eta": None if eta is None else round(eta, 1),
        "eta_text": eta_text if running else None,
        "elapsed": None if elapsed is None else round(elapsed, 2),
        "running": running,
        "logs": logs,
        "error": _clip(error, 600) if error else None,
        "hint": _clip(hint, 600) if hint else None,
        "has_video": bool(getattr(run, "video_path", None)) and stage == "completed",
        "duration": run_fields(run)[2],
    }


def word_diff(base: str, other: str) -> list[list[str]]:
    """Word-level diff of `other` against `base` as [[op, text], ...], op "=", "+" or "-",
    runs of the same op merged. Matching ignores case and surrounding punctuation
    (export.word_diff), so only real changes are highlighted."""
    from .export import word_diff as words

    symbol = {"same": "=", "added": "+", "removed": "-"}
    ops: list[list[str]] = []
    for op, word in words(base or "", other or ""):
        mark = symbol[op]
        if ops and ops[-1][0] == mark:
            ops[-1][1] += " " + word
        else:
            ops.append([mark, word])
    return ops


def _captions(runs: list[Any]) -> list[str] | None:
    try:
        from .export import labels_for

        return [_clip(c, 200) for c in labels_for(runs)]
    except Exception:  # captions are a nicety; e.g. a stored image went missing
        return None


def comparison(runs: list[Any]) -> dict:
    """What the comparison grid shows: each run against the first, and which fields differ."""
    if not runs:
        return {}
    fields = [run_fields(r) for r in runs]
    images = [image_keys(r) for r in runs]
    differs = {
        "prompt": len({" ".join(f[0].lower().split()) for f in fields}) > 1,
        "negative_prompt": len({f[1] for f in fields}) > 1,
        "duration": len({f[2] for f in fields}) > 1,
        "start_image": len({i[0] for i in images}) > 1,
        "end_image": len({i[1] for i in images}) > 1,
    }
    captions = _captions(runs) or [""] * len(runs)
    base = fields[0][0]
    items = []
    for index, (run, (prompt, negative, duration), (start, end)) in enumerate(zip(runs, fields, images, strict=True)):
        prompt = _clip(prompt, 1000)
        items.append({
            "run_id": str(run.run_id),
            "label": "ABCD"[index],
            "caption": captions[index],
            "stage": stage_of(run),
            "prompt": [["=", prompt]] if index == 0 else word_diff(_clip(base, 1000), prompt),
            "negative_prompt": _clip(negative, 300),
            "duration": duration,
            "start_image": {"sha": start[:16]} if start else None,
            "end_image": {"sha": end[:16]} if end else None,
        })
    return {"run_ids": [i["run_id"] for i in items], "items": items, "differs": differs}


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip().lstrip("$"))
        except ValueError:
            return None
    return None


def format_balance(info: Any) -> str:
    """A short balance text from /account/info, whose fields are unverified: look under
    `data` and at the top level for a USD figure first, then credits/points."""
    if not isinstance(info, Mapping):
        return ""
    places = [info.get("data"), info] if isinstance(info.get("data"), Mapping) else [info]
    for place in places:
        assert isinstance(place, Mapping)
        for key in ("equivalent_in_usd", "balance_usd", "usd", "balance"):
            number = _number(place.get(key))
            if number is not None:
                return f"${number:,.2f}"
        for key in ("credits", "credit", "points", "remaining_credits"):
            number = _number(place.get(key))
            if number is not None:
                return f"{number:,.0f} credits"
    return ""


def thumbnail_jpeg(image: Any, max_side: int = 320, quality: int = 80) -> bytes:
    """A small JPEG of a PIL image (for slot thumbnails, card posters and video posters)."""
    from PIL import Image

    img = image.copy()
    img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    if img.mode not in ("RGB", "L"):
        background = Image.new("RGB", img.size, (255, 255, 255))
        rgba = img.convert("RGBA")
        background.paste(rgba, mask=rgba.getchannel("A"))
        img = background
    out = io.BytesIO()
    img.save(out, "JPEG", quality=quality, optimize=True)
    return out.getvalue()


def first_frame(path: Any) -> Any:
    """The first frame of a video file as a PIL image (for the poster of URL-input runs)."""
    import av

    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            return frame.to_image()
    raise ValueError(f"{path} has no video frames")
