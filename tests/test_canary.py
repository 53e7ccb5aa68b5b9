"""The canary key sweep: every path runs with a recognisable key against an API that echoes
that key everywhere it can, with faults; then every artefact is searched for it. Zero hits.

Artefacts: the run store's files (database, images, videos), the saved notebook, the
widget's synced state, DEBUG logs of this package, httpx and httpcore, exception chains
(verbose, with locals), exported files (run cards, a comparison video, a gallery), the
command line's output and its trace file. Also searched for: a proxy's password given in the
base URL (`http://user:password@...`), and a redirect to another host (which must see nothing).
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from framepack_widgets.client import AsyncClient, Client
from framepack_widgets.errors import FramepackError
from framepack_widgets.inputs import FramepackInput
from framepack_widgets.simulator import Fault, Simulator

CANARY = "sk-CANARY-7f3e9d1c5b2a48e6a0c4-do-not-leak"
PASSWORD = "pw-CANARY-proxy-5b2a48e6"  # in the base URL: http://someone:PASSWORD@host
FORMS = [CANARY.encode(), quote(CANARY, safe="").encode(), CANARY.encode("utf-16-le"),
         PASSWORD.encode(), PASSWORD.encode("utf-16-le")]


def _jpeg(color: tuple[int, int, int]) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (96, 64), color).save(out, "JPEG")
    return out.getvalue()


class Haystack:
    """Everything the sweep produced, by name, searched at the end."""

    def __init__(self) -> None:
        self.items: dict[str, bytes] = {}

    def add(self, name: str, data: bytes | str) -> None:
        self.items[name] = data.encode("utf-8", "replace") if isinstance(data, str) else data

    def add_files(self, name: str, folder: Path) -> int:
        count = 0
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                self.add(f"{name}/{path.relative_to(folder)}", path.read_bytes())
                count += 1
        return count

    def add_exception(self, name: str, exc: BaseException) -> None:
        shown = "".join(traceback.format_exception(exc))
        shown += "".join(traceback.TracebackException.from_exception(exc, capture_locals=True).format())
        for attr in ("request", "response", "body", "task", "last_task"):
            value = getattr(exc, attr, None)
            if value is not None:
                shown += repr(value) + repr(getattr(value, "headers", "")) + repr(getattr(value, "content", ""))
                shown += repr(getattr(value, "raw", ""))
        self.add(name, shown)

    def hits(self) -> list[str]:
        return [name for name, data in self.items.items() if any(form in data for form in FORMS)]


@pytest.fixture(scope="module")
def hostile_api() -> Any:
    with Simulator(time_scale=40, api_key=CANARY, echo_key=True, profile="rich") as sim:
        yield sim


@pytest.fixture
def logs() -> Any:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s %(args)s"))
    loggers = [logging.getLogger(name) for name in ("framepack_widgets", "httpx", "httpcore")]
    saved = [(lg.level, lg.propagate) for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.DEBUG)
        lg.addHandler(handler)
    yield stream
    for lg, (level, propagate) in zip(loggers, saved, strict=True):
        lg.removeHandler(handler)
        lg.setLevel(level)
        lg.propagate = propagate


async def test_no_path_leaves_the_key_anywhere(hostile_api: Simulator, logs: io.StringIO, tmp_path: Path) -> None:
    sim = hostile_api
    hay = Haystack()
    red, blue = _jpeg((200, 40, 40)), _jpeg((40, 40, 200))

    # --- the sync client: a completed run, a failed task, a cut-off create, a refused key
    with Client(CANARY, base_url=sim.base_url) as client:
        task = client.generate(FramepackInput("the camera zooms in", red, duration=10), timeout=60)
        hay.add("sync task", repr(task) + repr(task.raw) + " ".join(task.logs))
        client.download(task, tmp_path / "sync.mp4")
        sim.inject(Fault.fail_task("GPU out of memory"))
        with pytest.raises(FramepackError) as failed:
            client.generate(FramepackInput("fails", red, duration=10), timeout=60)
        hay.add_exception("sync failed task", failed.value)
        sim.inject(Fault.drop_after_body("create"))
        with pytest.raises(FramepackError) as unknown:
            client.create_task(FramepackInput("cut off", red, duration=10))
        hay.add_exception("sync submission unknown", unknown.value)
        sim.inject(Fault.status_code(500, "get", times=None))
        with pytest.raises(FramepackError) as server_error:
            client.get_task(task.task_id)
        hay.add_exception("sync server error", server_error.value)
        sim.clear_faults()
    with Client(CANARY + "-wrong", base_url=sim.base_url, max_retries=0) as wrong:
        with pytest.raises(FramepackError) as refused:
            wrong.get_task(task.task_id)
        hay.add_exception("sync 401", refused.value)

    # --- the widget: two runs, a comparison, a run card, a gallery, its synced state
    from framepack_widgets import FramepackWidget
    from framepack_widgets.runs import RunStore

    store = RunStore(tmp_path / "store")
    async with AsyncClient(CANARY, base_url=sim.base_url) as aclient:
        w = FramepackWidget(aclient, store=store)
        w.start_image, w.prompt = red, "the camera pans left"
        first = await w.generate()
        w.start_image, w.prompt = blue, "the camera pans right"
        second = await w.generate()
        sim.inject(Fault.fail_task("out of credits"))
        w.prompt = "this one fails"
        third = await w.generate()
        assert (first.stage.value, second.stage.value, third.stage.value) == ("completed", "completed", "failed")
        w.compare(first, second)
        exports = tmp_path / "exports"
        w.export_comparison(exports / "comparison.mp4")
        w.export_run_card(first, exports)
        w.export_run_card(third, exports)
        w.export_html(exports / "gallery")
        hay.add("widget state", json.dumps({k: v for k, v in w.get_state().items() if k not in ("_esm", "_css")},
                                           default=str))
        for run in (first, second, third):
            hay.add(f"run {run.run_id} to_dict", json.dumps(run.to_dict(), default=str) + repr(run) + run.code())
        w.close()
    store.close()
    assert hay.add_files("store", tmp_path / "store") > 4
    assert hay.add_files("exports", exports) > 4

    # --- the command line: generate, sweep, timeline, record, with and without faults
    env = {**os.environ, "PIAPI_API_KEY": CANARY, "PIAPI_BASE_URL": sim.base_url,
           "FRAMEPACK_HOME": str(tmp_path / "cli-home")}
    image = tmp_path / "photo.jpg"
    image.write_bytes(red)
    commands = {
        "generate": ["generate", str(image), "--prompt", "zoom in", "-o", str(tmp_path / "cli" / "g.mp4")],
        "sweep": ["sweep", str(image), "--prompt", "a", "--prompt", "b", "--yes", "-o", str(tmp_path / "cli" / "s")],
        "timeline": ["timeline", str(image), "--segment", "zoom in:10", "--segment", "pan left:10", "--yes",
                     "-o", str(tmp_path / "cli" / "t.mp4")],
        "record": ["record", str(image), "--prompt", "zoom in", "-o", str(tmp_path / "cli" / "r.trace.json")],
    }
    for name, args in commands.items():
        done = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "framepack_widgets.cli", *args], capture_output=True, text=True,
            env=env, timeout=180,
        )
        assert done.returncode == 0, (name, done.stderr)
        hay.add(f"cli {name} output", done.stdout + done.stderr)
    sim.inject(Fault.drop_after_body("create"))
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "framepack_widgets.cli", *commands["generate"]], capture_output=True,
        text=True, env=env, timeout=180,
    )
    assert done.returncode == 6, done.stderr
    hay.add("cli submission unknown", done.stdout + done.stderr)
    sim.clear_faults()
    assert hay.add_files("cli files", tmp_path / "cli") >= 4
    assert hay.add_files("cli store", tmp_path / "cli-home") > 4

    # --- a redirect to another host, through a caller's httpx client that follows redirects
    with Simulator(time_scale=40) as thief:
        sim.inject(Fault.redirect(307, "create", location=f"{thief.base_url}/api/v1/task"))
        sim.inject(Fault.redirect(308, "get", location=f"{thief.base_url}/api/v1/task/x?sig=1"))
        for name, exc in _redirected(sim, task.task_id, red).items():
            hay.add_exception(f"redirected {name}", exc)
        hay.add("the other host's requests", repr([(r.method, r.path, r.endpoint) for r in thief.requests]))
        assert thief.requests == [], "a redirect carried a request to another host"
    sim.clear_faults()

    # --- a proxy's password in the base URL: the command line, a trace, a run's error in the store
    proxied = f"http://someone:{PASSWORD}@127.0.0.1:{sim.port}"
    proxy_env = {**env, "PIAPI_BASE_URL": proxied, "FRAMEPACK_HOME": str(tmp_path / "proxy-home")}
    for name in ("generate", "record"):
        args = [a.replace(str(tmp_path / "cli"), str(tmp_path / "proxied")) for a in commands[name]]
        done = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "framepack_widgets.cli", *args], capture_output=True, text=True,
            env=proxy_env, timeout=180,
        )
        assert done.returncode == 0, (name, done.stderr)
        hay.add(f"cli {name} through a proxy URL", done.stdout + done.stderr)
    assert hay.add_files("cli files through a proxy URL", tmp_path / "proxied") >= 2
    closed = f"http://someone:{PASSWORD}@127.0.0.1:{_closed_port()}"
    unreachable_store = RunStore(tmp_path / "proxy-store")
    async with AsyncClient(CANARY, base_url=closed, max_retries=0) as unreachable:
        hay.add("repr of a client with a proxy URL", repr(unreachable) + unreachable.base_url)
        w = FramepackWidget(unreachable, store=unreachable_store, resume=False)
        w.start_image, w.prompt = red, "the proxy is down"
        down = await w.generate()
        assert down.error, down.stage
        hay.add("a run that could not reach the proxy", json.dumps(down.to_dict(), default=str))
        w.close()
    unreachable_store.close()
    assert hay.add_files("store of a run through a proxy URL", tmp_path / "proxy-store") >= 1

    # --- a saved notebook that ran the widget against the same API
    nb_path = await asyncio.to_thread(_run_notebook, tmp_path, sim)
    hay.add("saved notebook", nb_path.read_bytes())

    hay.add("logs", logs.getvalue())
    assert "x-api-key" in logs.getvalue().lower() or "api/v1/task" in logs.getvalue()  # the logs did log
    assert len(hay.items) > 50
    assert hay.hits() == [], f"the key (or the proxy's password) was found in: {hay.hits()}"
    print(f"canary: {len(hay.items)} artefacts searched, {sum(map(len, hay.items.values())):,} bytes, no hit")


def _redirected(sim: Simulator, task_id: str, image: bytes) -> dict[str, BaseException]:
    """The errors of a create and a get the API redirects, through a client that follows redirects."""
    import httpx

    caught: dict[str, BaseException] = {}
    with httpx.Client(follow_redirects=True) as http, Client(CANARY, base_url=sim.base_url, http_client=http) as c:
        for name, call in (("create", lambda: c.create_task(FramepackInput("moved", image, duration=10))),
                           ("get", lambda: c.get_task(task_id))):
            with pytest.raises(FramepackError) as redirected:
                call()
            caught[name] = redirected.value
    return caught


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_notebook(tmp_path: Path, sim: Simulator) -> Path:
    import nbformat
    from nbclient import NotebookClient

    cells = [
        "import os\nfrom PIL import Image\nfrom framepack_widgets import FramepackWidget\n"
        "w = FramepackWidget()\nw.start_image = Image.new('RGB', (96, 64), (9, 99, 199))\nw.prompt = 'zoom in'\nw",
        "run = w.generate()\nawait run\nprint(run.stage, run.logs, run.error)",
        "from framepack_widgets.client import Client\ntry:\n    Client(base_url='http://127.0.0.1:9').get_task('x')\n"
        "except Exception as exc:\n    import traceback; traceback.print_exc()\n    raise",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    env = {"PIAPI_API_KEY": CANARY, "PIAPI_BASE_URL": sim.base_url, "FRAMEPACK_HOME": str(tmp_path / "nb-home")}
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        client = NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True,
                                resources={"metadata": {"path": str(tmp_path)}})
        client.execute()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    path = tmp_path / "saved.ipynb"
    nbformat.write(nb, path)
    text = path.read_text()
    assert "completed" in text and "ConnectError" in text or "Connection refused" in text
    return path
