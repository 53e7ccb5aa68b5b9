"""Coroutines a widget starts on the kernel's loop and forgets (a balance fetch, an export,
closing its client), kept referenced until they end so asyncio does not drop them."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

__all__ = ["Background", "running_loop"]


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The kernel's running loop, or None outside one (a script, interpreter exit)."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class Background:
    """The tasks one widget has started and not seen end."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> "asyncio.Task[Any] | None":
        """Run a coroutine on the running loop (none running: it is closed, not run)."""
        loop = running_loop()
        if loop is None:
            coro.close()
            return None
        task = loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task
