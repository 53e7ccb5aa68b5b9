"""Drive a real Jupyter server and Debian's Chromium for the browser tests and benchmarks.

Why a module of its own: the tests (tests/browser/) and the browser benchmark
(bench/bench_browser.py) share exactly the same way of starting JupyterLab or Notebook 7
offline and of talking to the widget, so both measure the same thing.

Nothing here reaches the internet: JupyterLab's news feed, update check and PyPI
extension manager are switched off, Chromium runs with its background networking off,
and every Jupyter/IPython config, runtime and settings folder is a fresh temporary one
(the packages' own `share/jupyter` stays on the search path, so the widget extensions
are still found).
"""

from __future__ import annotations

import io
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
ARTIFACTS = REPO / "tests" / "artifacts"
SMALL_IMAGES = NOTEBOOKS / "images"
CHROMIUM = os.environ.get("FRAMEPACK_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# Generous on purpose: a 2-core CI box starting a kernel, loading JupyterLab's bundles
# and rendering H.264 in the simulator at the same time is slow, and a timeout here is
# only an upper bound on waiting for a DOM condition, never an assertion about speed.
SERVER_START_TIMEOUT = 180.0
UI_TIMEOUT_MS = 120_000
RUN_TIMEOUT_MS = 240_000

_VIDEO_STATE_JS = """v => ({readyState: v.readyState, duration: v.duration, currentTime: v.currentTime,
  paused: v.paused, src: (v.currentSrc || v.src || '').slice(0, 5), error: v.error && v.error.code})"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_photo(path: Path | None = None, size: tuple[int, int] = (960, 720), *, seed: int = 0, quality: int = 88) -> bytes:
    """A colourful JPEG 'photo' (sky, sun, hills, a house), made here so no test downloads anything."""
    from PIL import Image, ImageDraw, ImageFilter

    w, h = size
    img = Image.new("RGB", (w, h))
    draw = ImageDraw.Draw(img)
    for y in range(h):  # sky gradient
        t = y / h
        draw.line([(0, y), (w, y)], fill=(int(40 + 120 * t), int(110 + 90 * t), int(230 - 60 * t)))
    sx, sy, r = int(w * (0.72 - 0.1 * (seed % 3))), int(h * 0.22), int(min(w, h) * 0.09)
    draw.ellipse([sx - r, sy - r, sx + r, sy + r], fill=(255, 214, 80))
    for i, colour in enumerate([(46, 139, 87), (34, 110, 60), (20, 85, 45)]):
        base = int(h * (0.58 + 0.12 * i))
        pts = [(0, h)] + [(x, base - int(h * 0.08 * (1 + ((x * (i + 3) // max(1, w // 7)) % 3)))) for x in range(0, w + 1, max(1, w // 12))] + [(w, h)]
        draw.polygon(pts, fill=colour)
    hx, hy, hw = int(w * 0.2), int(h * 0.62), int(w * 0.16)
    draw.rectangle([hx, hy, hx + hw, hy + int(hw * 0.7)], fill=(200, 60, 50))
    draw.polygon([(hx - 10, hy), (hx + hw // 2, hy - int(hw * 0.5)), (hx + hw + 10, hy)], fill=(120, 40, 30))
    draw.rectangle([hx + hw // 3, hy + int(hw * 0.3), hx + 2 * hw // 3, hy + int(hw * 0.7)], fill=(250, 230, 160))
    img = img.filter(ImageFilter.SMOOTH)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    data = buf.getvalue()
    if path is not None:
        path.write_bytes(data)
    return data


def make_big_photo(path: Path, megapixels: float = 12.0) -> Path:
    """A 4:3 JPEG of about `megapixels` (12 MP = 4000x3000), with enough detail to weigh several MB."""
    import numpy as np
    from PIL import Image

    w = int(round((megapixels * 1e6 * 4 / 3) ** 0.5 / 10) * 10)
    h = w * 3 // 4
    base = Image.open(io.BytesIO(make_photo(size=(w // 4, h // 4)))).resize((w, h))
    rng = np.random.default_rng(12)
    arr = np.asarray(base, dtype=np.int16) + rng.integers(-12, 12, size=(h, w, 3), dtype=np.int16)
    Image.fromarray(arr.clip(0, 255).astype("uint8")).save(path, "JPEG", quality=92)
    return path


def save_small_copy(src: Path, dest: Path, *, max_bytes: int = 60_000, max_width: int = 900) -> Path:
    """A README-sized copy of a screenshot: resized and re-encoded until it is at most `max_bytes`."""
    from PIL import Image

    img = Image.open(src).convert("RGB")
    dest.parent.mkdir(parents=True, exist_ok=True)
    width = min(max_width, img.width)
    while True:
        scaled = img.resize((width, max(1, round(img.height * width / img.width))), Image.LANCZOS)
        for quality in (82, 72, 62, 52):
            buf = io.BytesIO()
            if dest.suffix.lower() == ".png":
                # Octree keeps small accents (the green/red of added/removed words) that
                # median cut merges away.
                scaled.quantize(colors=256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE).save(
                    buf, "PNG", optimize=True
                )
            else:
                scaled.save(buf, "JPEG", quality=quality, optimize=True, progressive=True)
            if buf.tell() <= max_bytes:
                dest.write_bytes(buf.getvalue())
                return dest
            if dest.suffix.lower() == ".png":
                break
        width = int(width * 0.85)
        if width < 200:
            raise RuntimeError(f"could not fit {src} into {max_bytes} bytes")


def isolated_env(workdir: Path, *, python: str = sys.executable, framepack_home: Path) -> dict[str, str]:
    """This process's environment without PIAPI_*/JUPYTER_* variables, with fresh per-user
    Jupyter and IPython folders under `workdir` and its own FRAMEPACK_HOME.

    Only the per-user folders are isolated: sys.prefix/share/jupyter (the labextensions of
    jupyterlab_widgets and anywidget) stays on the path.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIAPI_", "JUPYTER_", "JPY_"))}
    for sub in ("config", "data", "runtime", "ipython"):
        (workdir / sub).mkdir(parents=True, exist_ok=True)
    env.update(
        {
            "JUPYTER_CONFIG_DIR": str(workdir / "config"),
            "JUPYTER_DATA_DIR": str(workdir / "data"),
            "JUPYTER_RUNTIME_DIR": str(workdir / "runtime"),
            "IPYTHONDIR": str(workdir / "ipython"),
            "FRAMEPACK_HOME": str(framepack_home),
            "PATH": f"{Path(python).parent}{os.pathsep}{env.get('PATH', '')}",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


class JupyterServer:
    """A JupyterLab (`app="lab"`) or Notebook 7 (`app="notebook"`) server on a free port.

    It serves a temporary copy of notebooks/ (as `notebooks/...` under its root), with its
    own FRAMEPACK_HOME and no PIAPI_API_KEY unless `env` adds one.
    """

    def __init__(self, workdir: Path, *, app: str = "lab", env: dict[str, str] | None = None, name: str = "jupyter",
                 python: str | None = None) -> None:
        self.workdir = Path(workdir)
        self.python = python or sys.executable  # another venv's, to try an installed wheel
        self.app = app
        self.name = name
        self.token = secrets.token_hex(16)
        self.port = free_port()
        self.root = self.workdir / "root"
        self.framepack_home = self.workdir / "framepack_home"
        self.extra_env = dict(env or {})
        self.proc: subprocess.Popen[bytes] | None = None
        # The live log stays in the server's own folder (two test sessions at once must
        # not write into one file); stop() copies it to tests/artifacts/<name>-server.log.
        self.log_path = self.workdir / "server.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def environment(self) -> dict[str, str]:
        env = isolated_env(self.workdir, python=self.python, framepack_home=self.framepack_home)
        user_settings = self.workdir / "config" / "lab" / "user-settings"
        for plugin, values in {
            # Render every cell (no virtual scrolling), so the tests see the whole notebook.
            "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
            # "Save Jupyter widget state in notebooks" on, as issue 3's hygiene promise says.
            "@jupyter-widgets/jupyterlab-manager/plugin": {"saveState": True},
        }.items():
            path = user_settings / f"{plugin}.jupyterlab-settings"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values))
        env.update(self.extra_env)
        return env

    def start(self) -> "JupyterServer":
        shutil.rmtree(self.root, ignore_errors=True)
        (self.root / "notebooks").mkdir(parents=True)
        self.framepack_home.mkdir(parents=True, exist_ok=True)
        for nb in NOTEBOOKS.glob("*.ipynb"):
            shutil.copy2(nb, self.root / "notebooks" / nb.name)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        cmd = [
            self.python, "-m", "jupyter", self.app,
            "--no-browser",
            "--allow-root",
            f"--port={self.port}",
            "--port-retries=0",
            "--ip=127.0.0.1",
            f"--ServerApp.token={self.token}",
            f"--ServerApp.root_dir={self.root}",
            "--ServerApp.open_browser=False",
            # Nothing may fetch the internet: news feed, update check, PyPI extension manager.
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--LabApp.extension_manager=readonly",
        ]
        with open(self.log_path, "wb") as log:  # the child keeps its own copy of the handle
            self.proc = subprocess.Popen(
                cmd, cwd=self.root, env=self.environment(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.app} server exited ({self.proc.returncode}):\n{self.log_tail()}")
            try:
                self.api("GET", "/api/status", timeout=5)
                return self
            except (OSError, urllib.error.URLError):
                time.sleep(0.3)
        raise RuntimeError(f"{self.app} server did not answer /api/status in {SERVER_START_TIMEOUT:.0f} s:\n{self.log_tail()}")

    def log_tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def api(self, method: str, path: str, body: Any = None, *, timeout: float = 30) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.url + path, data=data, method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None

    def lab_url(self, notebook: str) -> str:
        return f"{self.url}/lab/tree/notebooks/{notebook}?token={self.token}&reset"

    def stop(self) -> None:
        try:
            self._stop()
        finally:
            if self.log_path.exists():
                ARTIFACTS.mkdir(parents=True, exist_ok=True)
                tmp = ARTIFACTS / f".{self.name}-server.log.{os.getpid()}"
                shutil.copyfile(self.log_path, tmp)
                os.replace(tmp, ARTIFACTS / f"{self.name}-server.log")

    def _stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:  # a clean shutdown also shuts the kernels down
            self.api("POST", "/api/shutdown", timeout=10)
            self.proc.wait(timeout=30)
        except Exception:
            pass
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=20)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def launch_chromium(playwright: Any) -> Any:
    """Debian's Chromium, headless, with a fresh temporary profile (plain launch makes one)."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=120_000)


class AppServer:
    """A web app server started by a command (Voila, Solara) on a free port, offline.

    `command` is an argument list whose "{port}" is filled in. It runs in `workdir` with
    `isolated_env` (no key, its own FRAMEPACK_HOME) plus `env`; it is up once `probe` answers
    with any HTTP status (a path that runs no notebook). Its log goes to
    tests/artifacts/<name>-server.log when it stops.
    """

    def __init__(self, workdir: Path, name: str, command: list[str], *, env: dict[str, str] | None = None,
                 probe: str = "/") -> None:
        self.workdir = Path(workdir)
        self.name = name
        self.command = command
        self.extra_env = dict(env or {})
        self.probe = probe
        self.port = free_port()
        self.framepack_home = self.workdir / "framepack_home"
        self.log_path = self.workdir / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "AppServer":
        self.framepack_home.mkdir(parents=True, exist_ok=True)
        env = isolated_env(self.workdir, framepack_home=self.framepack_home)
        env.update(self.extra_env)
        command = [arg.format(port=self.port) for arg in self.command]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(command, cwd=self.workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        try:
            self._wait_until_it_answers()
        except BaseException:
            self.stop()  # no fixture will: it raised before yielding the server
            raise
        return self

    def _wait_until_it_answers(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log = self.log_path.read_text(errors="replace")
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}):\n{log}")
            try:
                with urllib.request.urlopen(self.url + self.probe, timeout=5):
                    return
            except urllib.error.HTTPError:
                return  # it answers
            except (OSError, urllib.error.URLError):
                time.sleep(0.3)
        raise RuntimeError(f"{self.name} did not answer in {SERVER_START_TIMEOUT:.0f} s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        if self.log_path.exists():
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.log_path, ARTIFACTS / f"{self.name}-server.log")


def voila_server(workdir: Path, notebook: str, *, env: dict[str, str] | None = None) -> AppServer:
    """`voila notebooks/<notebook>` as a teacher starts it (code hidden), on a copy of notebooks/."""
    (workdir / "notebooks").mkdir(parents=True, exist_ok=True)
    shutil.copy2(NOTEBOOKS / notebook, workdir / "notebooks" / notebook)
    command = [sys.executable, "-m", "voila", f"notebooks/{notebook}", "--no-browser", "--port={port}",
               "--Voila.ip=127.0.0.1"]
    # Voila runs the notebook for each page it serves, so the probe asks for a static path.
    return AppServer(workdir, "voila", command, env=env, probe="/voila/static/").start()


def solara_server(workdir: Path, app: Path, *, env: dict[str, str] | None = None) -> AppServer:
    """`solara run <app>` in production mode. The page's own files come from solara-assets
    (solara otherwise fetches them from a CDN); no telemetry, no version check."""
    solara_env = {"SOLARA_TELEMETRY_MIXPANEL_ENABLE": "False", "SOLARA_HOME": str(workdir / "solara_home")}
    command = [sys.executable, "-m", "solara", "run", str(app), "--production", "--no-open", "--no-check-version",
               "--host=127.0.0.1", "--port={port}"]
    return AppServer(workdir, "solara", command, env={**solara_env, **(env or {})}, probe="/readyz").start()


def keep_offline(context: Any) -> list[str]:
    """Abort every request the pages of `context` make beyond 127.0.0.1 (a host page's CDN
    links: Voila's lab template asks for Font Awesome), so no browser test reaches the
    internet. Returns the list the aborted URLs are added to, for the test to report."""
    blocked: list[str] = []

    def route(r: Any) -> None:
        if r.request.url.startswith(("http://127.0.0.1:", "ws://127.0.0.1:", "data:", "blob:")):
            r.continue_()
        else:
            blocked.append(r.request.url)
            r.abort()

    context.route("**/*", route)
    return blocked


# ---------------------------------------------------------------- the page side

# True when the notebook's kernel is idle: JupyterLab's status bar reads "... | Idle";
# Notebook 7 has no status bar, so its kernel indicator's data-status is used there.
KERNEL_IDLE_JS = """() => {
  const bar = document.querySelector('#jp-main-statusbar span.jp-StatusBar-TextItem[title^="Change kernel"]');
  if (bar) return /\\|\\s*Idle\\s*$/.test(bar.textContent);
  const ind = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator, .jp-Notebook-ExecutionIndicator');
  return !!ind && ind.getAttribute('data-status') === 'idle';
}"""


class NotebookPage:
    """One open notebook (JupyterLab or Notebook 7) in a Playwright page."""

    def __init__(self, page: Any, server: JupyterServer) -> None:
        self.page = page
        self.server = server

    # -- opening and running
    def open_lab(self, notebook: str) -> "NotebookPage":
        self.page.goto(self.server.lab_url(notebook), timeout=UI_TIMEOUT_MS)
        self._wait_ready()
        return self

    def open_notebook7_from_tree(self, notebook: str) -> "NotebookPage":
        """/tree, into notebooks/, then open the notebook (Notebook 7 opens it in a new tab)."""
        page = self.page
        page.goto(f"{self.server.url}/tree?token={self.server.token}", timeout=UI_TIMEOUT_MS)
        listing = page.locator(".jp-DirListing-content")
        listing.get_by_text("notebooks", exact=True).dblclick(timeout=UI_TIMEOUT_MS)
        # Wait for the whole folder: rows still arriving re-sort the list, and a double click
        # that straddles that lands on another notebook.
        names = sorted(p.name for p in (self.server.root / "notebooks").iterdir() if not p.name.startswith("."))
        page.wait_for_function(
            "names => { const shown = [...document.querySelectorAll('.jp-DirListing-content .jp-DirListing-itemText')]"
            ".map(e => e.textContent.trim()); return names.every(n => shown.includes(n)); }",
            arg=names, timeout=UI_TIMEOUT_MS,
        )
        item = listing.get_by_text(notebook, exact=True)
        with page.context.expect_page(timeout=UI_TIMEOUT_MS) as new:
            item.dblclick()
        self.page = new.value
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        self.page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for(timeout=UI_TIMEOUT_MS)
        self.wait_kernel_idle()

    def kernel_idle(self) -> bool:
        return bool(self.page.evaluate(KERNEL_IDLE_JS))

    def wait_kernel_idle(self, timeout: float = UI_TIMEOUT_MS) -> None:
        self.page.wait_for_function(KERNEL_IDLE_JS, timeout=timeout, polling=100)

    def menu(self, top: str, item: str | re.Pattern[str]) -> None:
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        try:
            self.page.get_by_role("menuitem", name=top, exact=True).click(timeout=30_000)
        except PlaywrightTimeout:  # say what stands in the way, rather than only that it timed out
            dialog = self.page.locator(".jp-Dialog")
            if dialog.count():
                raise AssertionError(f"a dialog covers the menus: {dialog.first.inner_text()!r}") from None
            raise
        name = item if isinstance(item, re.Pattern) else re.compile("^" + re.escape(item))
        self.page.get_by_role("menuitem", name=name).first.click()

    def code_prompts(self) -> list[str]:
        return self.page.locator(".jp-NotebookPanel:visible .jp-CodeCell .jp-InputArea-prompt").all_inner_texts()

    def run_all(self, timeout: float = RUN_TIMEOUT_MS) -> None:
        """Run → Run All Cells, then wait until every code cell has an execution count and the kernel is idle.

        Once in a while on a loaded machine the frontend swaps its kernel connection while
        the cells are queued, and the queued cells silently go back to "[ ]" (a Jupyter
        hiccup, not this project's). That state is unambiguous (kernel idle, nothing
        running or queued, some cell never run), so Run All is issued once more then.
        """
        for attempt in range(2):
            self.menu("Run", "Run All Cells")
            if self.wait_all_executed(timeout) or attempt:
                break
            print("Run All Cells was dropped by the frontend (cells back to [ ]); running them again")
        else:  # pragma: no cover
            raise AssertionError("Run All Cells did not run every cell")

    def wait_all_executed(self, timeout: float = RUN_TIMEOUT_MS) -> bool:
        """True when every code cell ran; False when the run was dropped (see run_all)."""
        state = self.page.wait_for_function(
            """() => {
              const idle = """ + KERNEL_IDLE_JS + """;
              const ps = [...document.querySelectorAll('.jp-NotebookPanel .jp-CodeCell .jp-InputArea-prompt')]
                .filter(p => p.offsetParent !== null).map(p => p.textContent);
              if (ps.length && ps.every(t => /\\[\\d+\\]/.test(t))) return 'done';
              if (ps.some(t => /\\[\\s*\\]/.test(t)) && !ps.some(t => t.includes('*')) && idle()) return 'dropped';
              return false;
            }""",
            timeout=timeout,
            polling=200,
        ).json_value()
        if state == "dropped":
            return False
        self.wait_kernel_idle(timeout)
        return True

    def errors_in_outputs(self) -> list[str]:
        return self.page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr'], .jp-RenderedText[data-mime-type='application/vnd.jupyter.error']").all_inner_texts()

    def restart_kernel_via_menu(self) -> None:
        """Kernel → Restart Kernel…, confirm, and wait until the restarted kernel is idle.

        The status texts are recorded from before the click, so the wait cannot mistake
        the old kernel's "Idle" for the new one's.
        """
        self.page.evaluate(
            """() => {
              window.__fpwKernelTexts = [];
              const read = () => {
                const bar = document.querySelector('#jp-main-statusbar span.jp-StatusBar-TextItem[title^="Change kernel"]');
                const ind = document.querySelector('.jp-Notebook-ExecutionIndicator');
                return bar ? bar.textContent : (ind ? ind.getAttribute('data-status') : '');
              };
              const note = () => { const t = read(); const l = window.__fpwKernelTexts; if (l[l.length - 1] !== t) l.push(t); };
              window.__fpwKernelTimer = setInterval(note, 20);
              (window.__fpwKernelObs = new MutationObserver(note)).observe(document.body, {subtree: true, characterData: true, childList: true, attributes: true, attributeFilter: ['data-status']});
            }"""
        )
        self.menu("Kernel", re.compile(r"^Restart Kernel…"))
        dialog = self.page.locator(".jp-Dialog")
        dialog.locator("button.jp-mod-accept").click(timeout=UI_TIMEOUT_MS)
        dialog.wait_for(state="detached", timeout=UI_TIMEOUT_MS)
        self.page.wait_for_function(
            "() => (window.__fpwKernelTexts || []).some(t => !/idle/i.test(t)) && (" + KERNEL_IDLE_JS + ")()",
            timeout=UI_TIMEOUT_MS,
            polling=100,
        )
        self.page.evaluate("() => { clearInterval(window.__fpwKernelTimer); window.__fpwKernelObs.disconnect(); }")

    def clear_all_outputs(self) -> None:
        """Edit → Clear Outputs of All Cells (also resets the execution counts)."""
        self.menu("Edit", "Clear Outputs of All Cells")
        self.page.wait_for_function(
            """() => [...document.querySelectorAll('.jp-NotebookPanel .jp-CodeCell .jp-InputArea-prompt')]
                 .filter(p => p.offsetParent !== null).every(p => !/\\[[\\d*]+\\]/.test(p.textContent))""",
            timeout=UI_TIMEOUT_MS,
        )

    # -- the widget
    def widget(self, index: int = -1) -> Any:
        """The widget's root in the cell outputs (last one by default)."""
        roots = self.page.locator(WIDGET_ROOT)
        return roots.nth(index) if index >= 0 else roots.last

    def video_state(self, video: Any) -> dict:
        return video.evaluate(_VIDEO_STATE_JS)

    def play_and_see_time_advance(self, video: Any, *, by: float = 0.5, timeout: float = UI_TIMEOUT_MS) -> dict:
        """play() (muted, so no gesture is needed) and wait until currentTime moved forward by `by` seconds."""
        start = video.evaluate("v => { v.muted = true; v.play(); return v.currentTime; }")
        handle = video.element_handle()
        self.page.wait_for_function(
            "([v, t0, by]) => !v.paused && v.currentTime >= Math.min(t0 + by, v.duration - 0.05)",
            arg=[handle, start, by],
            timeout=timeout,
            polling=100,
        )
        return self.video_state(video)


# The widget's root element (js/src/widget.js).
WIDGET_ROOT = ".fpw-root"


def sync_drift_js() -> str:
    """JS that samples |a.currentTime - b.currentTime| on every animation frame for `ms`.

    Sampling both in the same frame callback is as close to simultaneous as a page gets;
    only frames where both are playing count. Returns the drifts in milliseconds.
    """
    return """async ([a, b, ms]) => {
      const out = [];
      const t0 = performance.now();
      while (performance.now() - t0 < ms) {
        await new Promise(r => requestAnimationFrame(r));
        if (!a.paused && !b.paused && a.readyState >= 2 && b.readyState >= 2 && !a.seeking && !b.seeking) {
          let d = Math.abs(a.currentTime - b.currentTime);
          const D = Math.min(a.duration, b.duration);
          if (Number.isFinite(D) && d > D / 2) d = Math.abs(d - D);  // one looped, the other not yet
          out.push(d * 1000);
        }
      }
      return out;
    }"""


# ---------------------------------------------------------------- the widget's flows
# Selectors come from js/src/ (panels/*.js): the root is `.fpw-root`; `.fpw-status` carries
# data-stage (idle, pending, processing, downloading, completed, ...) and data-run-id;
# the inline player is `video.fpw-video` (data-run-id, data-ready); the comparison is
# `section.fpw-compare` (data-ready="true" once its videos are synced) with
# `video.fpw-cmp-video` players and a `.fpw-play` button.

STATUS_LOG_JS = """root => {
  const box = root.querySelector('.fpw-status');
  const idle = """ + KERNEL_IDLE_JS + """;
  const log = (window.__fpwStatusLog = window.__fpwStatusLog || []);
  const note = () => log.push({stage: box.dataset.stage, run: box.dataset.runId, idle: idle(), t: performance.now()});
  if (window.__fpwStatusObserver) window.__fpwStatusObserver.disconnect();
  window.__fpwStatusObserver = new MutationObserver(note);
  window.__fpwStatusObserver.observe(box, {attributes: true, attributeFilter: ['data-stage', 'data-run-id']});
  note();
  return log.length;
}"""

WAIT_STAGE_JS = """([root, stages, notRun, run, needIdle]) => {
  const box = root.querySelector('.fpw-status');
  if (!box) return false;
  const idle = """ + KERNEL_IDLE_JS + """;
  const rid = box.dataset.runId || '';
  if (!rid || (notRun && rid === notRun) || (run && rid !== run)) return false;
  if (!stages.includes(box.dataset.stage)) return false;
  if (needIdle && !idle()) return false;
  return {stage: box.dataset.stage, run: rid};
}"""


def upload_start_image(nb: NotebookPage, root: Any, path: Path) -> str:
    """Upload through the Start image <input type=file>; wait until the kernel has it
    (the slot shows the name and size the kernel reports back in start_image_info)."""
    root.get_by_label("Start image", exact=True).set_input_files(str(path))
    meta = root.locator(".fpw-slot-start .fpw-slot-meta")
    nb.page.wait_for_function(
        "([m, name]) => m.textContent.includes(name) && /\\d+\\u00d7\\d+/.test(m.textContent)",
        arg=[meta.element_handle(), path.name],
        timeout=UI_TIMEOUT_MS,
        polling=100,
    )
    return meta.inner_text()


def click_generate(nb: NotebookPage, root: Any, prompt: str) -> str:
    """Type the prompt, press Generate; return the new run's id once the status shows it."""
    box = root.locator(".fpw-status")
    before = box.get_attribute("data-run-id") or ""
    field = root.get_by_label("Prompt", exact=True)
    field.fill(prompt)
    button = root.get_by_role("button", name="Generate", exact=True)
    button.wait_for()
    nb.page.wait_for_function("b => !b.disabled", arg=button.element_handle(), timeout=UI_TIMEOUT_MS)
    nb.page.evaluate(STATUS_LOG_JS, root.element_handle())
    button.click()
    found = nb.page.wait_for_function(
        WAIT_STAGE_JS,
        arg=[root.element_handle(), ["queued", "submitting", "pending", "processing", "downloading", "completed"], before, None, False],
        timeout=UI_TIMEOUT_MS,
        polling=50,
    ).json_value()
    return found["run"]


def wait_stage(nb: NotebookPage, root: Any, run_id: str, stages: list[str], *, idle: bool = True, timeout: float = RUN_TIMEOUT_MS) -> str:
    """Wait until the status shows `run_id` in one of `stages` (and, by default, the kernel idle at that moment)."""
    return nb.page.wait_for_function(
        WAIT_STAGE_JS, arg=[root.element_handle(), stages, None, run_id, idle], timeout=timeout, polling=50
    ).json_value()["stage"]


def status_log(nb: NotebookPage, run_id: str) -> list[dict]:
    return [e for e in nb.page.evaluate("() => window.__fpwStatusLog || []") if e.get("run") == run_id]


def wait_player(nb: NotebookPage, root: Any, run_id: str, duration: float, *, timeout: float = RUN_TIMEOUT_MS) -> Any:
    """The inline player shows `run_id`'s video: metadata loaded, data for the current frame, right duration."""
    video = root.locator("video.fpw-video")
    nb.page.wait_for_function(
        """([v, rid, d]) => v.dataset.runId === rid && v.readyState >= 2 && Math.abs(v.duration - d) <= 0.1""",
        arg=[video.element_handle(timeout=timeout), run_id, duration],
        timeout=timeout,
        polling=100,
    )
    return video


def select_and_compare(nb: NotebookPage, root: Any, run_ids: list[str]) -> Any:
    """Tick the run cards, press Compare; wait until the comparison's videos are loaded and synced."""
    for rid in run_ids:
        root.locator(f'.fpw-card[data-run-id="{rid}"] input.fpw-card-check').check()
    button = root.get_by_role("button", name="Compare", exact=True)
    nb.page.wait_for_function("b => !b.disabled", arg=button.element_handle(), timeout=UI_TIMEOUT_MS)
    button.click()
    section = root.locator("section.fpw-compare")
    nb.page.wait_for_function(
        """([s, ids]) => {
          const vs = [...s.querySelectorAll('video')];
          return !s.hidden && s.dataset.ready === 'true' && vs.length === ids.length
            && ids.every(id => vs.some(v => v.dataset.runId === id && v.readyState >= 2));
        }""",
        arg=[section.element_handle(), run_ids],
        timeout=RUN_TIMEOUT_MS,
        polling=100,
    )
    return section


def play_comparison_and_measure(nb: NotebookPage, section: Any, *, settle_s: float = 1.0, sample_ms: int = 3000) -> dict:
    """Press the comparison's Play, let the sync settle, then sample the drift between
    the first two videos on every animation frame. Returns drifts in ms (median, max, n)."""
    section.get_by_role("button", name="Play", exact=True).click()
    videos = section.locator("video")
    a, b = videos.nth(0).element_handle(), videos.nth(1).element_handle()
    nb.page.wait_for_function(
        "([a, b, t]) => !a.paused && !b.paused && a.currentTime >= t && b.currentTime >= t",
        arg=[a, b, settle_s],
        timeout=UI_TIMEOUT_MS,
        polling=50,
    )
    drifts = nb.page.evaluate(sync_drift_js(), [a, b, sample_ms])
    times = nb.page.evaluate("([a, b]) => [a.currentTime, b.currentTime]", [a, b])
    drifts = sorted(drifts)
    if not drifts:
        return {"n": 0, "median_ms": None, "max_ms": None, "p90_ms": None, "times": times}
    return {
        "n": len(drifts),
        "median_ms": drifts[len(drifts) // 2],
        "p90_ms": drifts[min(len(drifts) - 1, int(len(drifts) * 0.9))],
        "max_ms": drifts[-1],
        "times": times,
    }


FRAME_MS = 1000 / 30


def assert_in_lock_step(drift: dict) -> None:
    """Two players in lock-step: most frames within one frame of each other, and none wandering
    off. The bound is loose on purpose: a test machine that is busy (the suite runs in several
    workers) delays a correction now and then; players not in lock-step drift by seconds. How
    close they stay is a figure the benchmark measures (bench/bench_browser.py), not a test."""
    assert drift["n"] >= 20, drift
    assert drift["median_ms"] <= FRAME_MS, drift
    assert drift["p90_ms"] <= 4 * FRAME_MS, drift
ACTIVE = ["pending", "processing", "downloading"]


def assert_streamed_while_idle(nb: NotebookPage, run_id: str) -> list[dict]:
    """The status changed from an active stage to 'completed' while the kernel was idle."""
    log = status_log(nb, run_id)
    stages = [e["stage"] for e in log]
    active_idle = [i for i, e in enumerate(log) if e["stage"] in ACTIVE and e["idle"]]
    done_idle = [i for i, e in enumerate(log) if e["stage"] == "completed" and e["idle"]]
    assert active_idle, f"never saw an active stage while the kernel was idle: {log}"
    assert done_idle and done_idle[-1] > active_idle[0], f"the status did not move on while idle: {stages}"
    assert "processing" in stages, stages
    order = ["queued", "submitting", "pending", "processing", "downloading", "completed"]
    ranks = [order.index(s) for s in stages if s in order]
    assert ranks == sorted(ranks), f"stages went backwards: {stages}"
    return log


def generate_and_play(nb: NotebookPage, root: Any, prompt: str, duration: int = 10) -> str:
    """Generate with the current inputs, watch it stream in, and see the video play."""
    run_id = click_generate(nb, root, prompt)
    wait_stage(nb, root, run_id, ACTIVE, idle=True)
    wait_stage(nb, root, run_id, ["completed"], idle=True)
    assert_streamed_while_idle(nb, run_id)
    video = wait_player(nb, root, run_id, duration)
    state = nb.play_and_see_time_advance(video, by=0.5)
    assert state["currentTime"] > 0 and not state["paused"] and state["src"] == "blob:", state
    assert abs(state["duration"] - duration) <= 0.1, state
    return run_id


# Bytes that must never be in a saved notebook: long base64 runs (an image or a video),
# the magic numbers of MP4/JPEG/PNG/WebP in base64, and the simulator's random key.
LONG_BASE64 = re.compile(r"[A-Za-z0-9+/]{400,}={0,2}")
MAGIC_BASE64 = ("/9j/", "iVBOR", "AAAAIGZ0eXA", "AAAAHGZ0eXA", "AAAAGGZ0eXA", "UklGR")
SIM_KEY = re.compile(r"sim-[A-Za-z0-9_-]{20,}")


def assert_kernel_answered(root: Any) -> None:
    """A live widget never shows its no-kernel line (the kernel answers each view's hello), and
    the snapshot output beside it stays out of sight."""
    text = root.locator(":scope > .fpw-notice").text_content() or ""
    assert "No answer from the kernel" not in text, text
    snapshots = root.page.locator(".fpw-snapshot")
    for index in range(snapshots.count()):
        assert not snapshots.nth(index).is_visible(), "a snapshot shows beside the live widget"


def save_and_read_notebook(nb: NotebookPage, notebook: str, *, timeout: float = 60.0) -> str:
    """File → Save Notebook, then the file as the server wrote it (once it holds widget state)."""
    path = nb.server.root / "notebooks" / notebook
    before = path.stat().st_mtime_ns
    nb.menu("File", re.compile(r"^Save Notebook(?! As)"))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.stat().st_mtime_ns != before:
            text = path.read_text()
            if "application/vnd.jupyter.widget-state+json" in text:
                return text
        time.sleep(0.2)
    raise AssertionError(f"{notebook} was not saved with widget state within {timeout:.0f} s")


def small_copy_wanted(dest: Path) -> bool:
    """README images are committed: write them when missing or when asked to refresh
    (FRAMEPACK_UPDATE_SCREENSHOTS=1), so an ordinary test run leaves the tree clean."""
    return not dest.exists() or os.environ.get("FRAMEPACK_UPDATE_SCREENSHOTS") == "1"


def fast_simulator_env() -> dict[str, str]:
    """Environment for the kernel's embedded simulator (widget.py reads
    FRAMEPACK_SIM_TIME_SCALE): quick enough for CI, slow enough that pending and
    processing each stay on screen for a while (a 10 s clip takes about 9 s at 4x)."""
    return {"FRAMEPACK_SIM_TIME_SCALE": os.environ.get("FRAMEPACK_SIM_TIME_SCALE", "4")}


def start_server(workdir: Path, *, app: str, name: str, env: dict[str, str] | None = None) -> JupyterServer:
    """A started JupyterLab/Notebook 7 server; its log goes to tests/artifacts/<name>-server.log."""
    return JupyterServer(workdir, app=app, env=env, name=name).start()


def need_browser() -> None:
    """Skip (saying why) when Chromium or Playwright is missing; `.ci/setup --test` installs both."""
    import pytest

    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.skip(f"Debian's Chromium is not installed at {CHROMIUM} (bash .ci/setup --test installs it)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("the playwright Python package is not installed (pip install -e '.[test]')")
