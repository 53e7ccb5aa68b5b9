"""A student's tools through the class service: the package's client, the widget and the CLI,
configured only by what a hub gives a student's server (FRAMEPACK_SERVICE_URL from the
teacher's `c.Spawner.environment`, JUPYTERHUB_API_TOKEN from the hub), against the real
service in-process (the hub's token check stood in for, as in test_service_routes.py) and
the simulator as PiAPI.
"""

from __future__ import annotations

import asyncio
import io
import os
from pathlib import Path

import httpx
import pytest
from service_fixtures import IMAGE
from service_resetting_proxy import ResettingProxy

from framepack_widgets import Client, FramepackWidget, cli
from framepack_widgets.errors import PaymentRequiredError
from framepack_widgets.runs import RunStage, RunStore
from framepack_widgets.simulator import Simulator

TEACHER = {"x-api-key": "tok-teacher"}


@pytest.fixture
def student(monkeypatch: pytest.MonkeyPatch):
    """student(url): alice's server, its class service at `url` (no PiAPI key of its own)."""

    def configure(url: str, token: str = "tok-alice") -> None:
        monkeypatch.delenv("PIAPI_API_KEY", raising=False)
        monkeypatch.setenv("FRAMEPACK_SERVICE_URL", url.rstrip("/"))
        monkeypatch.setenv("JUPYTERHUB_API_TOKEN", token)

    return configure


@pytest.fixture
def image(tmp_path: Path) -> Path:
    from PIL import Image

    path = tmp_path / "lake.jpg"
    Image.new("RGB", (96, 64), (30, 120, 200)).save(path)
    return path


def _rows(service, owner: str) -> list:
    from functools import partial

    return service.call(service.service.db(partial(service.service.store.tasks, owner=owner)))


@pytest.mark.parametrize("mode", ["mid", "after"])
def test_a_create_the_network_broke_is_resent_with_its_key_and_makes_one_task(
        mode: str, sim: Simulator, make_service, student) -> None:
    service = make_service(sim)
    port = int(service.url.split(":")[2].split("/")[0])
    proxy = service.call(ResettingProxy(port, mode, resets=1).start())  # the first request breaks
    student(proxy.url + "/services/framepack")
    with Client() as client:
        client._sleep = lambda _s: None
        assert client.is_class_service and client.base_url == proxy.url + "/services/framepack"
        task = client.create_task({"prompt": "the camera zooms in", "start_image": IMAGE})
        done = client.wait(task, timeout=60)
    assert proxy.resets == 1 and proxy.passed >= 1  # the create went twice (then the wait, if it had to)
    [row] = _rows(service, "alice")
    assert row.task_id == task.task_id == done.task_id and row.idempotency_key
    assert sim.count("create") == 1  # resent with the same key: one task, one charge
    service.call(proxy.stop())


def test_over_the_class_budget_the_student_is_told_who_to_ask(sim: Simulator, make_service, student) -> None:
    service = make_service(sim, budget_usd=0.5)
    student(service.url)
    with Client() as client:
        client.create_task({"prompt": "one", "start_image": IMAGE})
        with pytest.raises(PaymentRequiredError) as refused:
            client.create_task({"prompt": "two", "start_image": IMAGE})
    assert str(refused.value) == ("Your class budget is used up ($0.20 of $0.50 left; this run costs $0.30): ask "
                                  "your teacher. No task was created, so nothing was charged.")
    assert sim.count("create") == 1


