"""`framepack record` and `TraceRecorder`: one run's exchange as a trace, safe to share.

What a trace may never hold: the API key, image data (base64, data: URIs) and signed URL
query strings. What it must hold: the create reply and every poll, readable by the
simulator's replay.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx
import pytest

from framepack_widgets import cli
from framepack_widgets.client import AsyncClient, Client, TraceRecorder
from framepack_widgets.client._trace import scrub
from framepack_widgets.simulator import Fault, Simulator, load_trace

KEY = "sk-RECORD-never-in-a-trace-9931"
IMAGE_B64 = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4).decode()
SIGNED = "https://img.theapi.app/temp/v.mp4?Expires=1742647898&Signature=238q7hJ7cQWShQ9F&OSSAccessKeyId=LTAI5t"


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    from PIL import Image

    path = tmp_path / "cat.jpg"
    Image.new("RGB", (96, 64), (200, 90, 40)).save(path, quality=90)
    return path


def _leaks(text: str, *secrets: str) -> list[str]:
    """What a trace's text holds that it never may."""
    found = [secret for secret in secrets if secret in text]
    if IMAGE_B64[:40] in text:
        found.append("image data")
    if "Signature=" in text or "Expires=" in text or "?" in "".join(
            part for part in text.split('"') if part.startswith("http")):
        found.append("a URL query string")
    return found


# --------------------------------------------------------------------------- the recorder


def _piapi(request: httpx.Request) -> httpx.Response:
    """A PiAPI that echoes everything a trace must not keep."""
    echo = {"prompt": "zoom in", "start_image": IMAGE_B64, "end_image": f"data:image/png;base64,{IMAGE_B64}"}
    data = {"task_id": "t-9", "status": "completed", "input": echo,
            "config": {"webhook_config": {"endpoint": "https://hooks.example/x?token=abc", "secret": "whsec-123"}},
            "output": {"video_url": SIGNED, "works": [{"video": {"resource": SIGNED}}]},
            "error": {"code": 0, "message": f"no problem with key {KEY}"}}
    if request.url.host == "upload.theapi.app":
        return httpx.Response(200, json={"code": 200, "data": {"url": "https://img.theapi.app/up/x.png?sig=zz"}})
    if request.url.host == "img.theapi.app":
        return httpx.Response(200, content=b"\x00\x00\x00\x18ftypisom" + b"\x00" * 64,
                              headers={"content-type": "video/mp4"})
    if request.method == "POST":
        return httpx.Response(200, json={"code": 200, "message": "success", "data": dict(data, status="pending")})
    return httpx.Response(200, json={"code": 200, "message": "success", "data": data})


def test_the_recorder_removes_the_key_image_data_and_signed_url_queries(tmp_path: Path) -> None:
    from framepack_widgets.inputs import FramepackInput, ImageSource

    recorder = TraceRecorder(api_key=KEY)
    http = recorder.http_client(transport=httpx.MockTransport(_piapi))  # only the wire is mocked
    with Client(KEY, http_client=http) as client:
        client._sleep = lambda s: None
        start = ImageSource(data=base64.b64decode(IMAGE_B64), mime="image/png")
        task = client.create_task(FramepackInput("zoom in", start, image_encoding="upload"))
        done = client.wait(task)
        client.download(done, tmp_path / "v.mp4")
    http.close()
    path = recorder.write(tmp_path / "trace.json", outcome=f"completed with {KEY}")
    text = path.read_text()
    assert _leaks(text, KEY, "whsec-123", "token=abc", "sig=zz") == []
    trace = json.loads(text)
    assert [e["call"] for e in trace["exchanges"]] == ["upload", "create", "get", "download"]
    create = trace["exchanges"][1]["body"]["data"]
    assert create["input"]["start_image"].startswith("<image data removed")
    assert create["input"]["end_image"].startswith("<")  # the data: URI too
    assert create["config"]["webhook_config"] == {"endpoint": "https://hooks.example/x", "secret": "<removed>"}
    get = trace["exchanges"][2]["body"]["data"]
    assert get["output"]["video_url"] == "https://img.theapi.app/temp/v.mp4"  # the path stays: the shape matters
    assert trace["exchanges"][3]["url"] == "https://img.theapi.app/temp/v.mp4"
    assert trace["exchanges"][3]["headers"]["content-type"] == "video/mp4"
    assert trace["request"]["input"]["start_image"] == "https://img.theapi.app/up/x.png"
    assert "***" in trace["outcome"] and load_trace(path).task_id == "t-9"


