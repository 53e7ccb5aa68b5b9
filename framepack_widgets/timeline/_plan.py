"""A timeline's plan: its segments checked and priced before anything exists or is sent.

Every segment is validated as the input it will become (prompt, negative prompt, duration;
the end image on the last one). Segments after the first start from the previous segment's
last frame, which does not exist yet: they are validated with the timeline's start image in
its place, and get their real start image when they are sent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from ..errors import InvalidInputError
from ..sweeps import CostLimitError, cost_cap

if TYPE_CHECKING:  # pragma: no cover
    from ..inputs import FramepackInput

__all__ = ["Segment", "TimelinePlan", "plan_timeline", "parse_segment", "MAX_SEGMENTS"]

#: A timeline longer than this is refused unless `max_segments=` says otherwise (a typo guard).
MAX_SEGMENTS = 20


class Segment(NamedTuple):
    """One part of a timeline as a person writes it: what happens, for how long."""

    prompt: str
    duration: int


def money(value: float) -> str:
    return f"${value:,.2f}"


def parse_segment(value: Any, index: int) -> tuple[Any, Any]:
    """(prompt, duration) from a pair, a {"prompt", "duration"} mapping or "PROMPT:SECONDS"."""
    if isinstance(value, str):
        prompt, sep, seconds = value.rpartition(":")
        if not sep or not seconds.strip().isdigit():
            raise InvalidInputError(
                f"Timeline segment {index + 1} ({value!r}) must be \"PROMPT:SECONDS\", e.g. \"the camera zooms in:10\"."
            )
        return prompt, int(seconds)
    if isinstance(value, Mapping):
        return value.get("prompt", ""), value.get("duration")
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return value[0], value[1]
    raise InvalidInputError(
        f"Timeline segment {index + 1} must be a (prompt, duration) pair, not {type(value).__name__} {value!r}."
    )


@dataclass(frozen=True)
class TimelinePlan:
    """The validated inputs of a timeline's segments, in order, and what they cost.

    `inputs[0]` is the first segment exactly as it will be sent; the others hold the
    timeline's start image as a stand-in for the previous segment's last frame."""

    inputs: tuple["FramepackInput", ...]

    @property
    def segments(self) -> list[Segment]:
        return [Segment(i.prompt, i.duration) for i in self.inputs]

    @property
    def count(self) -> int:
        return len(self.inputs)

    @property
    def total_seconds(self) -> int:
        return sum(i.duration for i in self.inputs)

    @property
    def total_cost_usd(self) -> float:
        return round(sum(float(i.cost_usd) for i in self.inputs), 2)

    def describe(self) -> str:
        """'3 segments, 60 s in all, $1.80'."""
        n = self.count
        return f"{n} segment{'s' if n != 1 else ''}, {self.total_seconds} s in all, {money(self.total_cost_usd)}"

    def check_cost(self, max_cost: float | None) -> None:
        """Raise CostLimitError when the total exceeds `max_cost` (None: no cap)."""
        cap = cost_cap(max_cost)
        if cap is not None and self.total_cost_usd > cap + 1e-9:
            raise CostLimitError(
                f"This timeline would cost {money(self.total_cost_usd)} ({self.describe()}), more than the "
                f"max_cost cap of {money(cap)}. Nothing was sent. Use fewer or shorter segments, or raise max_cost.",
                total_cost_usd=self.total_cost_usd,
                max_cost_usd=cap,
            )


def plan_timeline(
    start_image: Any,
    segments: Sequence[Any],
    *,
    negative_prompt: str = "",
    end_image: Any = None,
    max_cost: float | None = None,
    max_segments: int = MAX_SEGMENTS,
) -> TimelinePlan:
    """Check and price a timeline; nothing is sent.

    `segments`: (prompt, duration) pairs (or {"prompt", "duration"} mappings, or
    "PROMPT:SECONDS" strings), durations in whole seconds within the model's limits.
    `start_image` starts the first segment; `end_image` (optional) is where the last one
    ends. Raises InvalidInputError naming the bad segment, or CostLimitError over `max_cost`.
    """
    from ..inputs import FramepackInput, normalize_image

    if isinstance(segments, (str, bytes)) or not isinstance(segments, Sequence):
        raise InvalidInputError("segments must be a list of (prompt, duration) pairs, e.g. [(\"zoom in\", 10)]")
    if not segments:
        raise InvalidInputError("A timeline needs at least one segment: give a list of (prompt, duration) pairs.")
    if len(segments) > max_segments:
        raise InvalidInputError(
            f"This timeline has {len(segments)} segments, more than max_segments={max_segments}. Nothing was sent. "
            "Use fewer, longer segments, or pass a larger max_segments if you mean it."
        )
    start = normalize_image(start_image, what="start image")
    end = None if end_image is None else normalize_image(end_image, what="end image")
    inputs: list[FramepackInput] = []
    last = len(segments) - 1
    for index, value in enumerate(segments):
        prompt, duration = parse_segment(value, index)
        try:
            inputs.append(FramepackInput(
                prompt, start, end_image=end if index == last else None, negative_prompt=negative_prompt,
                duration=duration,
            ))
        except InvalidInputError as exc:
            shown = prompt if not isinstance(prompt, str) or len(prompt) <= 40 else prompt[:39] + "…"
            raise InvalidInputError(f"Timeline segment {index + 1} ({shown!r}, {duration!r} s): {exc}") from exc
    plan = TimelinePlan(tuple(inputs))
    plan.check_cost(max_cost)
    return plan
