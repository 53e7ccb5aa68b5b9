"""Answers in replay mode: creates, GETs and cancels served from a recorded trace.

A simulator made with `replay=` answers every create with the trace's create reply (and
renders a video from the request's start image, so the recorded `video_url` plays), and
each GET or cancel of that session's task with the next recorded answer (`_replay` holds
the trace and its sessions). Apart from the endpoints of `_simulator` because it is a
second way of answering the same calls, with its own state (the render of each session).
"""

from __future__ import annotations

import time
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ._bodies import CreateRequest, LocalFile, parse_create
from ._http import Response, error_response, json_response
from ._renderpool import RenderJob, RenderPool
from ._replay import Replay

__all__ = ["ReplayAnswers"]


class ReplayAnswers:
    """The replay-mode create, get/cancel and video of one simulator."""

    def __init__(self, replay: Replay, stopping: threading.Event) -> None:
        self.replay = replay
        self._stopping = stopping
        self._jobs: dict[str, RenderJob] = {}

    def create(self, body: bytes, local_file: LocalFile, renderer: RenderPool, *, long_side: int, label: bool,
               files_url: Callable[[str], str]) -> Response:
        """The recorded create reply, and a video rendered from this request (or a placeholder)."""
        from ._render import detect_motion, placeholder_png, render_key

        session = self.replay.start()
        request = parse_create(body, local_file)
        if isinstance(request, CreateRequest):
            start, end = request.start.data, request.end.data if request.end else None
            duration, motion = request.duration, detect_motion(request.prompt)
            key = render_key(request.start.sha256, request.end.sha256 if request.end else None, motion, duration,
                             long_side, label)
        else:  # the recorded answer is served all the same; the video comes from a placeholder
            start, end = placeholder_png(self.replay.trace.source), None
            duration, motion = self.replay.trace.duration, detect_motion("")
            key = f"replay-{uuid.uuid4().hex}"
        self._jobs[session.file] = renderer.submit(key, start, end, motion, duration, long_side=long_side, label=label)
        return self._replayed(session, "create", files_url)

    def answer(self, task_id: str, call: str, files_url: Callable[[str], str]) -> Response:
        """A GET or cancel of a replayed task: the session's next recorded answer."""
        session = self.replay.session(task_id)
        if session is None:
            return error_response(404, "Record Not Found")
        return self._replayed(session, call, files_url)

    def _replayed(self, session: Any, call: str, files_url: Callable[[str], str]) -> Response:
        answer = self.replay.answer(session, call, files_url(session.file))
        if answer is None:
            return error_response(400, f"this trace recorded no {call} answer")
        status, body, text = answer
        if body is None:
            return Response(status, (text or "").encode("utf-8"), {"Content-Type": "text/plain; charset=utf-8"})
        return json_response(status, body)

    def is_video(self, name: str) -> bool:
        return self.replay.is_video(name)

    def download_status(self) -> int | None:
        """The recorded download's failure status (an expired link), or None."""
        return self.replay.download_status()

    def video(self, name: str) -> Path | None:
        """The replay's video, once rendered (a download may come before the render is done)."""
        job = self._jobs.get(name)
        if job is None:
            return None
        deadline = time.monotonic() + 120
        while job.done_ns is None and time.monotonic() < deadline:
            if self._stopping.wait(0.05):
                return None
        return job.path if job.error is None and job.path.is_file() else None
