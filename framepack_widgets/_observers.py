"""Callbacks told when something changes (a run, a sweep, a timeline).

One that raises is logged and skipped: an observer's bug must never stop the work it watches.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Generic, TypeVar

__all__ = ["Observers"]

log = logging.getLogger("framepack_widgets")

T = TypeVar("T")


class Observers(Generic[T]):
    """The callbacks watching one object."""

    __slots__ = ("_callbacks",)

    def __init__(self) -> None:
        self._callbacks: list[Callable[[T], Any]] = []

    def add(self, callback: Callable[[T], Any]) -> Callable[[], None]:
        """Watch; returns a function that stops watching."""
        self._callbacks.append(callback)

        def remove() -> None:
            if callback in self._callbacks:
                self._callbacks.remove(callback)

        return remove

    def notify(self, subject: T) -> None:
        for callback in list(self._callbacks):
            try:
                callback(subject)
            except Exception:
                log.exception("observer %r of %r failed", callback, subject)
