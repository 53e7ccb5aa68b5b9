"""What the kernel tells the browser about runs, and the wire format of their messages.

Cards, the live status and the comparison grid are cut from `Run.to_dict()` (the run's one
serialisation), small and JSON-safe: they live in synced traits, so they end up in the
saved notebook. Bytes never go in a trait: they travel as buffers of custom messages, cut
into chunks small enough for every frontend (Colab drops messages over about 1 MB).

Browser -> kernel (``content["type"]``; buffers only where noted):
    hello                                   a view appeared: answer, resend the slot thumbnails
    upload      slot, name, mime, size, upload_id, index, count, total, batch? ([id, index, count])
                                            buffers[0] = one chunk of the image the browser
                                            downscaled (JPEG); the kernel joins the chunks.
                                            With batch: one of several images dropped at once
                                            (an image sweep, planned once all are in); an MP4
                                            (mime video/*) restores the settings it carries
    image_url   slot, url                   an http(s) image URL
    clear_image slot
    image_back  slot                        "back to ...": the start image before Extend or a restore
    generate    request_id, prompt?, negative_prompt?, duration?   duplicates are ignored
    cancel      run_id?
    show        run_id                      make a run the current one (status + player)
    compare     run_ids (2-4, or [] to close)
    video       run_id, nonce               send this run's mp4 to the views
    posters     run_ids                     send small poster JPEGs for history cards
    history     offset | before             a page of older run cards
    sweep       sweep_id, action            "confirm" | "cancel" the planned sweep
    export      what ("comparison" | "card"), run_id?
    queued      action ("send" | "discard")  runs a stopped kernel left stored, never sent
    share       run_ids?                    write a gallery of these runs (default: selected or all)
    extend      run_id                      fill the inputs to continue this run from its last frame
    timeline    action: "start" (request_id, segments [{prompt, duration}], shown_cost, timeline_id?)
                | "cancel" | "retry" (segment), timeline_id      a repeated start is ignored
    chain       run_id                      show this run's chain in the timeline panel, as one video
    class_share run_id, shared              in a class: put the run in the class gallery (or take it out)
Kernel -> browser:
    hello                                   the answer: a view that hears none in 5 s says
                                            the kernel is busy or gone (a reopened notebook)
    image       slot, name, mime  + buffers[0] (thumbnail JPEG) | slot, url | slot, clear
    generated   request_id, run_id          the generate request became a run
    error       message, hint?, request_id?, slot?
    video       run_id, nonce, index, count, size, mime  + buffers[0] (one chunk of the mp4)
    video_error run_id, message
    poster      run_id, mime  + buffers[0]
    history_page total, runs
    exported    what, name | error          an export ("comparison" | "card" | "gallery") was written
                                            (its file name, no folder) or failed; its download follows
    download    key, name, index, count, size, mime  + buffers[0] (a file for the browser to save)
    extended    run_id                      the inputs now continue this run (start image = its last frame)
    timeline_started request_id, timeline_id
A stitched timeline (or chain) video is asked for and sent like a run's, its id in place of a run id.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..compare import diff_ops, differences, image_names, labels_for
from ..constants import MESSAGE_CHUNK_BYTES, cost_usd
from ..errors import InvalidInputError
from ..runs import Run, RunStage

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

    from ..timeline import Timeline

__all__ = [
    "CHUNK_BYTES",
    "HISTORY_LIMIT",
    "SLOTS",
    "chain_fields",
    "chunks",
    "comparison",
    "first_frame",
    "format_balance",
    "run_card",
    "run_status",
    "thumbnail_jpeg",
    "timeline_info",
]

CHUNK_BYTES = MESSAGE_CHUNK_BYTES  # per custom message; Colab drops messages over about 1 MB
HISTORY_LIMIT = 50  # run cards kept in the synced trait; older ones are paged on request
LOG_LINES = 4
TEXT_LIMIT = 400  # characters of prompt kept in a card (the full prompt stays in Python)
SLOTS = ("start", "end")

# Hints shown when the run itself carries none: what a person can do next.
DEFAULT_HINTS = {
    RunStage.FAILED: "Try again, perhaps with a different image or prompt; nothing more is charged for a failed task.",
    RunStage.CANCELLED: "Press Generate to start again.",
    RunStage.SUBMISSION_UNKNOWN: (
        "The request may or may not have reached PiAPI. Check the task list on the PiAPI "
        "dashboard before generating again, so you are not charged twice."
    ),
    RunStage.TIMED_OUT: (
        "The task may still finish on the server: it stays in the history and is picked up "
        "again when this widget is opened."
    ),
    RunStage.ERROR: "Check the message above; if it is about the network or the API, try again in a minute.",
}


def chunks(data: bytes, size: int = CHUNK_BYTES) -> list[bytes]:
    """Cut bytes into pieces of at most `size` (at least one piece, even for b"")."""
    view = memoryview(data)
    return [bytes(view[i : i + size]) for i in range(0, max(len(data), 1), size)]


def _clip(text: str | None, limit: int = TEXT_LIMIT) -> str:
    text = text or ""
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _epoch(value: str | None) -> float | None:
    return None if value is None else datetime.fromisoformat(value).timestamp()


def _has_video(run: Run) -> bool:
    return run.stage is RunStage.COMPLETED and run.video_path is not None


def run_card(run: Run) -> dict[str, Any]:
    """One history entry. Excludes fast-changing fields (percent, logs) so the history
    trait changes only when a card would."""
    record = run.to_dict(history=False)
    final = run.stage.is_final
    wall = record["wall_time"] if final else None
    card = {
        "id": record["run_id"],
        "seq": record["seq"],
        "task_id": record["task_id"],
        "stage": record["stage"],
        "final": final,
        "prompt": _clip(record["prompt"]),
        "negative_prompt": _clip(record["negative_prompt"], 200),
        "duration": record["duration"] or 0,
        "cost": round(record["cost_usd"], 2),
        "wall": None if wall is None else round(wall, 1),
        "created": _epoch(record["created_at"]),
        "backend": record["backend"],
        "has_video": _has_video(run),
        "error": _clip(record["error"], 300) or None,
    }
    if record["sweep_id"]:
        card["sweep_id"] = record["sweep_id"]
    if record["loop"]:
        card["loop"] = True
    return card


def chain_fields(run: Run, position: tuple[int, int] | None) -> dict[str, Any]:
    """What a card adds for a run in a chain: its links, and "part k of n" (`position`)."""
    fields: dict[str, Any] = {}
    for name in ("parent_id", "timeline_id", "segment"):
        value = getattr(run, name)
        if value is not None:
            fields[name] = value
    if position is not None:
        fields["chain"] = {"part": position[0], "of": position[1]}
    return fields


def _finite(value: Any) -> float | None:
    return value if isinstance(value, (int, float)) and math.isfinite(value) else None


def timeline_info(timeline: "Timeline") -> dict[str, Any]:
    """The timeline panel's state: the plan (or the segments' runs) with each one's status."""
    segments = []
    if timeline.runs:
        for index, run in enumerate(timeline.runs):
            record = run.to_dict(history=False)
            segments.append({
                "prompt": _clip(record["prompt"]),
                "duration": record["duration"] or 0,
                "cost": round(record["cost_usd"], 2),
                "run_id": record["run_id"],
                "number": record["seq"],
                "stage": record["stage"],
                "percent": 100.0 if run.stage is RunStage.COMPLETED else _finite(record["percent"]),
                "error": _clip(record["error"], 300) or None,
                "retry": timeline.can_retry(index),
            })
    else:
        segments = [{"prompt": _clip(s.prompt), "duration": s.duration, "cost": round(cost_usd(s.duration), 2),
                     "run_id": None, "stage": None, "percent": None, "error": None, "retry": False}
                    for s in timeline.segments]
    return {
        "timeline_id": timeline.timeline_id,
        "kind": timeline.kind,
        "status": timeline.status,
        "description": timeline.describe(),
        "count": timeline.count,
        "total_seconds": timeline.total_seconds,
        "total_cost_usd": timeline.total_cost_usd,
        "simulated": timeline.simulated,
        "segments": segments,
        "current": timeline.current,
        "error": _clip(timeline.error, 600) or None,
        "has_video": timeline.video_path is not None and Path(timeline.video_path).is_file(),
    }


