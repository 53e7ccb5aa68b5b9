"""One video from several: the segments' frames, in order, re-encoded as one H.264 MP4.

Segment k + 1 starts on segment k's last frame (that frame is its start image), so the
first frame of every segment after the first is dropped: no frame repeats at a join, and
the stitched video has the sum of the segments' frames minus one per join. Frames are
passed from the decoder to the encoder as they are (no RGB round trip), so stitching costs
one decode and one encode; a segment of another size is scaled to the first one's.

Stitched videos are cached in the run store's folder under the hash of the segment videos'
own hashes (`stitched/<key>.mp4`): the same chain is stitched once.

PyAV is imported inside the functions: importing the package stays light.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from ..constants import FPS

__all__ = ["StitchResult", "stitch", "stitched_path", "STITCH_CRF", "STITCH_PRESET"]

#: x264 settings for the stitched video. The segments are already H.264 at about this
#: quality, so CRF 20 keeps their frames (bench_timeline measures the PSNR against them);
#: "ultrafast" keeps stitching within a few times the decode time on a 2-core machine
#: ("superfast" halves the file but takes ~1.4x as long), at the price of a larger file.
STITCH_CRF = 20
STITCH_PRESET = "ultrafast"
_STITCH_VERSION = "1"  # bump when the output changes, so cached stitches are not reused


@dataclass(frozen=True)
class StitchResult:
    path: Path
    frames: int  # frames written
    segment_frames: tuple[int, ...]  # frames each segment had
    width: int
    height: int


def stitched_path(folder: str | os.PathLike[str], video_keys: Sequence[str]) -> Path:
    """Where the stitch of these videos (by content hash, in order) is cached in a store folder."""
    text = "|".join([_STITCH_VERSION, str(FPS), *video_keys])
    return Path(folder) / "stitched" / f"{hashlib.sha256(text.encode()).hexdigest()[:32]}.mp4"


def stitch(
    paths: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    should_stop: Callable[[], bool] | None = None,
) -> StitchResult:
    """Write the segments `paths` as one H.264 MP4 at `FPS` to `out` (atomically), dropping
    the first frame of every segment after the first. Raises ValueError for a segment
    without frames, InterruptedError when `should_stop()` turns true."""
    import av

    if not paths:
        raise ValueError("nothing to stitch: give at least one video")
    target = Path(out)
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.stem}.{uuid.uuid4().hex[:8]}.part.mp4")
    tmp.touch(mode=0o600)  # private, like the run store's own files
    frames = _Frames(paths)  # decoded in a thread while this one encodes
    written = 0
    size: tuple[int, int] | None = None
    try:
        with av.open(str(tmp), mode="w", format="mp4", options={"movflags": "+faststart"}) as container:
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
                for packet in stream.encode(frame):
                    container.mux(packet)
                written += 1
                if should_stop is not None and written % FPS == 0 and should_stop():
                    raise InterruptedError("stitching was stopped")
            assert stream is not None
            for packet in stream.encode(None):
                container.mux(packet)
        os.replace(tmp, target)
    finally:
        frames.close()
        if tmp.exists():
            tmp.unlink()
    assert size is not None
    return StitchResult(target, written, tuple(frames.counts), size[0], size[1])


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
