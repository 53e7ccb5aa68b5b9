"""The README's demo command (`bash .ci/demo`) serves copies of the notebooks, never the originals.

Widget-state saving made a played-with quickstart.ipynb grow from 4.7 KB to 87 KB in git;
the demo now opens copies in a scratch folder and keeps a copy the person has changed.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve_demo(demo_dir: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    port, token = _free_port(), secrets.token_hex(8)
    env = {**os.environ, "FRAMEPACK_DEMO_DIR": str(demo_dir)}
    env.pop("PIAPI_API_KEY", None)
    proc = subprocess.Popen(
        ["bash", ".ci/demo", "--no-browser", f"--port={port}", f"--IdentityProvider.token={token}"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
    )
    return proc, f"http://127.0.0.1:{port}", token


def _contents(url: str, token: str, deadline: float) -> list[str]:
    while time.monotonic() < deadline:
        try:
            answer = httpx.get(f"{url}/api/contents", params={"token": token}, timeout=2)
            if answer.status_code == 200:
                return sorted(item["name"] for item in answer.json()["content"])
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    raise AssertionError("the demo's JupyterLab did not answer within 60 s")


def _stop(proc: subprocess.Popen[bytes]) -> str:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        _, err = proc.communicate()
    return err.decode(errors="replace")


@pytest.mark.slow
def test_demo_serves_copies_and_keeps_an_edited_one(tmp_path: Path) -> None:
    originals = _digests(ROOT / "notebooks")
    demo_dir = tmp_path / "demo"

    proc, url, token = _serve_demo(demo_dir)
    try:
        served = _contents(url, token, time.monotonic() + 60)
        quickstart = httpx.get(f"{url}/api/contents/quickstart.ipynb", params={"token": token}, timeout=5)
    finally:
        err = _stop(proc)
    assert served == sorted(originals), err
    assert quickstart.status_code == 200
    assert _digests(demo_dir) == originals  # exact copies

    edited = demo_dir / "quickstart.ipynb"
    edited.write_text(edited.read_text() + "\n")  # as if the person saved it after playing
    proc, url, token = _serve_demo(demo_dir)
    try:
        _contents(url, token, time.monotonic() + 60)
    finally:
        err = _stop(proc)
    assert edited.read_text().endswith("\n\n"), "the person's copy was overwritten"
    assert "Keeping your copy" in err
    assert _digests(ROOT / "notebooks") == originals  # the repository's notebooks never change