def run_status(run: Run, *, eta: float | None = None, eta_text: str | None = None) -> dict[str, Any]:
    """The live status of the current run. `elapsed` (since Generate) is measured now; the
    browser ticks it forward itself while `running`, so the kernel only sends a status when
    it changes. `eta` is the expected total seconds, for a progress estimate."""
    record = run.to_dict(history=False)
    running = not run.stage.is_final
    percent = 100.0 if run.stage is RunStage.COMPLETED else record["percent"]
    if percent is not None and not math.isfinite(percent):
        percent = None
    hint = record["hint"] or DEFAULT_HINTS.get(run.stage)
    unknown = record["status"] == "unknown" and record["status_word"]
    if unknown and running:  # show the word PiAPI used, so a person sees what it said
        hint = f"PiAPI says the task is \u201c{_clip(record['status_word'], 60)}\u201d (a status this widget does not know); still checking."
    start = _epoch(record["created_at"])
    end = _epoch(record["finished_at"]) if not running else None
    elapsed = None
    if start is not None:
        elapsed = max(0.0, (end if end is not None else datetime.now(timezone.utc).timestamp()) - start)
    return {
        "run_id": record["run_id"],
        "number": record["seq"],
        "stage": record["stage"],
        "api_status": record["status_word"] if unknown else record["status"],
        "percent": percent,
        "percent_is_estimate": percent is None and running,
        "eta": None if eta is None else round(eta, 1),
        "eta_text": eta_text if running else None,
        "elapsed": None if elapsed is None else round(elapsed, 2),
        "running": running,
        "logs": [_clip(line, 300) for line in record["logs"][-LOG_LINES:]],
        "error": _clip(record["error"], 600) or None,
        "hint": _clip(hint, 600) or None,
        "has_video": _has_video(run),
        "duration": record["duration"] or 0,
    }


