"""`framepack generate` end to end, and one exit code per kind of problem."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from framepack_widgets import cli
from framepack_widgets.simulator import Fault, Simulator

av = pytest.importorskip("av")


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (900, 600), (40, 90, 200))
    ImageDraw.Draw(image).ellipse((300, 150, 600, 450), fill=(250, 180, 30))
    path = tmp_path / "photo.jpg"
    image.save(path, quality=90)
    return path


@pytest.fixture
def fast_sim(monkeypatch: pytest.MonkeyPatch):
    """A simulator the CLI reaches through PIAPI_API_KEY/PIAPI_BASE_URL, as with the real API."""
    with Simulator(time_scale=40) as sim:
        monkeypatch.setenv("PIAPI_API_KEY", sim.api_key)
        monkeypatch.setenv("PIAPI_BASE_URL", sim.base_url)
        yield sim


def _video_seconds(path: Path) -> float:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        frames = sum(1 for _ in container.decode(video=0))
        return frames / float(stream.average_rate)


def test_generate_without_a_key_uses_the_simulator_and_writes_a_video(
    photo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FRAMEPACK_SIM_TIME_SCALE", "40")
    out = tmp_path / "out.mp4"
    code = cli.main(["generate", str(photo), "--prompt", "camera zooms in slowly", "--duration", "10", "-o", str(out)])
    captured = capsys.readouterr()
    assert code == cli.EXIT_OK, captured.err
    assert "offline simulator" in captured.err and "synthetic" in captured.err
    assert "completed" in captured.err  # the live status line saw the end
    assert captured.out.strip() == str(out)
    assert abs(_video_seconds(out) - 10.0) <= 1 / 30


def test_generate_against_an_api_reports_status_and_never_prints_the_key(
    photo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "nested" / "clip.mp4"
    with Simulator(time_scale=20) as sim:  # slow enough that a look lands while it processes
        monkeypatch.setenv("PIAPI_API_KEY", sim.api_key)
        monkeypatch.setenv("PIAPI_BASE_URL", sim.base_url)
        code = cli.main(["generate", str(photo), "--prompt", "pan left", "--duration", "11", "-o", str(out)])
    captured = capsys.readouterr()
    assert code == cli.EXIT_OK, captured.err
    assert "processing" in captured.err
    assert sim.api_key not in captured.err + captured.out
    assert abs(_video_seconds(out) - 11.0) <= 1 / 30


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--duration", "9"], "10"),
        (["--duration", "ten"], "duration"),
        (["--duration", "10.5"], "duration"),
        (["--prompt", "   "], "prompt"),
    ],
)
def test_bad_input_exits_2_and_sends_nothing(
    photo: Path, fast_sim: Simulator, capsys: pytest.CaptureFixture[str], args: list[str], needle: str
) -> None:
    argv = ["generate", str(photo), "--prompt", "zoom in", *args]
    assert cli.main(argv) == cli.EXIT_BAD_INPUT
    assert needle in capsys.readouterr().err.lower()
    assert not [r for r in fast_sim.requests if r.endpoint == "create"]


def test_missing_image_exits_2(tmp_path: Path, fast_sim: Simulator, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["generate", str(tmp_path / "nope.jpg"), "--prompt", "zoom in"]) == cli.EXIT_BAD_INPUT
    assert "nope.jpg" in capsys.readouterr().err


def test_failed_task_exits_4_with_the_api_message(
    photo: Path, tmp_path: Path, fast_sim: Simulator, capsys: pytest.CaptureFixture[str]
) -> None:
    fast_sim.inject(Fault.fail_task("GPU out of memory"))
    code = cli.main(["generate", str(photo), "--prompt", "zoom in", "-o", str(tmp_path / "x.mp4")])
    assert code == cli.EXIT_TASK_FAILED
    assert "GPU out of memory" in capsys.readouterr().err
    assert not (tmp_path / "x.mp4").exists()


def test_timeout_exits_5(photo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    with Simulator(time_scale=1) as sim:
        monkeypatch.setenv("PIAPI_API_KEY", sim.api_key)
        monkeypatch.setenv("PIAPI_BASE_URL", sim.base_url)
        code = cli.main(["generate", str(photo), "--prompt", "zoom in", "--timeout", "1", "-o", str(tmp_path / "x.mp4")])
    assert code == cli.EXIT_TIMEOUT
    assert "task" in capsys.readouterr().err.lower()


def test_wrong_key_exits_3(photo: Path, fast_sim: Simulator, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("PIAPI_API_KEY", "sk-wrong-0123456789")
    assert cli.main(["generate", str(photo), "--prompt", "zoom in"]) == cli.EXIT_API_ERROR
    err = capsys.readouterr().err
    assert "sk-wrong-0123456789" not in err
    assert "key" in err.lower()


def test_unknown_submission_exits_6_and_is_not_resent(
    photo: Path, fast_sim: Simulator, capsys: pytest.CaptureFixture[str]
) -> None:
    fast_sim.inject(Fault.drop_after_body("create"))
    assert cli.main(["generate", str(photo), "--prompt", "zoom in"]) == cli.EXIT_SUBMISSION_UNKNOWN
    assert len([r for r in fast_sim.requests if r.endpoint == "create"]) == 1
    err = capsys.readouterr().err.lower()
    assert "task list" in err and "not sent again" in err


def test_console_script_is_installed_and_shows_help() -> None:
    exe = Path(sys.executable).with_name("framepack")
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "framepack_widgets.cli"]
    result = subprocess.run([*command, "generate", "--help"], capture_output=True, text=True, env=dict(os.environ))
    assert result.returncode == 0
    assert "--prompt" in result.stdout and "--end-image" in result.stdout


def test_sweep_subcommand_is_wired(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["sweep", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--max-cost" in out and "--prompt" in out


def test_simulator_subcommand_is_wired(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["simulator", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--port" in out and "--state-dir" in out


# --------------------------------------------------------------------------- checked before anything is paid for
@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--timeout", "0"], "--timeout must be a number above 0"),
        (["--timeout", "-1"], "--timeout must be a number above 0"),
        (["--sim-time-scale", "0"], "--sim-time-scale must be a number above 0"),
        (["--sim-time-scale", "nan"], "--sim-time-scale must be a number above 0"),
    ],
)
@pytest.mark.parametrize("command", ["generate", "sweep"])
def test_bad_numbers_exit_2_before_anything_is_sent(
    command: str, extra: list[str], words: str, photo: Path, tmp_path: Path, fast_sim: Simulator,
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = [command, str(photo), "--prompt", "pan left", "-o", str(tmp_path / "o"), *extra]
    code = cli.main(argv + (["--yes"] if command == "sweep" else []))
    err = capsys.readouterr().err
    assert code == cli.EXIT_BAD_INPUT and words in err and "Traceback" not in err
    assert fast_sim.count("create") == 0


def test_an_output_under_a_file_exits_2_before_anything_is_sent(
    photo: Path, tmp_path: Path, fast_sim: Simulator, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    code = cli.main(["generate", str(photo), "--prompt", "pan left", "-o", str(blocker / "out.mp4")])
    err = capsys.readouterr().err
    assert code == cli.EXIT_BAD_INPUT and "is a file" in err and err.count("\n") == 1
    code = cli.main(["sweep", str(photo), "--prompt", "a", "--prompt", "b", "-o", str(blocker), "--yes"])
    err = capsys.readouterr().err
    assert code == cli.EXIT_BAD_INPUT and "is a file, not a folder" in err
    assert fast_sim.count("create") == 0 and blocker.read_text() == "x"


def test_a_bad_base_url_exits_2_with_one_line(photo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PIAPI_API_KEY", "k-for-a-bad-url")
    monkeypatch.setenv("PIAPI_BASE_URL", "ftp://x")
    for argv in (["generate", str(photo), "--prompt", "pan", "-o", str(tmp_path / "o.mp4")],
                 ["sweep", str(photo), "--prompt", "pan", "--yes", "-o", str(tmp_path / "s")]):
        code = cli.main(argv)
        err = capsys.readouterr().err
        assert code == cli.EXIT_BAD_INPUT and "ftp://x" in err and "Traceback" not in err
        assert "k-for-a-bad-url" not in err


def test_a_video_that_cannot_be_written_still_names_the_task(
    photo: Path, tmp_path: Path, fast_sim: Simulator, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from framepack_widgets.client import Client

    def full(self: Client, task: object, path: object) -> Path:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Client, "download", full)
    code = cli.main(["generate", str(photo), "--prompt", "pan left", "-o", str(tmp_path / "out.mp4")])
    err = capsys.readouterr().err
    assert code != cli.EXIT_OK and "No space left" in err
    [task_id] = [t for t in fast_sim.tasks]
    assert f"the task is {task_id}" in err and "its video: http" in err


def test_sigterm_during_a_sweep_cancels_what_was_not_sent_and_reports_every_run(
    photo: Path, tmp_path: Path
) -> None:
    """A closed terminal or a `kill` is handled like Ctrl-C: queued runs are cancelled (never sent
    later), runs already sent are reported with their task ids."""
    import signal
    import time

    from framepack_widgets.runs import RunStage, RunStore

    env = {**os.environ, "FRAMEPACK_HOME": str(tmp_path / "home"), "FRAMEPACK_SIM_TIME_SCALE": "1"}
    env.pop("PIAPI_API_KEY", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "framepack_widgets.cli", "sweep", str(photo), "--prompt", "a", "--prompt", "b",
         "--prompt", "c", "--max-concurrent", "1", "--yes", "-o", str(tmp_path / "out")],
        env=env, stderr=subprocess.PIPE, text=True,
    )
    assert proc.stderr is not None
    lines: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        lines.append(line)
        if "pending" in line:  # the first run is at the (simulated) API
            break
    proc.send_signal(signal.SIGTERM)
    rest = proc.stderr.read()
    assert proc.wait(30) == cli.EXIT_INTERRUPTED, "".join(lines) + rest
    assert "2 run(s) not yet sent were cancelled" in rest and "interrupted" in rest
    assert "run 2 ('b') ended cancelled" in rest and "run 3 ('c') ended cancelled" in rest
    with RunStore(tmp_path / "home") as store:
        stages = sorted(r.stage.value for r in store.list())
    assert stages.count("cancelled") == 2 and RunStage.QUEUED.value not in stages


# --------------------------------------------------------------------------- issue 18: words for the command line
PYTHON_WORDS = ("wait(", "timeout=", "api_key=", "allow_http=", "image_encoding=", "Simulator(", "client.", "()")


def _no_python_words(text: str) -> None:
    for words in PYTHON_WORDS:
        assert words not in text, f"a command-line user is told {words!r}: {text}"


def test_a_timeout_tells_the_command_line_what_to_do_in_its_own_words(
        photo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    with Simulator(time_scale=1) as sim:
        monkeypatch.setenv("PIAPI_API_KEY", sim.api_key)
        monkeypatch.setenv("PIAPI_BASE_URL", sim.base_url)
        code = cli.main(["generate", str(photo), "--prompt", "zoom in", "--timeout", "1", "-o", str(tmp_path / "x.mp4")])
    err = capsys.readouterr().err
    assert code == cli.EXIT_TIMEOUT and "--timeout" in err
    _no_python_words(err)


def test_a_clear_text_base_url_tells_the_command_line_the_variable_to_set(
        photo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PIAPI_API_KEY", "sk-live-0123456789")
    monkeypatch.setenv("PIAPI_BASE_URL", "http://10.1.2.3:8080")
    for command in ("generate", "record"):
        assert cli.main([command, str(photo), "--prompt", "zoom in", "-o", str(tmp_path / "x")]) == cli.EXIT_BAD_INPUT
        err = capsys.readouterr().err
        assert "PIAPI_ALLOW_HTTP=1" in err
        _no_python_words(err)


def test_a_wrong_key_and_a_missing_video_are_said_in_command_line_words(
        photo: Path, tmp_path: Path, fast_sim: Simulator, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    fast_sim.inject(Fault.url_lag(100))
    assert cli.main(["generate", str(photo), "--prompt", "zoom in", "-o", str(tmp_path / "x.mp4")]) != cli.EXIT_OK
    lagged = capsys.readouterr().err
    assert "no video URL" in lagged
    monkeypatch.setenv("PIAPI_API_KEY", "sk-wrong-0123456789")
    assert cli.main(["generate", str(photo), "--prompt", "zoom in", "-o", str(tmp_path / "y.mp4")]) == cli.EXIT_API_ERROR
    refused = capsys.readouterr().err
    assert "PIAPI_API_KEY" in refused
    _no_python_words(lagged + refused)


def test_the_banner_calls_a_loopback_api_with_a_real_key_piapi_not_the_simulator(
        photo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    with Simulator(time_scale=60, api_key="sk-live-looks-real-123456") as proxy:  # e.g. a local proxy to PiAPI
        monkeypatch.setenv("PIAPI_API_KEY", proxy.api_key)
        monkeypatch.setenv("PIAPI_BASE_URL", proxy.base_url)
        proxy.inject(Fault.status_code(503, "create", times=None))
        cli.main(["generate", str(photo), "--prompt", "zoom in", "-o", str(tmp_path / "x.mp4")])
    err = capsys.readouterr().err
    first = err.splitlines()[0]
    assert "simulator" not in first.lower() and f"127.0.0.1:{proxy.port}" in first and "costs $" in first


def test_a_sweep_run_that_may_have_been_charged_is_explained_in_command_line_words(
        photo: Path, tmp_path: Path, fast_sim: Simulator, capsys: pytest.CaptureFixture[str]) -> None:
    fast_sim.inject(Fault.drop_after_body("create"))
    code = cli.main(["sweep", str(photo), "--prompt", "zoom in", "--yes", "-o", str(tmp_path / "s")])
    err = capsys.readouterr().err
    assert code == cli.EXIT_SUBMISSION_UNKNOWN and fast_sim.count("create") == 1
    assert "task list" in err and "FRAMEPACK_HOME" in err  # the money advice stays; the Python calls go
    _no_python_words(err)
    for words in ("runner.", "rerun(", "attach("):
        assert words not in err, err
