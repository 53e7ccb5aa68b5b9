"""One video from several: the segments joined by stream copy, encoded again only at the joins.

Segment k + 1 starts on segment k's last frame (that frame is its start image), so one of
those two frames goes: no frame repeats at a join, and the stitched video has the sum of
the segments' frames minus one per join.

The segments come from one encoder. Where their codec parameters match (codec, profile,
size, pixel format, time base, frame rate, SPS/PPS), their packets go into the stitched
MP4 as they are, and only the GOP holding the frame that goes is encoded again (`_copy`):
every other frame is the segments' own, bit for bit. Segments whose parameters differ
are decoded and encoded again whole (the later segment's first frame going at each join),
scaled to the first one's size.

Stitched videos are cached in the run store's folder under the hash of the segment videos'
own hashes (`stitched/<key>.mp4`): the same chain is stitched once. They carry the
timeline's settings in their `comment` tag (`framepack_widgets.video`).

PyAV is imported inside the functions: importing the package stays light.
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from ..constants import FPS
from ..video import PartFile, combined_settings, read_settings, remove_stale_parts, settings_text
from ._copy import CannotCopy, Joined, copyable, join_by_copy

__all__ = ["StitchResult", "stitch", "stitched_path", "STITCH_CRF", "STITCH_PRESET"]

#: x264 settings where every frame is re-encoded (segments that differ). The segments are
#: already H.264 at about this quality, so CRF 20 keeps their frames; "ultrafast" keeps it
#: within a few times the decode time on a 2-core machine, at the price of a larger file.
STITCH_CRF = 20
STITCH_PRESET = "ultrafast"
_STITCH_VERSION = "2"  # bump when the output changes, so cached stitches are not reused

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StitchResult:
    path: Path
    frames: int  # frames written
    segment_frames: tuple[int, ...]  # frames each segment had
    width: int
    height: int
    copied: bool = False  # joined by stream copy (else every frame was encoded again)
    encoded_frames: int = 0  # frames encoded again (the joins' GOPs; every frame when not copied)
    #: At each join, (segment, frame) of the repeated frame that went: the later segment's
    #: first, or the earlier segment's last when its GOP was the cheaper to encode again.
    dropped: tuple[tuple[int, int], ...] = ()


def stitched_path(folder: str | os.PathLike[str], video_keys: Sequence[str]) -> Path:
    """Where the stitch of these videos (by content hash, in order) is cached in a store folder."""
    text = "|".join([_STITCH_VERSION, str(FPS), *video_keys])
    return Path(folder) / "stitched" / f"{hashlib.sha256(text.encode()).hexdigest()[:32]}.mp4"


def stitch(
    paths: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    should_stop: Callable[[], bool] | None = None,
    settings: Mapping[str, Any] | None = None,
) -> StitchResult:
    """Write the segments `paths` as one H.264 MP4 to `out` (atomically), without the
    repeated frame at each join. `settings` go into its `comment` tag (default:
    the segments' own settings, combined, when each carries them). The part files a killed
    stitch left in `out`'s folder are removed first (`video.remove_stale_parts`). Raises
    ValueError for a segment without frames, InterruptedError when `should_stop()` turns true."""
    import av

    if not paths:
        raise ValueError("nothing to stitch: give at least one video")
    sources = [Path(p) for p in paths]
    target = Path(out)
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    remove_stale_parts(target.parent)
    comment = settings_text(settings) if settings is not None else _segments_settings(sources)
    stop = should_stop or (lambda: False)
    with PartFile(target) as part:  # private, like the run store's own files
        joined = None
        if copyable(sources):
            try:
                joined = join_by_copy(sources, part.path, comment, stop)
            except CannotCopy:
                joined = None
            except av.FFmpegError as exc:  # then every frame again, as for segments that differ
                log.warning("stitching by stream copy failed (%s); encoding every frame again", exc)
                joined = None
        copied = joined is not None
        if joined is None:
            joined = _encode_all(sources, part.path, comment, stop)
        part.commit()
    return StitchResult(target, joined.frames, joined.segment_frames, joined.width, joined.height, copied,
                        joined.encoded_frames, joined.dropped)


def _segments_settings(sources: Sequence[Path]) -> str | None:
    """The stitched video's settings from the segments' own, when every one carries them
    (None when one does not, or when together they are more than a tag holds)."""
    parts = [p for p in map(read_settings, sources) if p is not None]
    if len(parts) != len(sources):
        return None
    timelines = {p.get("timeline_id") if isinstance(p.get("timeline_id"), str) else None for p in parts}
    timeline_id = timelines.pop() if len(timelines) == 1 else None
    try:
        return settings_text(combined_settings("timeline" if timeline_id else "chain", parts, timeline_id=timeline_id))
    except ValueError:
        return None


# --------------------------------------------------------------------------- every frame again
def _encode_all(sources: Sequence[Path], path: Path, comment: str | None, stop: Callable[[], bool]) -> Joined:
    """Decode every segment and encode its frames again as one video (segments that differ)."""
    import av

    frames = _Frames(sources)  # decoded in a thread while this one encodes
    written = 0
    size: tuple[int, int] | None = None
    try:
        with av.open(str(path), mode="w", format="mp4", options={"movflags": "+faststart"}) as container:
            if comment is not None:
                container.metadata["comment"] = comment
            stream = None
            for frame in frames:
                if stream is None:
                    size = (frame.width - frame.width % 2, frame.height - frame.height % 2)
                    stream = container.add_stream("libx264", rate=FPS)
                    stream.width, stream.height = size
                    stream.pix_fmt = "yuv420p"
                    stream.options = {"crf": str(STITCH_CRF), "preset": STITCH_PRESET, "g": str(2 * FPS)}
                    stream.codec_context.time_base = Fraction(1, FPS)
                assert size is not None
                if (frame.width, frame.height) != size or frame.format.name != "yuv420p":
                    frame = frame.reformat(width=size[0], height=size[1], format="yuv420p")
                frame.pts = written
                frame.time_base = Fraction(1, FPS)
                frame.pict_type = av.video.frame.PictureType.NONE
                for packet in stream.encode(frame):
                    container.mux(packet)
                written += 1
                if written % FPS == 0 and stop():
                    raise InterruptedError("stitching was stopped")
            assert stream is not None
            for packet in stream.encode(None):
                container.mux(packet)
    finally:
        frames.close()
    assert size is not None
    return Joined(written, tuple(frames.counts), size[0], size[1], written,
                  tuple((k, 0) for k in range(1, len(frames.counts))))


class _Frames:
    """The frames to stitch, decoded in a worker thread (PyAV releases the GIL while it
    decodes), a few frames ahead of the encoder."""

    _END = object()

    def __init__(self, paths: Sequence[str | os.PathLike[str]], ahead: int = 32) -> None:
        self.paths = list(paths)
        self.counts: list[int] = []
        self._queue: queue.Queue[object] = queue.Queue(maxsize=ahead)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._decode, name="framepack-stitch-decode", daemon=True)
        self._thread.start()

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _decode(self) -> None:
        import av

        try:
            for k, path in enumerate(self.paths):
                seen = 0
                with av.open(str(path)) as source:
                    if not source.streams.video:
                        raise ValueError(f"{path} has no video frames: it cannot be stitched")
                    decoder = source.streams.video[0]
                    decoder.thread_type = "AUTO"
                    for frame in source.decode(decoder):
                        seen += 1
                        if k > 0 and seen == 1:
                            continue  # the previous segment's last frame, again: not repeated
                        if not self._put(frame):
                            return
                if seen == 0:
                    raise ValueError(f"{path} has no video frames: it cannot be stitched")
                self.counts.append(seen)
            self._put(self._END)
        except BaseException as exc:  # handed to the encoding thread, which raises it
            self._put(exc)

    def __iter__(self):  # type: ignore[no-untyped-def]
        while True:
            item = self._queue.get()
            if item is self._END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
