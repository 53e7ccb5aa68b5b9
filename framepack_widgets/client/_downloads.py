"""Saving a finished task's video: where it goes, whether to try again, and never half a file.

PiAPI's result URLs expire, so videos are fetched at once; this module decides what a
download's answer means (retry, refuse, keep) and writes the bytes through
`AtomicVideoFile`, which only ever leaves a complete, checked video at the destination.
The request carries no API key: the video host is not PiAPI's API.
"""

from __future__ import annotations

import logging
import os
import random
import re
from collections.abc import Callable
from pathlib import Path

import httpx

from .._environment import umask
from ..errors import DownloadError
from ..task import Task
from ._retry import TRANSIENT_TRANSPORT, Step, backoff_delay, parse_retry_after, read_retryable_status
from ._redaction import short_url
from ._settings import API_KEY_HEADER, USER_AGENT

__all__ = [
    "AtomicVideoFile",
    "after_download_exception",
    "after_download_response",
    "download_request",
    "download_target",
    "is_video_header",
    "safe_file_name",
]

logger = logging.getLogger("framepack_widgets")

_MP4_BOX = b"ftyp"
_WEBM_MAGIC = b"\x1a\x45\xdf\xa3"


def is_video_header(head: bytes) -> bool:
    """MP4/MOV ('ftyp' box at offset 4) or WebM/Matroska (EBML magic)."""
    return head[4:8] == _MP4_BOX or head[:4] == _WEBM_MAGIC


class AtomicVideoFile:
    """Writes into a temp file beside the destination, checks it is a video, then renames.

    A failed or refused download never leaves a partial file at the destination.
    """

    def __init__(self, dest: Path) -> None:
        import tempfile  # imports shutil and the compressors: only when a video is saved

        self.dest = dest
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
        self.tmp = Path(name)
        self._file = os.fdopen(fd, "wb")
        self._head = b""
        self.size = 0

    def write(self, chunk: bytes) -> None:
        if len(self._head) < 16:
            self._head += chunk[: 16 - len(self._head)]
        self._file.write(chunk)
        self.size += len(chunk)

    def commit(self, url: str) -> Path:
        try:
            if not is_video_header(self._head):
                preview = self._head[:12]
                raise DownloadError(
                    f"The file at {short_url(url)} is not a video (it starts with {preview!r}, "
                    f"{self.size} bytes); nothing was saved. The link may have expired: "
                    "fetch the task again for a fresh URL."
                )
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            os.chmod(self.tmp, 0o666 & ~umask())  # a normal file (mkstemp made it 0600)
            os.replace(self.tmp, self.dest)
        except BaseException:
            self.abort()
            raise
        return self.dest

    def abort(self) -> None:
        try:
            self._file.close()
        finally:
            try:
                self.tmp.unlink()
            except FileNotFoundError:
                pass



def safe_file_name(text: str, default: str = "video.mp4") -> str:
    """A file name made from API data (a task id, a URL's last part) that stays a plain name
    in the chosen folder: no separators, no leading dots, no control characters."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", text).lstrip("._")[:120]
    return name or default


def download_target(task: "Task | str", path: "str | os.PathLike[str]") -> tuple[str, Path]:
    """(video URL, file to write) for a completed Task or a video URL, and a file or folder."""
    if isinstance(task, Task):
        url = task.video_url
        if not url:
            raise DownloadError(
                f"Task {task.task_id} has no video URL yet (status {task.status}). "
                "Wait for it to complete (client.wait) before downloading."
            )
        name = safe_file_name(f"{task.task_id}.mp4")
    elif isinstance(task, str) and task.strip().lower().startswith(("http://", "https://")):
        url = task.strip()
        name = safe_file_name(httpx.URL(url).path.rsplit("/", 1)[-1])
    else:
        raise DownloadError(f"download() needs a completed Task or an http(s) video URL, not {task!r}.")
    dest = Path(os.fspath(path)).expanduser()
    if dest.is_dir():
        dest = dest / name
    return url, dest


def download_request(http: "httpx.Client | httpx.AsyncClient", url: str, timeout: httpx.Timeout) -> httpx.Request:
    """A GET for the result video that never carries the API key (the host is not PiAPI's API)."""
    request = http.build_request("GET", url, headers={"accept": "video/*,*/*", "user-agent": USER_AGENT}, timeout=timeout)
    if API_KEY_HEADER in request.headers:  # e.g. a shared http_client with default headers
        del request.headers[API_KEY_HEADER]
    return request


def after_download_response(
    url: str, response: httpx.Response, attempt: int, *, max_retries: int, rng: random.Random
) -> Step:
    """`Step(value=True)` to stream the body into the file; else a retry or a DownloadError."""
    status = response.status_code
    logger.debug("GET %s -> %s (download, attempt %d)", short_url(url), status, attempt + 1)
    if 200 <= status < 300:
        return Step(value=True)
    if attempt < max_retries and read_retryable_status(status):
        retry_after = parse_retry_after(response.headers)
        return Step(retry_in=retry_after if retry_after is not None else backoff_delay(attempt, rng=rng))
    hint = (
        "PiAPI deletes results after a while; if the link expired, generate again."
        if status in (403, 404, 410)
        else "Try again in a minute."
    )
    return Step(error=DownloadError(f"Could not download the video from {short_url(url)} (HTTP {status}). {hint}"))


def after_download_exception(
    url: str,
    exc: BaseException,
    attempt: int,
    *,
    max_retries: int,
    rng: random.Random,
    redact: Callable[[str], str],
) -> Step:
    """A transient transport failure is retried; any other httpx error is a DownloadError."""
    logger.debug("GET %s -> %s (download, attempt %d)", short_url(url), type(exc).__name__, attempt + 1)
    if attempt < max_retries and isinstance(exc, TRANSIENT_TRANSPORT):
        return Step(retry_in=backoff_delay(attempt, rng=rng))
    if isinstance(exc, httpx.HTTPError):
        return Step(
            error=DownloadError(
                f"Could not download the video from {short_url(url)} ({type(exc).__name__}: "
                f"{redact(str(exc))}). Check the network and try again."
            ),
        )
    return Step(error=exc)