async def test_the_async_recorder_records_the_same(tmp_path: Path) -> None:
    recorder = TraceRecorder(api_key=KEY)
    http = recorder.async_http_client(transport=httpx.MockTransport(_piapi))
    async with AsyncClient(KEY, http_client=http) as client:
        client._sleep = _no_sleep
        task = await client.create_task({"prompt": "zoom in", "start_image": IMAGE_B64, "duration": 10})
        await client.wait(task)
    await http.aclose()
    text = recorder.write(tmp_path / "a.json").read_text()
    assert _leaks(text, KEY, "whsec-123") == []
    assert [e["call"] for e in json.loads(text)["exchanges"]] == ["create", "get"]


async def _no_sleep(seconds: float) -> None:
    return None


def test_requests_that_got_no_answer_are_listed(tmp_path: Path) -> None:
    def flaky(request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and not flaky.failed:  # type: ignore[attr-defined]
            flaky.failed = True  # type: ignore[attr-defined]
            raise httpx.ReadTimeout("slow", request=request)
        return _piapi(request)

    flaky.failed = False  # type: ignore[attr-defined]
    recorder = TraceRecorder(api_key=KEY)
    http = recorder.http_client(transport=httpx.MockTransport(flaky))
    with Client(KEY, http_client=http, poll=0.01) as client:
        client._sleep = lambda s: None
        client.wait(client.create_task({"prompt": "zoom in", "start_image": IMAGE_B64, "duration": 10}))
    trace = recorder.to_dict()
    assert [u["call"] for u in trace["unanswered"]] == ["get"]
    assert [e["call"] for e in trace["exchanges"]] == ["create", "get"]


@pytest.mark.parametrize(
    "value, expected",
    [
        ("a long prompt " * 40, "a long prompt " * 40),  # words are never taken for image data
        ("https://a.example/v.mp4#frag", "https://a.example/v.mp4"),
        ({"file_data": "abcd"}, {"file_data": "<image data removed: 4 characters>"}),
        ({"image_url": "https://a/x.png?X-Amz-Signature=1"}, {"image_url": "https://a/x.png"}),
        ({"Authorization": "Bearer x", "secret": ""}, {"Authorization": "<removed>", "secret": ""}),
        ([1, None, True], [1, None, True]),
    ],
)
def test_scrub(value: object, expected: object) -> None:
    assert scrub(value, (KEY,)) == expected


# --------------------------------------------------------------------------- framepack record


@pytest.mark.parametrize("profile", ["realistic", "rich"])
def test_record_without_a_key_uses_the_simulator_and_its_trace_replays(
    photo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], profile: str
) -> None:
    monkeypatch.setenv("FRAMEPACK_SIM_TIME_SCALE", "60")
    monkeypatch.setenv("FRAMEPACK_SIM_PROFILE", profile)
    out = tmp_path / "out" / "run.trace.json"
    code = cli.main(["record", str(photo), "--prompt", "camera zooms in", "-o", str(out)])
    captured = capsys.readouterr()
    assert code == cli.EXIT_OK, captured.err
    assert captured.out.strip() == str(out) and "bug report" in captured.err and "simulator" in captured.err
    assert (tmp_path / "out" / "run.mp4").read_bytes()[4:8] == b"ftyp"
    trace = load_trace(out)
    calls = [e.call for e in trace.exchanges]
    assert calls[0] == "create" and "get" in calls and calls[-1] == "download" and trace.outcome == "completed"
    assert trace.request["input"]["start_image"].startswith("<image data removed")
    last = trace.of("get")[-1].body["data"]
    assert (last["output"].get("percent") is None) and last["status"] == "completed"
    processing = [e.body["data"] for e in trace.of("get") if e.body["data"]["status"] == "processing"]
    if profile == "realistic":
        assert all(d["output"] is None and d["logs"] == [] for d in processing)
    with Simulator(replay=out, long_side=96) as sim, Client(sim.api_key, base_url=sim.base_url, poll=0.02) as client:
        task = client.create_task({"prompt": "zoom in", "start_image": IMAGE_B64, "duration": 10})
        assert client.wait(task, timeout=60).video_url


