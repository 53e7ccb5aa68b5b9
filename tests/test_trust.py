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
        # No answer makes a Task with such an id (task.check_task_id); one made by hand still stays in the folder.
        for task_id in ("../../escaped", "/etc/passwd", "a/b\\c", "..", "\x00", "a..b", "t:1", "x" * 256):
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
    assert Client(KEY, base_url="http://127.0.0.1:8765").base_url == "http://127.0.0.1:8765"  # this machine: fine
    assert Client(KEY, base_url="http://localhost:8765").base_url == "http://localhost:8765"
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


# =========================================================================== issue 18: the second audit
from framepack_widgets.errors import APIStatusError, FramepackError  # noqa: E402
from framepack_widgets.inputs import FramepackInput, ImageSource  # noqa: E402

OTHER_HOST = "elsewhere.example"
REDIRECTS = (301, 302, 303, 307, 308)
CALLS = ("create", "get", "cancel", "account", "upload")


class TwoHosts:
    """The API, which answers every request with a redirect to another host, and that other
    host, which records whatever reaches it (a key, a create body)."""

    def __init__(self, status: int) -> None:
        self.status = status
        self.api: list[httpx.Request] = []
        self.other: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == OTHER_HOST:
            self.other.append(request)
            return httpx.Response(200, json={"code": 200, "data": {"task_id": "stolen", "status": "pending",
                                                                   "url": "https://x.example/y.png"}})
        self.api.append(request)
        return httpx.Response(self.status, headers={"location": f"https://{OTHER_HOST}/collect?token=LOCATIONQUERY"})


def _upload_input() -> FramepackInput:
    return FramepackInput("the camera pans left", ImageSource(data=b"\x89PNG fake", mime="image/png"),
                          image_encoding="upload")


def _call_sync(client: Client, call: str) -> object:
    return {
        "create": lambda: client.create_task(URL_INPUT),
        "get": lambda: client.get_task("t1"),
        "cancel": lambda: client.cancel("t1"),
        "account": lambda: client.account_info(),
        "upload": lambda: client.create_task(_upload_input()),
    }[call]()


async def _call_async(client: AsyncClient, call: str) -> object:
    return await {
        "create": lambda: client.create_task(URL_INPUT),
        "get": lambda: client.get_task("t1"),
        "cancel": lambda: client.cancel("t1"),
        "account": lambda: client.account_info(),
        "upload": lambda: client.create_task(_upload_input()),
    }[call]()


def _check_redirect_refused(exc: BaseException, call: str, status: int, hosts: TwoHosts) -> None:
    assert hosts.other == [], "a request (with the key) reached the other host"
    assert len(hosts.api) == 1, "a redirect is not an answer worth repeating"
    text = str(exc)
    assert KEY not in _everything_shown(exc) and "LOCATIONQUERY" not in text
    assert "redirect" in text.lower() and OTHER_HOST in text
    if call == "create":
        assert isinstance(exc, SubmissionUnknownError) and "may have" in text
    else:
        assert isinstance(exc, APIStatusError) and exc.status_code == status
        if call == "upload":
            assert "No task was created" in text


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize("status", REDIRECTS)
def test_a_redirect_never_carries_the_key_to_another_host(status: int, call: str) -> None:
    hosts = TwoHosts(status)
    http = httpx.Client(follow_redirects=True, transport=httpx.MockTransport(hosts))  # the caller's choice
    with Client(KEY, base_url="https://api.piapi.ai", http_client=http) as client:
        client._sleep = lambda _s: None
        with pytest.raises(FramepackError) as info:
            _call_sync(client, call)
    _check_redirect_refused(info.value, call, status, hosts)


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize("status", REDIRECTS)
async def test_a_redirect_never_carries_the_key_to_another_host_async(status: int, call: str) -> None:
    hosts = TwoHosts(status)
    http = httpx.AsyncClient(follow_redirects=True, transport=httpx.MockTransport(hosts))

    async def no_wait(_s: float) -> None:
        return None

    async with AsyncClient(KEY, base_url="https://api.piapi.ai", http_client=http) as client:
        client._sleep = no_wait
        with pytest.raises(FramepackError) as info:
            await _call_async(client, call)
    await http.aclose()
    _check_redirect_refused(info.value, call, status, hosts)


