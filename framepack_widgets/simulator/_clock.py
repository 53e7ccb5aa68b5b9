"""The task clock: what a simulated task is, and the status and envelope it shows at any moment.

Why apart: a task's state is never stored or advanced by a timer. It is derived from the
clock on each request: pending for `pending_seconds`, processing for `processing_seconds`,
then completed, all in simulated seconds divided by `time_scale`; a fault may fail it part
way, a cancel ends it while pending, and it stays "processing" (99 %) until its video is
rendered. Every process that knows a task's clock therefore agrees on its status, which is
what lets several simulators over one state folder serve the same tasks. How an answer
words that state (the profile, status words, where the video goes) is `_shapes`'.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from ..constants import COST_PER_SECOND, FPS, MODEL, TASK_TYPE
from ._render import LONG_SIDE
from ._renderpool import RenderJob
from ._shapes import DEFAULT_PROFILE, video_output, word_for

__all__ = [
    "DEFAULT_PENDING_SECONDS",
    "DEFAULT_PROCESSING_OVERHEAD",
    "DEFAULT_PROCESSING_PER_VIDEO_SECOND",
    "UNITS_PER_USD",
    "SimTask",
    "default_processing_seconds",
]

# The default clock, in simulated seconds (divide by time_scale for wall seconds):
# a 10 s video takes 3 + 4 + 30 = 37 s in all, a 30 s video 97 s.
DEFAULT_PENDING_SECONDS = 3.0
DEFAULT_PROCESSING_OVERHEAD = 4.0
DEFAULT_PROCESSING_PER_VIDEO_SECOND = 3.0

#: PiAPI counts credits in units of 1e-7 US dollars.
UNITS_PER_USD = 10_000_000
#: PiAPI's timestamp for "not yet" (Go's zero time).
ZERO_TIME = "0001-01-01T00:00:00Z"


def default_processing_seconds(duration: int) -> float:
    """Processing time of a clip of `duration` seconds at time_scale 1."""
    return DEFAULT_PROCESSING_OVERHEAD + DEFAULT_PROCESSING_PER_VIDEO_SECOND * duration


def _rfc3339(ns: int) -> str:
    """RFC 3339 in UTC with nanoseconds and `Z`, as PiAPI writes `created_at`."""
    seconds, fraction = divmod(int(ns), 1_000_000_000)
    stamp = datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{fraction:09d}Z"


@dataclass
class SimTask:
    """The simulator's record of one task; its status is computed from the clock."""

    task_id: str
    input_echo: dict[str, Any]
    config_echo: dict[str, Any]
    duration: int
    motion: str
    has_end_image: bool
    notes: list[str]
    created_ns: int
    created_mono_ns: int
    pending_seconds: float
    processing_seconds: float
    time_scale: float
    render: RenderJob
    fail_after: float | None = None  # simulated seconds into processing
    fail_message: str | None = None
    cancelled_ns: int | None = None
    # What a re-render needs (a simulator over the same state_dir, after this process died).
    render_key: str = ""
    start_sha256: str | None = None
    end_sha256: str | None = None
    long_side: int = LONG_SIDE
    label: bool = True
    persisted: bool = False  # stored in a state_dir (then other processes may cancel it)
    # How its answers word the state (see `_shapes`): the profile, and task-level faults.
    profile: str = DEFAULT_PROFILE
    status_words: dict[str, str] | None = None
    output_shape: str | None = None
    url_lag: int = 0  # GETs that find it completed without a video URL yet
    lagged: int = 0  # of those, how many were answered so far (in this process)

    def _wall_at(self, simulated: float) -> int:
        return self.created_ns + int(simulated / self.time_scale * 1e9)

    @property
    def clock_ends_ns(self) -> int:
        """Wall ns when the clock says completed (or failed, with a fault-driven failure)."""
        end = self.fail_after if self.fail_after is not None else self.processing_seconds
        return self._wall_at(self.pending_seconds + end)

    def state(self, mono_ns: int | None = None) -> dict[str, Any]:
        """status, fraction done, started/ended (wall ns or None), logs, error."""
        now = time.monotonic_ns() if mono_ns is None else mono_ns
        elapsed = (now - self.created_mono_ns) / 1e9 * self.time_scale
        p, r = self.pending_seconds, self.processing_seconds
        if self.cancelled_ns is not None:
            return {"status": "cancelled", "fraction": None, "started": None, "ended": self.cancelled_ns,
                    "logs": [], "error": None}
        if elapsed < p:
            return {"status": "pending", "fraction": None, "started": None, "ended": None, "logs": [], "error": None}
        started = self._wall_at(p)
        if self.fail_after is not None and elapsed >= p + self.fail_after:
            fraction = self.fail_after / r if r > 0 else 1.0
            logs = self._logs(fraction) + [f"error: {self.fail_message}"]
            return {"status": "failed", "fraction": fraction, "started": started,
                    "ended": self._wall_at(p + self.fail_after), "logs": logs,
                    "error": (10000, self.fail_message or "task failed")}
        if elapsed < p + r:
            fraction = (elapsed - p) / r if r > 0 else 1.0
            return {"status": "processing", "fraction": fraction, "started": started, "ended": None,
                    "logs": self._logs(fraction), "error": None}
        job = self.render
        if job.done_ns is None:
            logs = self._logs(1.0) + ["encoding video (the simulator's renderer is still busy)"]
            return {"status": "processing", "fraction": 0.99, "started": started, "ended": None,
                    "logs": logs, "error": None}
        ended = max(self._wall_at(p + r), job.done_ns)
        if job.error is not None:
            message = f"the simulator could not render the video: {job.error}"
            return {"status": "failed", "fraction": 1.0, "started": started, "ended": ended,
                    "logs": self._logs(1.0) + [f"error: {message}"], "error": (10001, message)}
        return {"status": "completed", "fraction": 1.0, "started": started, "ended": ended, "logs": [],
                "error": None}

    def _logs(self, fraction: float) -> list[str]:
        """The log lines FramePack would have printed by this point of processing."""
        sections = max(1, round(self.duration * FPS / 36))  # FramePack samples 36 frames a section
        schedule: list[tuple[float, str]] = [
            (0.0, "worker picked up the task (simulated GPU: the video will be synthetic)"),
            (0.01, f"loading model {MODEL}"),
            (0.03, "encoding prompt"),
            (0.05, "encoding start image"),
        ]
        if self.has_end_image:
            schedule.append((0.06, "encoding end image"))
        schedule.extend((0.06, note) for note in self.notes)
        schedule.append((0.08, f"camera motion from prompt: {self.motion.replace('_', ' ')}"))
        for i in range(1, sections + 1):
            schedule.append((0.1 + 0.85 * (i - 1) / sections, f"sampling section {i}/{sections}"))
        schedule.append((0.96, "decoding latents to frames"))
        return [text for at, text in schedule if fraction >= at]

    def data(self, base_url: str, *, poll: bool = False) -> dict[str, Any]:
        """The envelope's `data` for this task as of now; its video is served under `base_url`.
        `poll`: a client's GET (it counts towards a lagging video URL)."""
        state = self.state()
        status = state["status"]
        rich = self.profile == "rich"
        units = round(COST_PER_SECOND * self.duration * UNITS_PER_USD)
        output: dict[str, Any] | None = {"video_url": ""} if rich else None
        if status == "processing" and rich:
            output = {"video_url": "", "percent": max(0, min(99, int(state["fraction"] * 100)))}
        elif status == "completed":
            if poll and self.lagged < self.url_lag:  # it says completed; the URL is not there yet
                self.lagged += 1
                output = {"video_url": ""}
            else:
                output = video_output(f"{base_url}/files/{self.task_id}.mp4", self.output_shape)
        if status in ("pending", "processing"):
            usage = {"type": "point", "frozen": units, "consume": 0}
        elif status == "completed":
            usage = {"type": "point", "frozen": 0, "consume": units}
        else:
            usage = {"type": "point", "frozen": 0, "consume": 0}
        error = {"code": 0, "raw_message": "", "message": "", "detail": None}
        if state["error"] is not None:
            code, message = state["error"]
            error = {"code": code, "raw_message": message, "message": message, "detail": None}
        return {
            "task_id": self.task_id,
            "model": MODEL,
            "task_type": TASK_TYPE,
            "status": word_for(status, self.status_words),
            "config": json.loads(json.dumps(self.config_echo)),
            "input": dict(self.input_echo),
            "output": output,
            "meta": {
                "created_at": _rfc3339(self.created_ns),
                "started_at": _rfc3339(state["started"]) if state["started"] else ZERO_TIME,
                "ended_at": _rfc3339(state["ended"]) if state["ended"] else ZERO_TIME,
                "usage": usage,
                "is_using_private_pool": False,
            },
            "detail": None,
            "logs": list(state["logs"]) if rich else [],
            "error": error,
        }
