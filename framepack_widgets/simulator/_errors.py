"""The simulator's own errors: each a `FramepackError`, with the built-in exception callers
may already catch as its second base."""

from __future__ import annotations

from ..errors import FramepackError

__all__ = ["SimulatorError", "UnknownTaskError"]


class SimulatorError(FramepackError, RuntimeError):
    """The simulator cannot do this now (stopped, not started, no state folder, an unusable
    state folder); the message says what to do."""


class UnknownTaskError(SimulatorError, KeyError):
    """The simulator has no task with this id (a `KeyError` too)."""

    def __str__(self) -> str:  # KeyError would show the message quoted
        return str(self.args[0]) if self.args else ""
