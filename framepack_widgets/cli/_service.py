"""`framepack service`: the classroom service, run by JupyterHub as its managed service `framepack`.

The hub starts it with its JUPYTERHUB_* variables (where to listen, the prefix, the hub's
API and the service's own token); the class's PiAPI key comes from PIAPI_API_KEY in the
service's environment, never from an option.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from ..errors import FramepackError
from ._exit import EXIT_BAD_INPUT, EXIT_OK

__all__ = ["service_command"]


def _parser() -> argparse.ArgumentParser:
    from ..service._options import DEFAULT_BUDGET_USD, DEFAULT_MAX_RUNNING, DEFAULT_PORT

    parser = argparse.ArgumentParser(
        prog="framepack service",
        description="The classroom service: holds the class's PiAPI key (PIAPI_API_KEY in its own environment), "
        "answers PiAPI's routes to students with their JupyterHub token, and keeps budgets, tasks and videos. "
        "Run it as the JupyterHub-managed service 'framepack'.",
    )
    parser.add_argument("--port", type=int, default=None,
                        help=f"port to listen on (default: the port of JUPYTERHUB_SERVICE_URL, else {DEFAULT_PORT})")
    parser.add_argument("--host", default=None, help="address to listen on (default: JUPYTERHUB_SERVICE_URL's, "
                                                     "else 127.0.0.1)")
    parser.add_argument("--piapi-url", default=None, metavar="URL",
                        help="PiAPI's address (default: PIAPI_BASE_URL, else https://api.piapi.ai); the offline "
                             "simulator's for a class without a key")
    parser.add_argument("--budget", type=float, default=None, metavar="DOLLARS",
                        help=f"each student's budget in dollars until a teacher changes it (default {DEFAULT_BUDGET_USD:g})")
    parser.add_argument("--max-running", type=int, default=None, metavar="N",
                        help=f"tasks one student may run at once (default {DEFAULT_MAX_RUNNING})")
    parser.add_argument("--db", default=None, metavar="URL",
                        help="postgresql://user@host/db, or an SQLite file (default: DATA_DIR/service.sqlite)")
    parser.add_argument("--data-dir", default=None, metavar="DIR",
                        help="where the videos (and the default SQLite file) are kept (default ./framepack-service)")
    parser.add_argument("--teachers", default=None, metavar="GROUP",
                        help="the hub group whose members teach, besides the hub's admins (default 'teachers')")
    parser.add_argument("--webhook-url", default=None, metavar="URL",
                        help="the service's public https:// address (the hub's, e.g. https://hub.example.org): "
                             "PiAPI then tells the service of finished tasks at once; without it the service polls")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request")
    return parser


def service_command(argv: Sequence[str]) -> int:
    parser = _parser()
    args = parser.parse_args(list(argv))
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="[framepack service %(asctime)s %(levelname)s] %(message)s")
    for name in ("framepack_widgets", "tornado.access"):  # its own story and one line a request; not its libraries'
        logging.getLogger(name).setLevel(logging.DEBUG if args.verbose else logging.INFO)
    from ..service import ServiceOptions, serve

    try:
        options = ServiceOptions.from_environment(
            port=args.port, host=args.host, piapi_url=args.piapi_url, budget_usd=args.budget,
            max_running=args.max_running, db=args.db, teacher_group=args.teachers, webhook_url=args.webhook_url,
            data_dir=Path(args.data_dir) if args.data_dir else None,
            allow_http_webhook=True if args.webhook_url and args.webhook_url.startswith("http://") else None,
        )
        asyncio.run(serve(options))
    except FramepackError as exc:
        print(f"framepack service: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as exc:
        print(f"framepack service: cannot listen ({exc.strerror or exc}); pick another --port", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        pass
    return EXIT_OK
