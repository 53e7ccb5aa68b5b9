"""The run store's folder on disk: private to its user, written atomically, never deleted.

Folders are 0700 and files 0600 (or stricter, by umask); files are written beside their
place and renamed in, so a reader never sees half a file; a damaged database is renamed
aside (kept, not deleted) and said once to the person. The folder's problems raise
`StoreError`, naming the folder and what to do. The layout itself is `RunStore`'s.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

from .._environment import umask
from ..errors import FramepackError

__all__ = [
    "StoreError", "default_folder", "folder_size", "make_private_folders", "move_damaged_aside", "move_in",
    "private", "unusable", "write_atomic",
]

log = logging.getLogger(__name__)

#: A SQLite database and the files WAL mode keeps beside it.
DB_SUFFIXES = ("", "-wal", "-shm")


class StoreError(FramepackError):
    """The run store's folder cannot be used as it is; the message names it and what to do."""


def default_folder() -> Path:
    """$FRAMEPACK_HOME when set, else `.framepack` in the current directory (beside the notebook)."""
    env = os.environ.get("FRAMEPACK_HOME", "").strip()
    return Path(env).expanduser() if env else Path.cwd() / ".framepack"


def private(path: Path, *, folder: bool = False) -> None:
    """Only the user may read it: 0700 for folders, 0600 for files (or stricter, by umask)."""
    mode = (0o700 if folder else 0o600) & ~umask()
    try:
        os.chmod(path, mode)
    except FileNotFoundError:
        pass


def make_private_folders(folder: Path, subfolders: Iterable[Path], db_path: Path) -> None:
    """The store's folder and its subfolders, private to the user. A folder that existed and
    holds no store is someone else's: it is used, but its mode is left alone."""
    subfolders = list(subfolders)
    where = "FRAMEPACK_HOME" if os.environ.get("FRAMEPACK_HOME", "").strip() else "the run store's folder"
    try:
        existed = folder.is_dir()
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        for path in subfolders:
            path.mkdir(mode=0o700, exist_ok=True)
    except FileExistsError:
        raise StoreError(
            f"{where} ({folder}) is a file, not a folder. Point FRAMEPACK_HOME at a folder "
            "(it is created if missing), or move that file away."
        ) from None
    except PermissionError:
        raise StoreError(
            f"Cannot create {where} ({folder}): permission denied. Choose a folder you can write "
            "to: set FRAMEPACK_HOME, or pass RunStore(folder) / FramepackWidget(store=RunStore(folder))."
        ) from None
    except OSError as exc:
        raise StoreError(
            f"Cannot create {where} ({folder}): {exc.strerror or exc}. Choose another folder with "
            "FRAMEPACK_HOME."
        ) from None
    if not existed or db_path.exists():  # ours: a new folder, or a store
        private(folder, folder=True)
    for path in subfolders:
        private(path, folder=True)


def private_database(db_path: Path) -> None:
    """SQLite gives -wal and -shm the database's mode: make all three private."""
    for suffix in DB_SUFFIXES:
        private(Path(f"{db_path}{suffix}"))


def unusable(db_path: Path, exc: sqlite3.DatabaseError) -> StoreError:
    return StoreError(
        f"Cannot open the run store {db_path}: {exc}. Check that the folder is on a local disk "
        "and that you may write to it, or choose another folder with FRAMEPACK_HOME."
    )


def move_damaged_aside(db_path: Path, exc: sqlite3.DatabaseError) -> str:
    """Rename a damaged database (kept, never deleted) so a new one can start; returns what
    to tell the person."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    kept = db_path.with_name(f"{db_path.name}.damaged-{stamp}")
    try:
        for suffix in DB_SUFFIXES:
            old = Path(f"{db_path}{suffix}")
            if old.exists():
                os.replace(old, Path(f"{kept}{suffix}"))
    except OSError as move_error:
        raise StoreError(
            f"The run store {db_path} is damaged ({exc}) and could not be moved aside "
            f"({move_error.strerror or move_error}). Move it away yourself, or choose another folder "
            "with FRAMEPACK_HOME."
        ) from None
    notice = (
        f"The run history in {db_path} was damaged ({exc}), so it was moved to {kept.name} "
        "(kept, not deleted) and a new, empty history was started. Videos and images in the folder are "
        "untouched."
    )
    log.warning("%s", notice)
    return notice


def write_atomic(tmp_dir: Path, path: Path, data: bytes) -> None:
    """Write `data` to `path` whole or not at all (0600, via a file in `tmp_dir`)."""
    tmp = tmp_dir / f"{uuid.uuid4().hex}.part"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def move_in(src: Path, final: Path, tmp_dir: Path) -> None:
    """Move `src` to `final` (private), by a rename, or by a copy beside it when `src` is on
    another disk."""
    private(src)
    try:
        os.replace(src, final)
    except OSError:  # another disk: copy next to it, then rename into place
        tmp = tmp_dir / f"{uuid.uuid4().hex}.part"
        shutil.copyfile(src, tmp)
        private(tmp)
        os.replace(tmp, final)
        src.unlink()


def folder_size(files: Iterable[Path], folders: Iterable[Path]) -> int:
    """Bytes used by these files and everything directly in these folders (gone files count 0)."""
    total = 0
    for path in files:
        try:
            total += path.stat().st_size
        except FileNotFoundError:
            pass
    for folder in folders:
        for entry in os.scandir(folder):
            try:
                total += entry.stat().st_size
            except FileNotFoundError:
                pass
    return total
