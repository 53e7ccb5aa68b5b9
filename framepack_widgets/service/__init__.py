"""The classroom service: one PiAPI key, the class's budgets and gallery, behind JupyterHub.

`framepack service` runs it as the hub-managed service `framepack`. Students' clients talk
PiAPI's own routes to it with their hub token in place of a key; it alone holds the key,
reserves each create's price in one database transaction before forwarding it (PostgreSQL,
or SQLite as the embedded default), makes creates idempotent (`Idempotency-Key`), keeps
tasks private to their owners, keeps the videos, and lets clients wait without polling.

The modules, one concept each: `_options` (settings, checked), `_money`, `_schema` and
`_databases` (the tables and the two databases), `_store` (the class's state and the
reservation), `_upstream` (the package's AsyncClient toward PiAPI), `_follow` (following
tasks, waking waiters), `_classroom` (the rules), `_views` (what students and teachers are
answered), `_auth` (hub tokens and teachers), `_handlers` and `_teacher` (the routes), `_page`
(the root: the teacher's page behind the hub's login), `_app` (the server and its lifecycle).
It sits at the top of the package: nothing imports it.
"""

from __future__ import annotations

from ._classroom import ClassService, Identity
from ._options import ServiceOptions

__all__ = ["ClassService", "Identity", "ServiceOptions", "serve", "start_app"]


def __getattr__(name: str):  # tornado and jupyterhub load only when the server is wanted
    if name in ("serve", "start_app"):
        from . import _app

        return getattr(_app, name)
    raise AttributeError(name)