def comparison(runs: list[Run]) -> dict[str, Any]:
    """What the comparison grid shows: each run against the first, and which fields differ."""
    if not runs:
        return {}
    try:
        captions = [_clip(c, 200) for c in labels_for(runs)]
    except Exception:  # captions are a nicety
        captions = [""] * len(runs)
    base = _clip(runs[0].prompt, 1000)
    names = {key: image_names(runs, key) for key in ("start_image", "end_image")}

    def image(key: str, sha: str | None) -> dict[str, Any] | None:
        if not sha:
            return None
        name = names[key].get(sha)
        return {"sha": sha[:16], "name": _clip(name, 80)} if name else {"sha": sha[:16]}

    items = []
    for index, run in enumerate(runs):
        prompt = _clip(run.prompt, 1000)
        items.append({
            "run_id": run.run_id,
            "label": run.label if run.seq is not None else "ABCD"[index],
            "caption": captions[index],
            "stage": run.stage.value,
            "prompt": [["=", prompt]] if index == 0 else diff_ops(base, prompt),
            "negative_prompt": _clip(run.negative_prompt, 300),
            "duration": run.duration or 0,
            "start_image": image("start_image", run.start_image_sha),
            "end_image": image("end_image", run.end_image_sha),
            "loop": run.loop,
        })
    return {"run_ids": [i["run_id"] for i in items], "items": items, "differs": differences(runs)}


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
    data = info.get("data")
    places = [data, info] if isinstance(data, Mapping) else [info]
    for place in places:
        for key in ("equivalent_in_usd", "balance_usd", "usd", "balance"):
            number = _number(place.get(key))
            if number is not None:
                return f"${number:,.2f}"
        for key in ("credits", "credit", "points", "remaining_credits"):
            number = _number(place.get(key))
            if number is not None:
                return f"{number:,.0f} credits"
    return ""


def thumbnail_jpeg(image: "Image.Image", max_side: int = 320, quality: int = 80) -> bytes:
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


def first_frame(path: Path) -> "Image.Image":
    """The first frame of a video file as a PIL image (for the poster of URL-input runs)."""
    import av

    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            return frame.to_image()
    raise InvalidInputError(f"{path} has no video frames (the file may be damaged).")
