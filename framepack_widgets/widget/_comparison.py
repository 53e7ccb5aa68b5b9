"""The comparison grid: 2 to `MAX_COMPARED` runs side by side, and which runs are selected.

`comparison` is what the grid draws (each run against the first, labelled by its number,
and which fields differ); `selected` is the runs picked on their cards (the browser sets it
too). A finished sweep opens its runs here, under its id. Runs are given as Run objects, run
ids, or run numbers (3 or "#3", as the cards show them).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import traitlets as t

from ..constants import MAX_COMPARED
from ..errors import InvalidInputError
from . import _protocol as proto

if TYPE_CHECKING:  # pragma: no cover
    from ..runs import Run, Runner
    from ._index import RunIndex

__all__ = ["Comparison"]


class Comparison(t.HasTraits):
    """The runs compared in one widget, and those selected on their cards."""

    comparison = t.Dict()
    selected = t.List(t.Unicode())

    def __init__(self, index: "RunIndex", runner: "Runner | None" = None) -> None:
        super().__init__()
        self._index = index
        self._runner = runner

    def by_number(self, ref: Any) -> Any:
        """The run a number names (3 or "#3": its number in the store); any other ref as it is."""
        number = ref if isinstance(ref, int) and not isinstance(ref, bool) else None
        if isinstance(ref, str) and re.fullmatch(r"#\d+", ref.strip()):
            number = int(ref.strip()[1:])
        if number is None:
            return ref
        for run in self._index.runs:
            if run.seq == number:
                return run
        found = self._runner.list(limit=1, before=number + 1) if self._runner is not None else []
        if found and found[0].seq == number:  # the store's newest run up to that number is that one
            return found[0]
        raise InvalidInputError(f"There is no run #{number} in this run store: pass a number from the history cards.")

    def show(self, refs: Sequence[Any], *, sweep_id: str | None = None) -> None:
        """Compare these runs (Run objects or run ids, 2 to `MAX_COMPARED` different ones);
        none closes the grid."""
        if len(refs) == 1 and isinstance(refs[0], (list, tuple)):
            refs = tuple(refs[0])
        if not refs:
            self.comparison = {}
            return
        resolved: list[Run] = []
        for run in self._index.resolve([self.by_number(ref) for ref in refs]):
            if all(r.run_id != run.run_id for r in resolved):
                resolved.append(run)
        if not 2 <= len(resolved) <= MAX_COMPARED:
            raise InvalidInputError(
                f"Compare takes 2 to {MAX_COMPARED} different runs (got {len(resolved)}): pick others."
            )
        self.selected = [r.run_id for r in resolved]
        grid = proto.comparison(resolved)
        self.comparison = {**grid, "sweep_id": sweep_id} if sweep_id is not None else grid

    @property
    def sweep_id(self) -> str | None:
        """The sweep whose runs the grid shows (opened when it finished), if any."""
        return self.comparison.get("sweep_id")

    def runs(self) -> "list[Run]":
        """The compared runs; InvalidInputError when nothing is compared."""
        runs = [self._index.lookup(i) for i in (self.comparison or {}).get("run_ids", [])]
        if not runs:
            raise InvalidInputError("Nothing is being compared: call widget.compare(run_a, run_b) first.")
        return [r for r in runs if r is not None]

    def selected_runs(self) -> "list[Run]":
        """The selected runs that exist (ids of deleted runs are skipped)."""
        return [r for r in map(self._index.lookup, self.selected) if r is not None]
