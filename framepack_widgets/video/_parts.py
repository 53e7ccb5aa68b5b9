"""Half-written MP4s: written under a hidden `.part.mp4` name, renamed into place whole.

A writer holds an exclusive lock on its part file while it writes (where the platform has
`flock`), so a stale part file (its writer was killed) can be told from a live one:
`remove_stale_parts` removes only those nobody holds. Where there is no `flock`
(Windows), an open file cannot be removed anyway, and a part file younger than a minute
is always left alone.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from pathlib import Path
from types import TracebackType

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["PART_SUFFIX", "PartFile", "remove_stale_parts"]

log = logging.getLogger(__name__)

PART_SUFFIX = ".part.mp4"
#: Without `flock`, a part file this young is never taken for stale.
_GRACE_SECONDS = 60.0


class PartFile:
    """`with PartFile(target) as part:` write `part.path`, then `part.commit()` renames it
    to `target`; leaving the block without a commit removes it."""

    def __init__(self, target: str | os.PathLike[str], *, mode: int = 0o600) -> None:
        self.target = Path(target)
        self.path = self.target.with_name(f".{self.target.stem}.{uuid.uuid4().hex[:10]}{PART_SUFFIX}")
        self._mode = mode
        self._fd: int | None = None

    def __enter__(self) -> "PartFile":
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, self._mode)
        try:
            os.chmod(self.path, self._mode)  # exactly this mode, whatever the umask
            if fcntl is not None:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            else:  # nothing to hold it by, and an open file could not be renamed there
                os.close(self._fd)
                self._fd = None
        except BaseException:
            self._release(remove=True)
            raise
        return self

    def commit(self) -> Path:
        os.replace(self.path, self.target)
        self._release(remove=False)
        return self.target

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._release(remove=True)

    def _release(self, *, remove: bool) -> None:
        if remove:
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass
        if self._fd is not None:
            os.close(self._fd)  # drops the lock
            self._fd = None


def remove_stale_parts(folder: str | os.PathLike[str], *, min_age: float = 1.0) -> int:
    """Remove the `*.part.mp4` files in `folder` (not below it) that no live writer holds,
    as a stitch or a settings write killed mid-way leaves them; returns how many went.

    A writer that does not lock its part file (not a `PartFile`) is only told apart by
    age: for such a folder pass a `min_age` (seconds) longer than any write takes."""
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    now = time.time()
    for entry in entries:
        if not entry.name.endswith(PART_SUFFIX):
            continue
        try:
            if not entry.is_file(follow_symlinks=False) or _is_held(entry.path, now, min_age):
                continue
            os.unlink(entry.path)
            removed += 1
        except OSError as exc:  # in use (Windows), gone already, or not ours to remove
            log.debug("left %s: %s", entry.path, exc)
    return removed


def _is_held(path: str, now: float, min_age: float) -> bool:
    """Whether a writer holds `path`, or may: a part file younger than `min_age` (or,
    without `flock`, than a minute), or one locked."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    try:
        age = now - os.fstat(fd).st_mtime
        if age < min_age or fcntl is None and age < _GRACE_SECONDS:
            return True
        if fcntl is None:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        return False
    finally:
        os.close(fd)
