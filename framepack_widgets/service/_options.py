"""What the service is started with: its options, the environment JupyterHub gives it, and checks.

Everything a person can get wrong is checked here, before anything listens or is sent, with
a message that names the option. The PiAPI key is read from the service's own environment
(`PIAPI_API_KEY`) and kept in the client's `Secret`; it is never an option (options show up
in `ps` and in the hub's logs).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import InvalidInputError
from ._money import micros

__all__ = ["DEFAULT_BUDGET_USD", "DEFAULT_MAX_RUNNING", "DEFAULT_PORT", "ServiceOptions"]

DEFAULT_BUDGET_USD = 3.0
DEFAULT_MAX_RUNNING = 2
DEFAULT_PORT = 10101
#: The longest a long poll (`?wait=N`) holds a request, in seconds (proxies cut idle requests at 60 s).
MAX_WAIT_SECONDS = 55.0


@dataclass
class ServiceOptions:
    """The service's settings. `from_environment()` fills what the options leave open."""

    port: int = DEFAULT_PORT
    host: str = "127.0.0.1"
    piapi_url: str | None = None  # None: PIAPI_BASE_URL, else PiAPI's own address
    budget_usd: float = DEFAULT_BUDGET_USD
    max_running: int = DEFAULT_MAX_RUNNING
    db: str | None = None  # None: an SQLite file in data_dir
    data_dir: Path = field(default_factory=lambda: Path("framepack-service"))
    prefix: str = "/services/framepack/"
    teacher_group: str | None = "teachers"
    webhook_url: str | None = None  # the service's public https:// address: PiAPI's webhooks come there
    allow_http_webhook: bool = False  # tests: a loopback http:// webhook address
    service_name: str = "framepack"

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None, **given: object) -> "ServiceOptions":
        """Options from arguments (`given`, None meaning not given), then JupyterHub's variables
        (JUPYTERHUB_SERVICE_PREFIX, JUPYTERHUB_SERVICE_URL, JUPYTERHUB_SERVICE_NAME), then defaults."""
        env = os.environ if environ is None else environ
        values = {k: v for k, v in given.items() if v is not None}
        if "prefix" not in values and env.get("JUPYTERHUB_SERVICE_PREFIX"):
            values["prefix"] = env["JUPYTERHUB_SERVICE_PREFIX"]
        if "service_name" not in values and env.get("JUPYTERHUB_SERVICE_NAME"):
            values["service_name"] = env["JUPYTERHUB_SERVICE_NAME"]
        hub_url = env.get("JUPYTERHUB_SERVICE_URL")
        if hub_url and ("port" not in values or "host" not in values):
            parts = urlsplit(hub_url)
            if "port" not in values and parts.port:
                values["port"] = parts.port
            if "host" not in values and parts.hostname:
                values["host"] = parts.hostname
        if "data_dir" in values:
            values["data_dir"] = Path(str(values["data_dir"])).expanduser()
        options = cls(**values)  # type: ignore[arg-type]
        options.check()
        return options

    def check(self) -> None:
        """InvalidInputError naming the option, for anything unusable."""
        if not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise InvalidInputError(f"--port must be from 0 to 65535, not {self.port!r}.")
        try:
            micros(self.budget_usd)
        except ValueError:
            raise InvalidInputError(
                f"--budget is each student's budget in dollars (a number >= 0, e.g. 3 or 2.50), not {self.budget_usd!r}."
            ) from None
        if isinstance(self.max_running, bool) or not isinstance(self.max_running, int) or self.max_running < 1:
            raise InvalidInputError(f"--max-running is how many tasks one student may run at once (1 or more), "
                                    f"not {self.max_running!r}.")
        prefix = "/" + self.prefix.strip("/") + "/" if self.prefix.strip("/") else "/"
        self.prefix = prefix
        if self.webhook_url is not None:
            url = self.webhook_url.strip().rstrip("/")
            parts = urlsplit(url)
            loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
            if parts.scheme != "https" and not (parts.scheme == "http" and loopback and self.allow_http_webhook):
                raise InvalidInputError(
                    f"--webhook-url must be the service's public https:// address (PiAPI posts webhooks only "
                    f"to public HTTPS), not {self.webhook_url!r}. Leave it out to poll PiAPI instead."
                )
            self.webhook_url = url

    @property
    def budget_micros(self) -> int:
        return micros(self.budget_usd)

    @property
    def database_url(self) -> str:
        return self.db if self.db else str(self.data_dir / "service.sqlite")

    @property
    def videos_dir(self) -> Path:
        return self.data_dir / "videos"

    @property
    def webhook_endpoint(self) -> str | None:
        """Where PiAPI posts: the public address and this service's webhook route."""
        if not self.webhook_url:
            return None
        base = self.webhook_url
        if not urlsplit(base).path.rstrip("/").endswith(self.prefix.rstrip("/")):
            base = base + self.prefix.rstrip("/")
        return f"{base}/webhook/piapi"

    def max_wait(self, asked: str | None) -> float:
        """A long poll's `?wait=` in seconds, checked and capped; 0 when not asked."""
        if asked is None or asked == "":
            return 0.0
        try:
            value = float(asked)
        except ValueError:
            raise InvalidInputError(f"wait= is a number of seconds (0 to {MAX_WAIT_SECONDS:g}), not {asked!r}.") from None
        if not math.isfinite(value) or value < 0:
            raise InvalidInputError(f"wait= is a number of seconds (0 to {MAX_WAIT_SECONDS:g}), not {asked!r}.")
        return min(value, MAX_WAIT_SECONDS)

