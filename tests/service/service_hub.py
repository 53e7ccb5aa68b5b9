"""A real JupyterHub for the tests: configurable-http-proxy in front, the class service managed by it.

The hub runs from the test venv (`jupyterhub` from PyPI), its proxy is configurable-http-proxy
from npm (installed by `.ci/setup --test` into `.venv/chp`), and it starts `framepack service`
as its managed service `framepack`, with the PiAPI key (the simulator's) in that service's
environment only. A second service, `test-admin`, holds the token the tests use to make users,
groups, tokens and servers through the hub's REST API, as a teacher's scripts would.

Students' servers (the browser test's) are spawned by `SimpleLocalProcessSpawner` (fine as
root, no system users: a home folder each under the hub's folder), as JupyterLab from this
venv, with the class service's address through the hub's proxy in FRAMEPACK_SERVICE_URL
(`c.Spawner.environment`, as a teacher configures it) and a server token allowed to use the
service (`c.Spawner.server_token_scopes`).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

__all__ = ["Hub", "find_proxy"]

ROOT = Path(__file__).resolve().parents[2]


def find_proxy() -> str | None:
    local = ROOT / ".venv" / "chp" / "node_modules" / ".bin" / "configurable-http-proxy"
    if local.exists():
        return str(local)
    return shutil.which("configurable-http-proxy")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Hub:
    """`start()` a hub in `folder`; `stop()` it (it stops its proxy and the service)."""

    def __init__(self, folder: Path, *, piapi_url: str, piapi_key: str, budget: float = 0.9, max_running: int = 5,
                 db: str | None = None) -> None:
        self.folder = folder
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.service_url = f"{self.url}/services/framepack/"
        self.admin_token = secrets.token_hex(24)
        self.data_dir = folder / "framepack-service"
        self.homes = folder / "homes"
        self.db = db or str(self.data_dir / "service.sqlite")
        self._process: subprocess.Popen[bytes] | None = None
        proxy = find_proxy()
        if proxy is None:
            raise RuntimeError("configurable-http-proxy is not installed: run `bash .ci/setup --test`")
        service_port = _free_port()
        command = [sys.executable, "-m", "framepack_widgets.cli", "service", "--db", self.db, "--data-dir",
                   str(self.data_dir), "--piapi-url", piapi_url, "--budget", str(budget), "--max-running",
                   str(max_running), "--webhook-url", self.url]
        config = f"""
c = get_config()  # noqa
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {self.port}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {_free_port()}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{_free_port()}"
c.ConfigurableHTTPProxy.command = [{proxy!r}]
c.JupyterHub.db_url = "sqlite:///{folder / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = {str(folder / 'cookie_secret')!r}
c.JupyterHub.pid_file = {str(folder / 'hub.pid')!r}
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True
c.Authenticator.admin_users = {{"root-teacher"}}
c.JupyterHub.cleanup_servers = True
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = {str(self.homes) + "/{username}"!r}
c.Spawner.cmd = [{sys.executable!r}, "-m", "jupyterhub.singleuser"]
c.Spawner.args = ["--ServerApp.allow_root=True", "--LabApp.news_url=None",
                  "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", "--LabApp.extension_manager=readonly"]
c.Spawner.default_url = "/lab"
c.Spawner.ip = "127.0.0.1"
c.Spawner.start_timeout = 240
c.Spawner.http_timeout = 180
c.Spawner.environment = {{
    "FRAMEPACK_SERVICE_URL": "{self.url}/services/framepack",
    "PATH": {os.environ.get("PATH", "")!r},
    "PYTHONUNBUFFERED": "1",
}}
c.Spawner.server_token_scopes = ["users:activity!user", "access:servers!server", "access:services!service=framepack"]
c.JupyterHub.services = [
    {{"name": "framepack", "url": "http://127.0.0.1:{service_port}", "command": {command!r},
      "environment": {{"PIAPI_API_KEY": {piapi_key!r}}}, "oauth_no_confirm": True}},
    {{"name": "test-admin", "api_token": {self.admin_token!r}}},
]
c.JupyterHub.load_roles = [
    {{"name": "user", "scopes": ["self", "access:services!service=framepack"]}},
    {{"name": "framepack-service", "scopes": ["read:users:name", "read:users:groups"], "services": ["framepack"]}},
    {{"name": "test-admin", "scopes": ["admin:users", "admin:groups", "tokens", "admin:servers"], "services": ["test-admin"]}},
]
"""
        (folder / "jupyterhub_config.py").write_text(config)

    def start(self, timeout: float = 90) -> "Hub":
        log = (self.folder / "hub.log").open("wb")
        env = {k: v for k, v in os.environ.items() if k != "PIAPI_API_KEY"}
        self._process = subprocess.Popen([sys.executable, "-m", "jupyterhub", "-f", "jupyterhub_config.py"],
                                         cwd=self.folder, stdout=log, stderr=subprocess.STDOUT, env=env,
                                         start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:  # the hub, its proxy and the service are all up when the service answers through the proxy
            if self._process.poll() is not None:
                raise RuntimeError(f"jupyterhub exited ({self._process.returncode}):\n{self.log_tail()}")
            try:
                if httpx.get(self.service_url, timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the hub or its service did not come up in {timeout:.0f} s:\n{self.log_tail()}")
            time.sleep(0.2)

    def log_tail(self, lines: int = 60) -> str:
        path = self.folder / "hub.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def api(self, method: str, path: str, body: object = None) -> httpx.Response:
        answer = httpx.request(method, f"{self.url}/hub/api/{path}", json=body, timeout=30,
                               headers={"Authorization": f"token {self.admin_token}"})
        if answer.status_code >= 400:
            raise AssertionError(f"{method} hub/api/{path} -> {answer.status_code}: {answer.text}")
        return answer

    def add_users(self, names: list[str], *, admin: bool = False) -> None:
        self.api("POST", "users", {"usernames": names, "admin": admin})

    def token(self, name: str, scopes: list[str] | None = None) -> str:
        body = {"note": "framepack test", "scopes": scopes or ["access:services!service=framepack"]}
        return self.api("POST", f"users/{name}/tokens", body).json()["token"]

    def add_group(self, group: str, members: list[str]) -> None:
        self.api("POST", f"groups/{group}")
        self.api("POST", f"groups/{group}/users", {"users": members})

    def start_server(self, name: str, timeout: float = 240) -> None:
        """Spawn `name`'s server and wait until the hub says it is ready."""
        self.api("POST", f"users/{name}/server")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            server = self.api("GET", f"users/{name}").json().get("servers", {}).get("", {})
            if server.get("ready"):
                return
            time.sleep(0.3)
        raise RuntimeError(f"{name}'s server did not start in {timeout:.0f} s:\n{self.log_tail()}")

    def stop_server(self, name: str) -> None:
        answer = httpx.delete(f"{self.url}/hub/api/users/{name}/server", timeout=60,
                              headers={"Authorization": f"token {self.admin_token}"})
        if answer.status_code not in (202, 204, 400, 404):
            raise AssertionError(f"stopping {name}'s server -> {answer.status_code}: {answer.text}")

    def webhook_secret(self) -> str:
        """The service's webhook secret (in its database), to check no student ever receives it."""
        import sqlite3

        with sqlite3.connect(self.db) as db:
            return db.execute("SELECT value FROM meta WHERE key = 'webhook_secret'").fetchone()[0]

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.send_signal(signal.SIGTERM)  # the hub stops its proxy and its managed service itself
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        try:  # anything of the hub's session left behind (it started them in its own process group)
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    @staticmethod
    def dump(value: object) -> str:
        return json.dumps(value, indent=1)
