"""Timelines: several prompts, one video, each segment starting from the previous one's last frame.

- `_plan`: `plan_timeline`, the segments checked and priced before anything is sent.
- `_timeline`: `Timeline`, confirmed then driven segment by segment; reopened after a restart.
- `_stitch`: `stitch`, the segments' videos as one H.264 MP4 with no frame repeated at a join.
- `_chain`: `ChainIndex`, which runs continue which (Extend), for "part 2 of 3" and one video.
"""

from __future__ import annotations

from ._chain import ChainIndex
from ._plan import MAX_SEGMENTS, Segment, TimelinePlan, parse_segment, plan_timeline
from ._stitch import StitchResult, stitch, stitched_path
from ._timeline import (
    TIMELINES,
    Timeline,
    TimelineStatus,
    chain_timeline,
    reopen_timeline,
    reopen_timelines,
    start_timeline,
)

__all__ = [
    "ChainIndex",
    "MAX_SEGMENTS",
    "Segment",
    "StitchResult",
    "TIMELINES",
    "Timeline",
    "TimelinePlan",
    "TimelineStatus",
    "chain_timeline",
    "parse_segment",
    "plan_timeline",
    "reopen_timeline",
    "reopen_timelines",
    "start_timeline",
    "stitch",
    "stitched_path",
]
