"""What the service answers: PiAPI's envelope, a task as its owner may see it, and refusals.

Every answer to a student is built here. A task's data is PiAPI's own (so any PiAPI client
reads it), with three changes: the webhook's secret and endpoint are blanked (PiAPI echoes
them in the task's config), a finished video's URL points at the service's copy (PiAPI's
expire), and a `class_service` object says who owns it, whether it is shared and what it
cost. Refusals carry PiAPI's `{"code", "message"}` and a `data` object with the figures a
program needs (left, asked, retry after); the message says what to do and who to ask.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from ..constants import MODEL, SUBMISSION_HEADER, TASK_TYPE
from ._money import dollars
from ._store import StudentSummary, TaskRow

__all__ = ["SUBMISSION_HEADER", "Reply", "envelope", "error", "task_data", "video_signature"]

#: A create's answer carries `SUBMISSION_HEADER: unknown` when PiAPI may or may not have made the task.
#: A repeated create (same Idempotency-Key) is answered with the first one's outcome and this header.
REPLAYED_HEADER = "Idempotent-Replayed"

_BLANK_WEBHOOK = {"endpoint": "", "secret": ""}


@dataclass
class Reply:
    """An answer before it goes on the wire."""

    status: int
    payload: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


def envelope(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, {"code": 200, "message": "success", "data": data}, dict(headers or {}))


def error(status: int, message: str, data: Any = None, headers: dict[str, str] | None = None) -> Reply:
    """PiAPI's error body, `{"code": status, "message": ...}`, with the figures in `data`."""
    return Reply(status, {"code": status, "message": message, "data": data}, dict(headers or {}))


def video_signature(secret: str, task_id: str) -> str:
    """The capability in a video's URL: whoever was given the URL may fetch it, as with PiAPI's
    own URLs (a client downloads videos without its credential)."""
    return hmac.new(secret.encode(), task_id.encode(), hashlib.sha256).hexdigest()[:32]


def video_url(base: str, secret: str, task_id: str) -> str:
    return f"{base}videos/{quote(task_id, safe='')}.mp4?sig={video_signature(secret, task_id)}"


def task_data(row: TaskRow, *, base: str, video_secret: str) -> dict[str, Any]:
    """The envelope's `data` for a task, as its owner (or a teacher) sees it."""
    data = dict(row.data or {})
    data.setdefault("task_id", row.task_id)
    data.setdefault("model", MODEL)
    data.setdefault("task_type", TASK_TYPE)
    data.setdefault("status", row.status or "pending")
    config = data.get("config") if isinstance(data.get("config"), dict) else {}
    data["config"] = {**config, "webhook_config": dict(_BLANK_WEBHOOK)}
    if row.state == "completed" and row.task_id:
        output = data.get("output") if isinstance(data.get("output"), dict) else {}
        kept = {k: v for k, v in output.items() if k in ("percent",)}
        data["output"] = {**kept, "video_url": video_url(base, video_secret, row.task_id)}
    data["class_service"] = {
        "owner": row.owner,
        "shared": row.shared,
        "price_usd": dollars(row.price_micros),
        "charged_usd": dollars(row.charged_micros),
        "state": row.state,
    }
    return data


def account_data(summary: StudentSummary, *, max_running: int, paused: bool, simulated: bool = False,
                 ) -> dict[str, Any]:
    """`account/info` for a student: their budget, as PiAPI's account answer would carry credits
    (`simulated`: the class runs on the offline simulator, whose videos are synthetic)."""
    left = dollars(summary.left_micros)
    return {
        "account_name": summary.name,
        "account_id": summary.name,
        "equivalent_in_usd": left,
        "budget": {
            "total": dollars(summary.budget_micros),
            "spent": dollars(summary.spent_micros),
            "reserved": dollars(summary.reserved_micros),
            "left": left,
            "currency": "USD",
        },
        "running_tasks": summary.running,
        "max_running": max_running,
        "paused": paused,
        "simulated": simulated,
        "class_service": True,
    }


def student_row(summary: StudentSummary) -> dict[str, Any]:
    """One student in the teacher's list."""
    return {
        "name": summary.name,
        "budget_usd": dollars(summary.budget_micros),
        "own_budget": summary.own_budget,
        "spent_usd": dollars(summary.spent_micros),
        "reserved_usd": dollars(summary.reserved_micros),
        "left_usd": dollars(summary.left_micros),
        "running": summary.running,
        "unknown": summary.unknown,
    }


def teacher_task(row: TaskRow) -> dict[str, Any]:
    """A create as the teacher's lists show it (no images, no URLs with capabilities)."""
    return {
        "id": row.id,
        "task_id": row.task_id,
        "owner": row.owner,
        "state": row.state,
        "status": row.status,
        "prompt": row.prompt,
        "negative_prompt": row.negative_prompt,
        "duration": row.duration,
        "price_usd": dollars(row.price_micros),
        "reserved_usd": dollars(row.reserved_micros),
        "charged_usd": dollars(row.charged_micros),
        "shared": row.shared,
        "has_video": bool(row.video),
        "error": row.error,
        "created_ns": row.created_ns,
        "ended_ns": row.ended_ns,
    }