def test_the_cli_generates_through_the_service(sim: Simulator, make_service, student, image: Path,
                                               tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    service = make_service(sim)
    student(service.url)
    err = io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    out = tmp_path / "lake.mp4"
    code = cli.main(["generate", str(image), "--prompt", "the camera pans left", "-o", str(out)])
    assert code == cli.EXIT_OK, err.getvalue()
    assert f"sending to the class service at {service.url.rstrip('/')}" in err.getvalue()
    assert "simulator" not in err.getvalue().split("\n")[0]  # the service is never called the simulator
    assert out.read_bytes()[4:8] == b"ftyp"
    [row] = _rows(service, "alice")
    assert row.state == "completed" and row.idempotency_key and sim.count("create") == 1
    assert os.environ["JUPYTERHUB_API_TOKEN"] not in err.getvalue()


async def _until(check, seconds: float = 30.0) -> None:
    for _ in range(int(seconds / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the widget never got there")


async def test_the_widget_in_a_class(sim: Simulator, make_service, student, image: Path, tmp_path: Path) -> None:
    service = make_service(sim)
    student(service.url)
    store = RunStore(tmp_path / "home")
    widget = FramepackWidget(store=store, resume=False)
    widget.send = lambda content, buffers=None: None  # type: ignore[method-assign]
    assert widget.client.is_class_service and not widget.client.is_simulator
    assert "total" not in widget._class  # read when a view appears (its hello), on the loop it uses
    widget._handle_custom_msg({"type": "hello"}, [])
    await _until(lambda: widget._class.get("total") == 0.9)
    assert widget._class["left"] == 0.9 and widget.balance == ""  # the class budget stands for the balance
    assert widget._backend_label.startswith("Class service") and "synthetic" in widget._backend_label
    widget.start_image = image
    widget.prompt = "the camera zooms in"
    run = widget.generate()
    await run
    assert run.stage is RunStage.COMPLETED
    [row] = _rows(service, "alice")
    assert row.idempotency_key == run.run_id  # the run's id is its create's key
    await _until(lambda: widget._class.get("left") == 0.6)  # read again after the run

    widget._handle_custom_msg({"type": "class_share", "run_id": run.run_id, "shared": True}, [])
    await _until(lambda: run.task_id in widget._class["shared"])
    assert "class gallery" in widget._notice
    gallery = httpx.get(service.url + "teacher/api/gallery", headers=TEACHER, timeout=30).json()["data"]
    [shared] = gallery["runs"]
    assert shared["owner"] == "alice" and shared["prompt"] == "the camera zooms in"
    assert shared["video"].startswith(service.url + "videos/") and "sig=" in shared["video"]
    assert httpx.get(shared["video"], timeout=30).content[4:8] == b"ftyp"
    assert httpx.get(service.url + "teacher/api/gallery", headers={"x-api-key": "tok-bob"}).status_code == 403

    again = FramepackWidget(store=store, resume=False)  # a reopened notebook learns what it shared
    again.send = lambda content, buffers=None: None  # type: ignore[method-assign]
    again._handle_custom_msg({"type": "hello"}, [])
    await _until(lambda: run.task_id in again._class.get("shared", []))
    widget._handle_custom_msg({"type": "class_share", "run_id": run.run_id, "shared": False}, [])
    await _until(lambda: run.task_id not in widget._class["shared"])
    widget.close()
    again.close()
    await asyncio.sleep(0.05)
    store.close()


async def test_outside_a_class_the_widget_shows_none_of_it(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "home")
    widget = FramepackWidget(store=store, resume=False)
    assert widget._class == {} and not widget.client.is_class_service
    widget.close()
    store.close()


def test_the_root_tells_a_program_what_it_is(sim: Simulator, make_service) -> None:
    service = make_service(sim)
    answer = httpx.get(service.url, headers={"x-api-key": "tok-teacher"}, timeout=30).json()["data"]
    assert answer["service"] == "framepack class service" and answer["teacher"] is True
    assert answer["simulated"] is True
    files = [httpx.get(service.url + f"static/{name}", timeout=30) for name in ("teacher.js", "teacher.css")]
    assert [f.status_code for f in files] == [200, 200] and b"fpw-teacher" in files[0].content
    assert httpx.get(service.url + "static/widget.js", timeout=30).status_code == 404  # the page's files only
