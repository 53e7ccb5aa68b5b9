"""Which run continues which: the chains that Extend (and timelines) make, for cards and playback.

A run's parent is on the run itself (`parent_id`); its children are only known from the
runs seen. That is enough: a run's continuations are always newer than it, so whoever holds
the newest runs (a widget's history, paged from the newest) holds all of a run's children.
Where a run was continued twice, the newest continuation is the chain's way on (a retried
timeline segment is newer than the one it replaces).
"""

from __future__ import annotations

from collections.abc import Callable

from ..runs import Run

__all__ = ["ChainIndex"]

#: Longest chain followed (a guard against a damaged store whose parents loop).
_MAX_PARTS = 1000


class ChainIndex:
    """The chains among the runs `add`ed; parents not at hand are read through `lookup`."""

    def __init__(self, lookup: Callable[[str], Run | None]) -> None:
        self._lookup = lookup
        self._parent: dict[str, str] = {}
        self._children: dict[str, dict[str, None]] = {}

    def add(self, run: Run) -> bool:
        """Take in a run (again, after a change: a waiting segment may have a new parent).
        True when that changed a chain."""
        old = self._parent.get(run.run_id)
        if old == run.parent_id:
            return False
        if old is not None:
            self._children.get(old, {}).pop(run.run_id, None)
        if run.parent_id:
            self._parent[run.run_id] = run.parent_id
            self._children.setdefault(run.parent_id, {})[run.run_id] = None
        else:
            self._parent.pop(run.run_id, None)
        return True

    def has_links(self, run: Run) -> bool:
        return bool(run.parent_id) or bool(self._children.get(run.run_id))

    def chain(self, run: Run) -> list[Run]:
        """The run's chain, first part first: its ancestors, the run, then its newest continuations."""
        before: list[Run] = []
        seen = {run.run_id}
        parent = run.parent_id
        while parent and parent not in seen and len(before) < _MAX_PARTS:
            found = self._lookup(parent)
            if found is None:
                break
            before.append(found)
            seen.add(found.run_id)
            parent = found.parent_id
        after: list[Run] = []
        current = run
        while len(after) < _MAX_PARTS:
            kids = [k for k in map(self._lookup, self._children.get(current.run_id, ())) if k is not None]
            kids = [k for k in kids if k.run_id not in seen and k.parent_id == current.run_id]
            if not kids:
                break
            current = max(kids, key=lambda k: k.created_at)
            after.append(current)
            seen.add(current.run_id)
        return [*reversed(before), run, *after]

    def position(self, run: Run) -> tuple[int, int] | None:
        """(part, of) for a run in a chain of two or more; None for a run on its own."""
        if not self.has_links(run):
            return None
        chain = self.chain(run)
        if len(chain) < 2:
            return None
        index = next(i for i, r in enumerate(chain) if r.run_id == run.run_id)
        return index + 1, len(chain)
