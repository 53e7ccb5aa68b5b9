"""A day's budget for one run store: what today's runs cost, and refusing what would pass it.

What counts toward a day's spend, read from the store (so it survives a kernel restart and is
shared by every kernel on the store): the runs **created that local day** (from local
midnight) **on the same backend** (simulated runs never count against a PiAPI budget, nor the
other way round), each at its list price (`Run.cost_usd`), when it

- is charged, or may be: it completed; or PiAPI accepted its create (it has a task id) and it
  did not end failed (PiAPI charges nothing for a failed task) or cancelled; or its create's
  outcome is unknown (SUBMISSION_UNKNOWN: it may have been charged);
- or is on its way: stored and being sent (QUEUED in a running kernel, SUBMITTING), or a
  segment of a confirmed timeline waiting for its turn (WAITING). Counting these is what
  keeps two quick Generates from passing the budget together.

Not counted: failed or cancelled runs, runs that ended in an error before PiAPI made a task,
and runs a stopped kernel stored but never sent (QUEUED with no owner: they count once the
person sends them, which is checked like any run). `counts_toward_spend` is the same rule
for the widget's session figure. A confirmed sweep that starts its runs as slots free up keeps
the rest of its price aside (`BudgetHold`) until it has started them.

Money is added up in hundredths of a cent, so $0.03 x 10 s x 3 meets a $0.90 budget exactly.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._observers import Observers
from ..constants import cost_usd
from ..errors import BudgetExceededError, InvalidInputError
from .stages import RunStage

if TYPE_CHECKING:  # pragma: no cover
    from .store import RunStore

__all__ = ["Budget", "BudgetHold", "budget_limit", "budget_of", "counts_toward_spend", "day_start"]

_UNITS = 10_000  # hundredths of a cent per dollar
#: Stored and going to be sent, or a confirmed timeline's segment waiting for its turn.
ON_ITS_WAY = frozenset({RunStage.QUEUED, RunStage.SUBMITTING, RunStage.WAITING})
#: Ended without a charge, even with a task id.
NOT_CHARGED = frozenset({RunStage.FAILED, RunStage.CANCELLED})


def _units(usd: float) -> int:
    return round(usd * _UNITS)


def _usd(units: int) -> float:
    return round(units / _UNITS, 4)


def _money(usd: float) -> str:
    return f"${usd:,.2f}"


def counts_toward_spend(stage: RunStage, task_id: str | None) -> bool:
    """Whether a run's price counts as spent, or about to be (see the module's docstring)."""
    if stage in ON_ITS_WAY or stage in (RunStage.COMPLETED, RunStage.SUBMISSION_UNKNOWN):
        return True
    return task_id is not None and stage not in NOT_CHARGED


def day_start(now: float | None = None) -> float:
    """Epoch seconds of the last local midnight (of `now`, default now)."""
    t = time.localtime(now)
    return time.mktime((t.tm_year, t.tm_mon, t.tm_mday, 0, 0, 0, 0, 0, -1))


def budget_limit(value: Any) -> float | None:
    """A `budget=` argument as US dollars a day (None: no cap), or InvalidInputError."""
    if value is None:
        return None
    try:
        usd = math.nan if isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        usd = math.nan
    if not (math.isfinite(usd) and usd >= 0):
        raise InvalidInputError(f"budget must be US dollars a day, 0 or more (e.g. budget=5.00), not {value!r}.")
    return usd


def budget_of(runner: Any) -> "Budget | None":
    """The budget a runner checks (None: none; any object without one, e.g. a test's stand-in)."""
    return getattr(runner, "budget", None)


class Budget:
    """`limit_usd` US dollars a day that runs on `backend` may cost in one run store; None adds
    the day's spend up without a cap. Refuses (`check`) before anything is sent."""

    def __init__(self, limit_usd: float | None, store: "RunStore", *, backend: str) -> None:
        self.limit_usd = budget_limit(limit_usd)
        self.store = store
        self.backend = backend
        self._held: dict[int, int] = {}
        self._ids = itertools.count()
        self._refused: Observers[BudgetExceededError] = Observers()

    def observe(self, callback: Callable[[BudgetExceededError], Any]) -> Callable[[], None]:
        """Call `callback(error)` at every refusal, before it is raised (the widget shows it
        under its inputs, whoever asked: a button or Python). Returns a function that stops it."""
        return self._refused.add(callback)

    def _day_units(self) -> int:
        total = 0
        for stage, task_id, owner, duration in self.store.created_since(day_start(), backend=self.backend):
            if stage is RunStage.QUEUED and owner is None:
                continue  # stored by a stopped kernel, never sent: waits for the person's word
            if counts_toward_spend(stage, task_id):
                total += _units(cost_usd(duration))
        return total

    def spent_today(self) -> float:
        """What today's runs cost, charged or on their way (US dollars)."""
        return _usd(self._day_units())

    def left(self) -> float | None:
        """What is left of today's budget (None without one)."""
        if self.limit_usd is None:
            return None
        return _usd(max(0, _units(self.limit_usd) - self._day_units() - sum(self._held.values())))

    def check(self, cost: float, *, what: str = "this run") -> None:
        """Raise BudgetExceededError when `cost` (US dollars) would take today's spend past the budget."""
        if self.limit_usd is None:
            return
        limit, spent, asked = _units(self.limit_usd), self._day_units() + sum(self._held.values()), _units(cost)
        if spent + asked <= limit:
            return
        left = _usd(max(0, limit - spent))
        error = BudgetExceededError(
            f"Today's budget: {_money(left)} of {_money(self.limit_usd)} left; {what} costs {_money(cost)}. "
            "Nothing was sent. Try a shorter video, raise the budget (budget= or FRAMEPACK_BUDGET), "
            "or wait until tomorrow.",
            budget_usd=self.limit_usd, spent_usd=_usd(spent), left_usd=left, cost_usd=cost,
        )
        self._refused.notify(error)
        raise error

    def hold(self, cost: float, *, what: str) -> "BudgetHold":
        """Check `cost`, then keep it aside until drawn (as runs are stored) or released."""
        self.check(cost, what=what)
        key = next(self._ids)
        self._held[key] = _units(cost)
        return BudgetHold(self._held, key)

    def summary(self) -> dict[str, float | None]:
        """What the header shows: today's spend and the budget."""
        return {"today": self.spent_today(), "budget": self.limit_usd}

    def __repr__(self) -> str:
        cap = "no cap" if self.limit_usd is None else f"{_money(self.limit_usd)} a day"
        return f"<Budget {cap}, today {_money(self.spent_today())} ({self.backend})>"


class BudgetHold:
    """Money a confirmed sweep keeps aside for the runs it has not stored yet."""

    def __init__(self, held: dict[int, int], key: int) -> None:
        self._held = held
        self._key = key

    def draw(self, cost: float) -> None:
        """A run of `cost` is being stored now: it counts from the store from here on."""
        if self._key in self._held:
            self._held[self._key] = max(0, self._held[self._key] - _units(cost))

    def release(self) -> None:
        """Nothing more will be stored (done or cancelled): let go of the rest."""
        self._held.pop(self._key, None)
