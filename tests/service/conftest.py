"""Fixtures of the classroom service's tests: PostgreSQL, the simulator and the service in-process.

The session's JupyterHub (`hub`, `hub_sim`) is in tests/conftest.py: the browser test of a
class (tests/browser/test_classroom.py) uses the same one.

PostgreSQL comes from Debian's package (`.ci/setup --test` installs it); its temporary
cluster starts once per session, on first use. Without it the PostgreSQL tests fail (with
the command that installs it): a missing database is not a passing test.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from service_fixtures import PEOPLE, ServiceThread  # noqa: E402
from service_postgres import TempCluster, find_bin  # noqa: E402

from framepack_widgets.service import Identity, ServiceOptions  # noqa: E402
from framepack_widgets.simulator import Simulator  # noqa: E402


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[TempCluster]:
    bin_dir = find_bin()
    if bin_dir is None:
        pytest.fail("PostgreSQL is not installed: run `bash .ci/setup --test` (apt-get install postgresql)")
    cluster = TempCluster(bin_dir).start()
    yield cluster
    cluster.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of each kind."""
    if request.param == "sqlite":
        return str(tmp_path / "service.sqlite")
    return request.getfixturevalue("pg_cluster").database()


@pytest.fixture
def make_service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """make_service(sim, **options) -> a running ServiceThread holding the simulator's key."""
    started: list[ServiceThread] = []

    def make(sim: Simulator, *, people: dict[str, Identity] | None = None, **options: Any) -> ServiceThread:
        monkeypatch.setenv("PIAPI_API_KEY", sim.api_key)
        options.setdefault("data_dir", tmp_path / f"service-{len(started)}")
        options.setdefault("budget_usd", 0.9)
        options.setdefault("max_running", 5)
        options.setdefault("port", 0)
        service = ServiceThread(ServiceOptions.from_environment(piapi_url=sim.base_url, **options),
                                PEOPLE if people is None else people)
        started.append(service)
        return service

    yield make
    for service in started:
        service.stop()
    os.environ.pop("PIAPI_API_KEY", None)


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(time_scale=60, long_side=64) as simulator:
        yield simulator