def test_a_redirect_over_real_loopback_reaches_nobody_else() -> None:
    with Simulator(time_scale=50, long_side=64) as api, Simulator(time_scale=50, long_side=64) as thief:
        for call, status in (("create", 307), ("get", 308), ("cancel", 302), ("account", 301), ("upload", 303)):
            api.inject(Fault.redirect(status, call, location=f"{thief.base_url}/api/v1/task"))
            with Client(api.api_key, base_url=api.base_url, http_client=httpx.Client(follow_redirects=True)) as client:
                with pytest.raises(FramepackError) as info:
                    _call_sync(client, call)
            assert isinstance(info.value, SubmissionUnknownError if call == "create" else APIStatusError), info.value
            assert api.api_key not in str(info.value)
        assert thief.requests == [] and len(api.tasks) == 0


# ---- 2. a trace keeps no URL secrets and no data: URI, wherever they sit in its text
SIGNED_WITH_PASSWORD = "https://someone:hunter2-PASSWORD@cdn.example/in.png?X-Amz-Signature=SIGNED123"
DATA_URI = "data:image/png;base64," + "QUJDRA" * 40


def test_a_trace_drops_url_secrets_and_data_uris_inside_any_text(tmp_path: Path) -> None:
    from framepack_widgets.client import TraceRecorder

    said = f"could not fetch {SIGNED_WITH_PASSWORD}; got {DATA_URI} (len)"
    gets = iter([httpx.Response(500, text=f"upstream said: {said}"),
                 httpx.Response(200, json={"code": 200, "data": {"task_id": "t9", "status": "failed",
                                                                 "logs": [said], "error": {"message": said}}})])

    def api(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(200, json={"code": 200, "message": said, "data": {"task_id": "t9", "status": "pending"}})
        return next(gets)

    recorder = TraceRecorder(api_key=KEY)
    with Client(KEY, base_url="https://api.piapi.ai", http_client=recorder.http_client(
            transport=httpx.MockTransport(api)), poll=0.01) as client:
        client._sleep = lambda _s: None
        with pytest.raises(TaskFailedError) as failed:
            client.wait(client.create_task(URL_INPUT), timeout=30)
    text = recorder.write(tmp_path / "t.json", outcome=str(failed.value)).read_text()
    for secret in ("hunter2-PASSWORD", "someone:", "SIGNED123", "QUJDRAQUJDRA"):
        assert secret not in text, secret
    assert "https://cdn.example/in.png" in text and "data URI removed" in text


def test_log_lines_keep_no_url_secrets(tmp_path: Path) -> None:
    import logging

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    loggers = [logging.getLogger(name) for name in ("httpx", "framepack_widgets")]
    saved = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.DEBUG)
        lg.addHandler(handler)

    def api(request: httpx.Request) -> httpx.Response:
        if request.url.host == "cdn.example":
            return httpx.Response(200, content=b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64)
        # a create refused with a message, but naming a task: the client logs a warning with the message
        return httpx.Response(200, json={"code": 500, "message": f"see {SIGNED_WITH_PASSWORD} and {DATA_URI}",
                                         "data": {"task_id": "t9", "status": "pending"}})

    try:
        with Client(KEY, base_url="https://api.piapi.ai", http_client=httpx.Client(
                transport=httpx.MockTransport(api))) as client:
            client.create_task(URL_INPUT)
            client.download(SIGNED_WITH_PASSWORD.replace("in.png", "v.mp4"), tmp_path / "v.mp4")
    finally:
        for lg, level in zip(loggers, saved):
            lg.removeHandler(handler)
            lg.setLevel(level)
    logged = stream.getvalue()
    assert "cdn.example" in logged  # the lines are there...
    for secret in ("hunter2-PASSWORD", "SIGNED123", "QUJDRAQUJDRA"):  # ...without their secrets
        assert secret not in logged, (secret, logged)