def test_record_against_an_api_keeps_the_key_out_and_writes_the_trace_of_a_failed_run(
    photo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with Simulator(time_scale=60, faults=[Fault.fail_task("GPU out of memory", after_seconds=0)]) as sim:
        monkeypatch.setenv("PIAPI_API_KEY", sim.api_key)
        monkeypatch.setenv("PIAPI_BASE_URL", sim.base_url)
        out = tmp_path / "failed.json"
        code = cli.main(["record", str(photo), "--prompt", "zoom in", "-o", str(out)])
    captured = capsys.readouterr()
    assert code == cli.EXIT_TASK_FAILED and "GPU out of memory" in captured.err
    text = out.read_text()
    assert _leaks(text, sim.api_key) == [] and sim.api_key not in captured.err + captured.out
    trace = load_trace(out)
    assert trace.outcome.startswith("TaskFailedError") and "GPU out of memory" in trace.outcome
    assert trace.of("get")[-1].body["data"]["status"] == "failed"
    assert not (tmp_path / "failed.mp4").exists()


def test_record_bad_input_exits_2_and_writes_nothing(photo: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "t.json"
    assert cli.main(["record", str(photo), "--prompt", "zoom in", "--duration", "3", "-o", str(out)]) == cli.EXIT_BAD_INPUT
    assert not out.exists() and "duration" in capsys.readouterr().err.lower()


def test_record_is_listed_in_the_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert "record" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.main(["record", "--help"])
    assert "bug reports" in capsys.readouterr().out


# --------------------------------------------------------------------------- issue 18: paths checked before paying
@pytest.mark.parametrize("where", ["-o under a file", "-o unwritable", "--video under a file", "--video unwritable",
                                   "--video a folder's parent is a file"])
def test_record_checks_every_path_before_anything_is_sent(
        where: str, photo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    bad = {"under a file": str(blocker / "x.out"), "unwritable": "/proc/framepack-nowhere/x.out",
           "a folder's parent is a file": str(blocker / "sub" / "deeper" / "x.mp4")}[where.split(" ", 1)[1]]
    option = where.split(" ", 1)[0]
    args = ["record", str(photo), "--prompt", "zoom in", "-o", str(tmp_path / "t.trace.json")]
    args += [option, bad] if option == "--video" else []
    if option == "-o":
        args[-1] = bad
    with Simulator(time_scale=60, long_side=64) as sim:
        monkeypatch.setenv("PIAPI_API_KEY", sim.api_key)
        monkeypatch.setenv("PIAPI_BASE_URL", sim.base_url)
        code = cli.main(args)
        assert sim.count("create") == 0 and sim.count("upload") == 0
    err = capsys.readouterr().err
    assert code == cli.EXIT_BAD_INPUT, err
    assert option in err and "Nothing was sent" in err and "Traceback" not in err
    assert blocker.read_text() == "x"


def test_record_into_a_folder_puts_the_trace_and_video_inside(
        photo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("FRAMEPACK_SIM_TIME_SCALE", "60")
    folder = tmp_path / "reports"
    folder.mkdir()
    videos = tmp_path / "videos"
    videos.mkdir()
    code = cli.main(["record", str(photo), "--prompt", "zoom in", "-o", str(folder), "--video", str(videos)])
    assert code == cli.EXIT_OK, capsys.readouterr().err
    assert (folder / "cat.trace.json").is_file() and (videos / "cat.mp4").read_bytes()[4:8] == b"ftyp"
