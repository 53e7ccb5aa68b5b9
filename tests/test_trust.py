"""Holes an audit found, each closed here: the key unreachable from errors and from what the
API echoes, file names from API data, clear-text keys, file modes, the simulator's bind."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import traceback
from pathlib import Path

import httpx
import pytest

from framepack_widgets.client import AsyncClient, Client
from framepack_widgets.errors import (
    APIConnectionError,
    AuthenticationError,
    InvalidInputError,
    SubmissionUnknownError,
    TaskFailedError,
)
from framepack_widgets.simulator import Fault, Simulator
from framepack_widgets.task import Task, TaskStatus

KEY = "sk-canary-TRUST-0123456789abcdef"
URL_INPUT = {"prompt": "the camera pans left", "start_image": "https://example.com/a.png", "duration": 10}


def _everything_shown(exc: BaseException) -> str:
    """What a traceback shows, verbose locals included, for the whole chain."""
    shown = "".join(traceback.format_exception(exc))
    shown += "".join(traceback.TracebackException.from_exception(exc, capture_locals=True).format())
    shown += repr(exc) + repr(getattr(exc, "request", None)) + repr(getattr(exc, "response", None))
    return shown


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_connection_error_shows_no_httpx_chain_and_no_key() -> None:
    with Client(KEY, base_url=f"http://127.0.0.1:{_closed_port()}", max_retries=0) as client:
        with pytest.raises(APIConnectionError) as info:
            client.get_task("t1")
    exc = info.value
    assert exc.__cause__ is None and exc.__suppress_context__
    assert "Connection refused" in str(exc)  # the message still says what happened
    assert KEY not in _everything_shown(exc)


@pytest.mark.parametrize("client_class", [Client, AsyncClient])
async def test_a_create_cut_off_after_sending_shows_no_key(client_class: type) -> None:
    with Simulator(time_scale=50, api_key=KEY) as sim:
        sim.inject(Fault.drop_after_body("create"))
        client = client_class(KEY, base_url=sim.base_url)
        with pytest.raises(SubmissionUnknownError) as info:
            if client_class is AsyncClient:
                async with client:
                    await client.create_task(URL_INPUT)
            else:
                with client:
                    client.create_task(URL_INPUT)
    assert info.value.__cause__ is None and KEY not in _everything_shown(info.value)


def test_a_key_the_api_echoes_reaches_no_task_and_no_error() -> None:
    with Simulator(time_scale=50, api_key=KEY, echo_key=True, profile="rich") as sim:
        sim.inject(Fault.fail_task("GPU out of memory", after_seconds=1.0))
        with Client(KEY, base_url=sim.base_url) as client:
            created = client.create_task(URL_INPUT)
            assert KEY not in repr(created.raw) and KEY not in " ".join(created.logs)
            with pytest.raises(TaskFailedError) as failed:
                client.wait(created, timeout=30)
            task = failed.value.task
            assert "GPU out of memory" in (task.error or "")
            assert KEY not in f"{task.error} {task.logs} {task.raw} {failed.value}"
            assert KEY not in _everything_shown(failed.value)
        with Client("sk-wrong-key-echoed-back", base_url=sim.base_url, max_retries=0) as wrong:
            with pytest.raises(AuthenticationError) as denied:
                wrong.get_task(created.task_id)
        shown = _everything_shown(denied.value) + repr(denied.value.body) + denied.value.response.text
        assert "sk-wrong-key-echoed-back" not in shown
        assert "sk-wrong-key-echoed-back" not in str(dict(denied.value.response.headers))


def test_a_task_id_cannot_lead_a_download_out_of_its_folder(tmp_path: Path) -> None:
    def video(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64)

    folder = tmp_path / "videos"
    folder.mkdir()
    with Client(KEY, base_url="https://api.example.com", http_client=httpx.Client(transport=httpx.MockTransport(video))) as c:
        for task_id in ("../../escaped", "/etc/passwd", "a/b\\c", "..", "\x00"):
            task = Task(task_id=task_id, status=TaskStatus.COMPLETED, video_url="https://img.example/v.mp4")
            written = c.download(task, folder)
            assert written.parent == folder and written.name not in ("", ".", ".."), written
        written = c.download("https://img.example/..%2F..%2Fx.mp4", folder)
        assert written.parent == folder
    assert not (tmp_path / "escaped.mp4").exists()
    assert sorted(p.parent for p in tmp_path.rglob("*") if p.is_file()) == [folder] * len(list(folder.iterdir()))


def test_a_key_is_never_sent_in_clear_text_to_another_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InvalidInputError, match="unencrypted") as info:
        Client(KEY, base_url="http://api.example.com")
    assert "https://" in str(info.value) and "allow_http=True" in str(info.value) and KEY not in str(info.value)
    monkeypatch.setenv("PIAPI_BASE_URL", "http://10.1.2.3:8080")
    with pytest.raises(InvalidInputError, match="PIAPI_BASE_URL is http://10.1.2.3:8080"):
        Client(KEY)
    with pytest.raises(InvalidInputError, match="PIAPI_BASE_URL is http"):
        AsyncClient(KEY)
    assert Client(KEY, allow_http=True).base_url == "http://10.1.2.3:8080"  # said so explicitly
    monkeypatch.setenv("PIAPI_ALLOW_HTTP", "1")
    assert Client(KEY).base_url == "http://10.1.2.3:8080"
    monkeypatch.delenv("PIAPI_ALLOW_HTTP")
    monkeypatch.delenv("PIAPI_BASE_URL")
    assert Client(KEY, base_url="http://127.0.0.1:8765").is_simulator  # this machine: fine
    assert Client(KEY, base_url="http://localhost:8765").is_simulator
    assert Client(KEY, base_url="https://api.example.com").base_url == "https://api.example.com"


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o077, 0o600)])
def test_a_downloaded_video_follows_the_umask(mask: int, mode: int, tmp_path: Path) -> None:
    def video(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64)

    old = os.umask(mask)
    try:
        with Client(KEY, base_url="https://api.example.com",
                    http_client=httpx.Client(transport=httpx.MockTransport(video))) as c:
            written = c.download("https://img.example/v.mp4", tmp_path / "out.mp4")
    finally:
        os.umask(old)
    assert written.stat().st_mode & 0o777 == mode


def test_the_simulator_says_where_it_really_listens_and_warns_off_loopback() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "framepack_widgets.simulator", "--host", "0.0.0.0", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        first = proc.stdout.readline()
        assert "0.0.0.0:" in first, first
        warning = proc.stderr.readline()
        assert "WARNING" in warning and "other machines" in warning
    finally:
        proc.terminate()
        proc.wait(10)
    done = subprocess.run([sys.executable, "-m", "framepack_widgets.simulator", "--port", "-5"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "Traceback" not in done.stderr and "--port" in done.stderr
    loop = subprocess.Popen([sys.executable, "-m", "framepack_widgets.simulator", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert loop.stdout is not None
        assert "127.0.0.1:" in loop.stdout.readline()
    finally:
        loop.terminate()
        _, err = loop.communicate(timeout=10)
    assert "WARNING" not in err