# ---- 3. a password in the base URL shows nowhere
PASSWORD = "pw-HUNTER2-in-the-url"


def _proxy(port: int, host: str = "127.0.0.1") -> str:
    return f"http://someone:{PASSWORD}@{host}:{port}"


def _no_password(text: str) -> None:
    assert PASSWORD not in text and "someone:" not in text, text


def test_a_password_in_the_base_url_is_not_in_repr_nor_base_url() -> None:
    client = Client(KEY, base_url=_proxy(8080, "proxy.example"), allow_http=True)
    _no_password(repr(client) + client.base_url)
    assert client.base_url == "http://proxy.example:8080"
    with pytest.raises(InvalidInputError) as info:
        Client(KEY, base_url=_proxy(8080, "10.1.2.3"))
    _no_password(str(info.value))
    assert "http://10.1.2.3:8080" in str(info.value)


def _scripted(answers: dict[str, httpx.Response | Exception]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        reply = answers["create" if request.method == "POST" else "get"]
        if isinstance(reply, Exception):
            raise reply
        return reply
    return httpx.MockTransport(handler)


ERROR_ANSWERS: dict[str, dict[str, httpx.Response | Exception]] = {
    "400": {"get": httpx.Response(400, json={"code": 400, "message": "bad"})},
    "401": {"get": httpx.Response(401, json={"code": 401, "message": "who"})},
    "402": {"get": httpx.Response(402, json={"code": 402, "message": "pay"})},
    "403": {"get": httpx.Response(403, json={"code": 403, "message": "no"})},
    "404": {"get": httpx.Response(404, json={"code": 404, "message": "gone"})},
    "409": {"get": httpx.Response(409, json={"code": 409, "message": "conflict"})},
    "429": {"get": httpx.Response(429, json={"code": 429, "message": "slow down"})},
    "500": {"get": httpx.Response(500, json={"code": 500, "message": "oops"})},
    "code 10002": {"get": httpx.Response(200, json={"code": 10002, "message": "odd"})},
    "malformed": {"get": httpx.Response(200, text="<html>")},
    "redirect": {"get": httpx.Response(307, headers={"location": "https://elsewhere.example/"})},
    "timeout": {"get": httpx.ReadTimeout("slow")},
    "create 500": {"create": httpx.Response(500, json={"code": 500, "message": "oops"})},
    "create refused": {"create": httpx.Response(400, json={"code": 400, "message": "bad"})},
    "create cut off": {"create": httpx.RemoteProtocolError("cut")},
    "failed task": {"get": httpx.Response(200, json={"code": 200, "data": {"task_id": "t1", "status": "failed",
                                                                          "error": {"message": "GPU"}}})},
    "wait timeout": {"get": httpx.Response(200, json={"code": 200, "data": {"task_id": "t1", "status": "pending"}})},
}


@pytest.mark.parametrize("case", sorted(ERROR_ANSWERS))
def test_a_password_in_the_base_url_is_in_no_error_message(case: str) -> None:
    answers = ERROR_ANSWERS[case]
    with Client(KEY, base_url=_proxy(8080), http_client=httpx.Client(transport=_scripted(answers)),
                max_retries=0) as client:
        client._sleep = lambda _s: None
        with pytest.raises(FramepackError) as info:
            if "create" in answers:
                client.create_task(URL_INPUT)
            elif case == "wait timeout":
                client.wait("t1", timeout=0)
            else:
                client.wait("t1", timeout=0.01) if case == "failed task" else client.get_task("t1")
    _no_password(_everything_shown(info.value))


def test_a_password_in_the_base_url_is_in_no_connection_error() -> None:
    with Client(KEY, base_url=_proxy(_closed_port()), max_retries=0) as client:
        with pytest.raises(APIConnectionError) as info:
            client.get_task("t1")
    _no_password(_everything_shown(info.value))


def test_a_password_in_the_base_url_stays_out_of_the_cli_banner(tmp_path: Path) -> None:
    from PIL import Image

    image = tmp_path / "a.jpg"
    Image.new("RGB", (96, 64), (9, 99, 199)).save(image)
    with Simulator(time_scale=60, long_side=64) as sim:
        env = {**os.environ, "PIAPI_API_KEY": sim.api_key, "PIAPI_BASE_URL": _proxy(sim.port),
               "FRAMEPACK_HOME": str(tmp_path / "home")}
        for args in (["generate", str(image), "--prompt", "zoom in", "-o", str(tmp_path / "g.mp4")],
                     ["record", str(image), "--prompt", "zoom in", "-o", str(tmp_path / "r.trace.json")]):
            done = subprocess.run([sys.executable, "-m", "framepack_widgets.cli", *args], capture_output=True,
                                  text=True, env=env, timeout=120)
            assert done.returncode == 0, done.stderr
            assert f"127.0.0.1:{sim.port}" in done.stderr, done.stderr  # the banner names where it sends
            _no_password(done.stdout + done.stderr)
        _no_password((tmp_path / "r.trace.json").read_text())


async def test_a_password_in_the_base_url_never_reaches_the_store(tmp_path: Path) -> None:
    from framepack_widgets import FramepackWidget
    from framepack_widgets.runs import RunStore

    store = RunStore(tmp_path / "store")
    async with AsyncClient(KEY, base_url=_proxy(_closed_port()), max_retries=0) as client:
        w = FramepackWidget(client, store=store, resume=False)
        w.send = lambda content, buffers=None: None  # type: ignore[method-assign]
        png = io.BytesIO()
        from PIL import Image

        Image.new("RGB", (96, 64), (9, 99, 199)).save(png, "PNG")
        w.start_image, w.prompt = png.getvalue(), "zoom in"
        run = await w.generate()
        assert run.error and "127.0.0.1" in run.error  # it says where it could not connect...
        w.close()
    store.close()
    stored = b"".join(p.read_bytes() for p in (tmp_path / "store").rglob("*") if p.is_file())
    assert b"runs" in stored or len(stored) > 0
    assert PASSWORD.encode() not in stored and b"someone:" not in stored  # ...without the password


# ---- 4. only literal loopback addresses and localhost itself are this machine
@pytest.mark.parametrize("url, here", [
    ("http://localhost:8080", True), ("http://127.0.0.1:1", True), ("http://127.9.9.9", True),
    ("http://[::1]:80", True), ("http://api.localhost:8080", False), ("http://localhost.evil.example", False),
    ("http://a.b.localhost", False), ("http://10.0.0.1", False),
])
def test_only_literal_loopback_and_localhost_count_as_this_machine(url: str, here: bool) -> None:
    from framepack_widgets.client._settings import is_loopback_url

    assert is_loopback_url(url) is here
    if here:
        Client(KEY, base_url=url).close()  # a key to this machine in clear text: fine
    else:
        with pytest.raises(InvalidInputError, match="unencrypted"):
            Client(KEY, base_url=url)


# ---- 5. the simulator's state is private, even in a home that was not
def test_the_simulators_state_is_private_even_in_a_loose_home(tmp_path: Path) -> None:
    import stat

    home = tmp_path / "home"
    state = home / "simulator"
    state.mkdir(parents=True)
    os.chmod(home, 0o755)
    os.chmod(state, 0o755)
    old = os.umask(0o022)
    try:
        with Simulator(time_scale=100, long_side=64, state_dir=state) as sim:
            with Client(sim.api_key, base_url=sim.base_url, poll=0.05) as client:
                png = io.BytesIO()
                from PIL import Image

                Image.new("RGB", (96, 64), (9, 99, 199)).save(png, "PNG")
                task = client.create_task(FramepackInput("zoom in", png.getvalue(), image_encoding="upload"))
                client.wait(task, timeout=60)
    finally:
        os.umask(old)
    paths = [state, *state.rglob("*")]
    assert any(p.suffix == ".mp4" for p in paths) and any(p.name.startswith("state.sqlite3") for p in paths)
    assert any(p.parent.name == "uploads" for p in paths) and any(p.parent.name == "images" for p in paths)
    loose = {str(p.relative_to(home)): oct(p.stat().st_mode & 0o777) for p in paths
             if stat.S_IMODE(p.stat().st_mode) != (0o700 if p.is_dir() else 0o600)}
    assert loose == {}


# ---- 11. a hostile task id from the API is a typed error; on a create, the task may exist
HOSTILE_IDS = {"70,000 characters": "a" * 70_000, "a control character": "t1\x07x", "a NUL": "t1\x00",
               "a slash": "../../etc/passwd", "a space": "t 1", "a newline": "t1\nInjected: yes"}


@pytest.mark.parametrize("name", sorted(HOSTILE_IDS))
def test_a_hostile_task_id_from_the_api_is_a_typed_error(name: str) -> None:
    hostile = HOSTILE_IDS[name]
    creates: list[httpx.Request] = []

    def api(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            creates.append(request)
        return httpx.Response(200, json={"code": 200, "data": {"task_id": hostile, "status": "pending"}})

    with Client(KEY, base_url="https://api.piapi.ai", http_client=httpx.Client(transport=httpx.MockTransport(api)),
                max_retries=1) as client:
        client._sleep = lambda _s: None
        with pytest.raises(SubmissionUnknownError) as created:
            client.generate(URL_INPUT, timeout=5)
        assert len(creates) == 1 and "may have" in str(created.value) and "task id" in str(created.value)
        with pytest.raises(FramepackError) as got:
            client.get_task("t1")
        assert "task id" in str(got.value)
        with pytest.raises(InvalidInputError, match="task id"):
            client.get_task(hostile)
        with pytest.raises(InvalidInputError, match="task id"):
            client.wait(hostile, timeout=1)
    with pytest.raises(InvalidInputError, match="task id"):
        Task.from_data({"task_id": hostile, "status": "pending"})


# ---- 13. only the simulator is called the simulator
def test_a_loopback_api_with_a_real_key_is_not_the_simulator() -> None:
    proxy = Client("sk-live-real-key-123", base_url="http://127.0.0.1:8080")
    assert not proxy.is_simulator and "simulator=False" in repr(proxy)
    with Simulator(time_scale=50) as sim:
        assert Client(sim.api_key, base_url=sim.base_url).is_simulator  # made for the simulator
        with Client("a-key-of-my-own", base_url=sim.base_url, max_retries=0) as client:
            with pytest.raises(AuthenticationError):
                client.get_task("t1")
            assert client.is_simulator  # it said so in its answer


def test_a_password_in_the_base_url_still_reaches_its_proxy_and_only_it(tmp_path: Path) -> None:
    import base64

    seen: list[httpx.Request] = []

    def proxy(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.host == "cdn.example":
            return httpx.Response(200, content=b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64)
        return httpx.Response(200, json={"code": 200, "data": {"task_id": "t1", "status": "completed",
                                                               "output": {"video_url": "https://cdn.example/v.mp4"}}})

    with Client(KEY, base_url=f"https://someone:{PASSWORD}@proxy.example:8443",
                http_client=httpx.Client(transport=httpx.MockTransport(proxy))) as client:
        task = client.get_task("t1")
        client.download(task, tmp_path / "v.mp4")
    request, download = seen
    assert str(request.url) == "https://proxy.example:8443/api/v1/task/t1"  # no userinfo in any URL
    expected = "Basic " + base64.b64encode(f"someone:{PASSWORD}".encode()).decode()
    assert request.headers["authorization"] == expected  # what httpx sends for user:password@
    assert "authorization" not in download.headers and "x-api-key" not in download.headers
