"""Fixtures for the real-browser tests: a Jupyter server started by the test, Debian's Chromium.

Every test here is marked `browser`. They are skipped (with the reason) only when
Chromium or Playwright's Python package is missing; `.ci/setup --test` installs both.
Screenshots and server logs go to tests/artifacts/ (git-ignored); a failing test leaves a
full-page screenshot there too.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.register_assert_rewrite("fpw_browser")

from fpw_browser import (  # noqa: E402
    ARTIFACTS,
    JupyterServer,
    NotebookPage,
    fast_simulator_env,
    launch_chromium,
    make_photo,
    need_browser,
    start_server,
)

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.resolve().is_relative_to(HERE):
            item.add_marker(pytest.mark.browser)
            item.add_marker(pytest.mark.slow)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    # Module scope, not session: Playwright's sync API keeps an event loop running in this
    # thread while it is open, and asyncio tests collected after it could not start theirs.
    need_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = launch_chromium(p)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="session")
def photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A JPEG made by the test (never a committed file) for the Start image input."""
    path = tmp_path_factory.mktemp("images") / "meadow.jpg"
    make_photo(path, size=(1024, 768), seed=1)
    return path


@pytest.fixture(scope="session")
def photo2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("images") / "meadow2.jpg"
    make_photo(path, size=(1024, 768), seed=2)
    return path


@pytest.fixture(scope="module")
def lab_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterServer]:
    need_browser()
    server = start_server(tmp_path_factory.mktemp("srv"), app="lab", name="jupyterlab", env=fast_simulator_env())
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def notebook7_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterServer]:
    need_browser()
    server = start_server(tmp_path_factory.mktemp("srv"), app="notebook", name="notebook7", env=fast_simulator_env())
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def context(browser: object, request: pytest.FixtureRequest) -> Iterator[object]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 1000}, device_scale_factor=1)  # type: ignore[attr-defined]
    ctx.set_default_timeout(120_000)
    console: list[str] = []
    ctx.on("console", lambda m: console.append(f"[{m.type}] {m.text}"))
    ctx.on("weberror", lambda e: console.append(f"[pageerror] {e.error}"))
    try:
        yield ctx
    finally:
        failed = getattr(request.node, "rep_call", None)
        if failed is not None and failed.failed:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            stem = request.node.name.replace("/", "_")
            for i, pg in enumerate(ctx.pages):  # type: ignore[attr-defined]
                try:
                    pg.screenshot(path=str(ARTIFACTS / f"FAILED-{stem}-{i}.png"), full_page=True)
                except Exception:
                    pass
            (ARTIFACTS / f"FAILED-{stem}-console.log").write_text("\n".join(console))
        ctx.close()  # type: ignore[attr-defined]


@pytest.fixture
def page(context: object) -> object:
    return context.new_page()  # type: ignore[attr-defined]


@pytest.fixture
def lab(page: object, lab_server: JupyterServer) -> NotebookPage:
    return NotebookPage(page, lab_server)


@pytest.fixture(scope="session", autouse=True)
def _artifacts_dir() -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)



