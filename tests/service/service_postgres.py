"""A temporary PostgreSQL cluster for the tests, from Debian's package (`apt-get install postgresql`).

initdb and pg_ctl refuse to run as root, so as root they run as the `postgres` user the
package creates (through runuser). The cluster listens on a Unix socket in its own temporary
folder only (no TCP port), with durability off (a test database need not survive a crash),
and is removed when stopped.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

__all__ = ["TempCluster", "find_bin"]


def find_bin() -> Path | None:
    """The newest PostgreSQL's bin folder (/usr/lib/postgresql/<version>/bin), if installed."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


class TempCluster:
    """`start()` a throwaway cluster; `database()` makes an empty database and returns its URL."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="framepack-pg-"))
        self.data = self.root / "data"
        self.socket = self.root / "socket"
        self._as_postgres = os.geteuid() == 0

    def _run(self, *args: str) -> None:
        command = [str(a) for a in args]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")

    def start(self) -> "TempCluster":
        self.socket.mkdir()
        if self._as_postgres:
            shutil.chown(self.root, "postgres")
            shutil.chown(self.socket, "postgres")
        self._run(self.bin / "initdb", "-D", self.data, "-U", "fpw", "--auth=trust", "-E", "UTF8",
                  "--no-instructions")
        options = (f"-k {self.socket} -c listen_addresses='' -c fsync=off -c synchronous_commit=off "
                   "-c full_page_writes=off -c max_connections=200")
        self._run(self.bin / "pg_ctl", "-D", self.data, "-o", options, "-l", self.root / "log", "-w", "-t", "60",
                  "start")
        return self

    @property
    def admin_url(self) -> str:
        return f"postgresql://fpw@/postgres?host={self.socket}"

    def database(self) -> str:
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.admin_url, autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql://fpw@/{name}?host={self.socket}"

    def stop(self) -> None:
        try:
            self._run(self.bin / "pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
