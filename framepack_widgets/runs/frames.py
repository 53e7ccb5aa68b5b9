"""A run's video read back as pictures: its exact last frame (what Extend and timelines
continue from).

PyAV is imported inside the function: importing the runs stays light.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InvalidInputError

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

__all__ = ["decode_last_frame"]


def decode_last_frame(path: Path) -> "Image.Image":
    """The last frame of the video at `path`, decoded (not a keyframe guess): it seeks to
    about a second before the end and decodes to the end, or from the start when seeking fails."""
    import av

    def last_of(seek: bool) -> Any:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            if seek and stream.duration and stream.time_base:
                back = int(1 / stream.time_base)  # one second, in the stream's units
                container.seek(max(0, stream.duration - back), stream=stream)
            frame = None
            for frame in container.decode(stream):  # noqa: B007
                pass
            return frame

    frame = last_of(seek=True) or last_of(seek=False)
    if frame is None:
        raise InvalidInputError(
            f"{path} has no video frames (the file may be damaged): runner.reattach(run) downloads it again."
        )
    return frame.to_image()
