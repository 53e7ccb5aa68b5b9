"""Money as the service counts it: whole micro-dollars, so sums and comparisons are exact.

A budget of $0.90 and three 10 s tasks at $0.03 a second must meet exactly; floats would
leave $0.8999999 and refuse the third. Dollars cross the API (JSON numbers); micro-dollars
are what the database adds up.
"""

from __future__ import annotations

import math

from ..constants import COST_PER_SECOND, MIN_DURATION

__all__ = ["MICROS_PER_USD", "dollars", "micros", "price_micros"]

MICROS_PER_USD = 1_000_000


def micros(usd: float) -> int:
    """Dollars (a budget a person typed) as micro-dollars; ValueError for what is not a sum of money."""
    if isinstance(usd, bool) or not isinstance(usd, (int, float)) or not math.isfinite(usd) or usd < 0:
        raise ValueError(f"a budget is a number of dollars >= 0, not {usd!r}")
    return round(usd * MICROS_PER_USD)


def dollars(value: int) -> float:
    """Micro-dollars as dollars, rounded to the hundredth of a cent."""
    return round(value / MICROS_PER_USD, 4)


def price_micros(duration: int | None) -> int:
    """What PiAPI charges for a task of `duration` seconds (its default when absent)."""
    return round((duration or MIN_DURATION) * COST_PER_SECOND * MICROS_PER_USD)
