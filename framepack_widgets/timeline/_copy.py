"""Joining segments by stream copy: their packets as they are, one GOP encoded again per join.

At a join, the earlier segment's last frame and the later segment's first frame are the
same picture (the later one was made from the earlier one's last frame), and one of them
goes. Either sits in a GOP whose other frames refer to it, so that GOP is decoded and
encoded again without it: the later segment's first GOP, or the earlier segment's last GOP
when that one is shorter (as with x264's usual 250-frame GOPs, whose last GOP is the
remainder). Every other packet is copied, bit for bit, its timestamps moved.

The GOPs encoded again must decode under the stream's one `avcC`: x264 is set up from the
segment's own x264 settings and its SPS/PPS are checked against the stream's; when they
differ (another encoder, settings that cannot be repeated), its first packet carries its
own SPS/PPS under ids the stream does not use. Segments that cannot be joined this way at
all (`copyable` says no, or `CannotCopy` is raised on the way) are re-encoded whole by the
caller.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from ..constants import FPS
from ..errors import FramepackError
from ..video.h264 import (
    NAL_PPS,
    NAL_SPS,
    ParameterSets,
    annexb_units,
    avcc_parameter_sets,
    length_prefixed,
    unit_type,
    x264_options_for_headers,
    x264_settings,
)

__all__ = ["CannotCopy", "Joined", "copyable", "join_by_copy"]

#: Packets after a keyframe looked at to be sure none is shown before it (an open GOP).
_REORDER_LOOKAHEAD = 32
#: x264 settings of a GOP encoded again when the segments' own are unknown (not x264's).
_FALLBACK_X264 = {"crf": "20", "keyint": "infinite", "scenecut": "0"}


class CannotCopy(FramepackError):
    """These segments cannot be joined by stream copy (found while copying)."""


@dataclass(frozen=True)
class Joined:
    frames: int
    segment_frames: tuple[int, ...]
    width: int
    height: int
    encoded_frames: int
    dropped: tuple[tuple[int, int], ...]  # at each join, (segment, frame) of the frame that went


@dataclass
class _Segment:
    """One segment's packet timing (no bytes) and where its GOPs may be cut."""

    path: Path
    pts: list[int]  # in decode order
    cuts: list[int]  # packet indices where a GOP starts cleanly (0 first)
    drop_first: bool = False
    drop_last: bool = False
    ranges: list[tuple[int, int]] = field(default_factory=list)  # [a, b) encoded again

    @property
    def count(self) -> int:
        return len(self.pts)

    @property
    def first_gop(self) -> int:
        return self.cuts[1] if len(self.cuts) > 1 else self.count

    @property
    def last_gop(self) -> int:
        return self.cuts[-1]


def _parameters(container: Any) -> tuple[Any, ...] | None:
    if not container.streams.video:
        return None
    stream = container.streams.video[0]
    ctx = stream.codec_context
    return (ctx.name, ctx.profile, ctx.width, ctx.height, ctx.format.name if ctx.format else None,
            stream.time_base, stream.average_rate, bytes(ctx.extradata or b""), stream.codec_tag)


def copyable(paths: Sequence[Path]) -> bool:
    """Whether the segments can be joined by stream copy: H.264 in MP4 (avcC), one set of
    codec parameters, a frame rate that is a whole number of stream ticks per frame."""
    import av

    found = []
    try:
        for path in paths:
            with av.open(str(path)) as container:
                found.append(_parameters(container))
    except (OSError, av.FFmpegError):
        return False
    first = found[0]
    if first is None or first[0] != "h264" or avcc_parameter_sets(first[7]) is None:
        return False
    rate, base = first[6], first[5]
    if not rate or not base or (1 / (rate * base)).denominator != 1:
        return False
    return all(f == first for f in found[1:])


def join_by_copy(paths: Sequence[Path], out: Path, comment: str | None, stop: Callable[[], bool]) -> Joined:
    """Write the segments to `out` as one MP4, each later segment's first frame (or the
    earlier one's last) left out. Raises CannotCopy, ValueError (a segment without frames)
    or InterruptedError (`stop()` turned true)."""
    segments = [_scan(p) for p in paths]
    _choose_sides(segments)
    return _Writer(out, comment, stop).write(segments)


def _scan(path: Path) -> _Segment:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        timing = [(p.pts, p.is_keyframe) for p in container.demux(stream) if p.dts is not None and p.size]
    if not timing:
        raise ValueError(f"{path} has no video frames: it cannot be stitched")
    if not timing[0][1] or any(pts is None for pts, _ in timing):
        raise CannotCopy()
    pts = [t for t, _ in timing]
    cuts, shown = [0], pts[0]
    for index in range(1, len(pts)):
        if timing[index][1] and shown < pts[index]:
            if all(p > pts[index] for p in pts[index + 1 : index + 1 + _REORDER_LOOKAHEAD]):
                cuts.append(index)
        shown = max(shown, pts[index])
    return _Segment(path, pts, cuts)


def _choose_sides(segments: Sequence[_Segment]) -> None:
    """At each join, drop the repeated frame whose GOP costs fewer frames to encode again
    (the later segment's first frame on a tie), then list each segment's ranges."""
    for before, after in zip(segments, segments[1:]):
        left = before.count - int(before.drop_first)  # frames it still has
        done = before.drop_first and before.last_gop == 0  # its one GOP is encoded anyway
        cost_last = 0 if done else before.count - before.last_gop - 1
        cost_first = after.first_gop - 1
        if left > 1 and cost_last < cost_first:
            before.drop_last = True
        else:
            after.drop_first = True
    for segment in segments:
        if segment.drop_first and segment.drop_last and segment.last_gop == 0:
            segment.ranges = [(0, segment.count)]
            continue
        if segment.drop_first:
            segment.ranges.append((0, segment.first_gop))
        if segment.drop_last:
            segment.ranges.append((segment.last_gop, segment.count))


class _Writer:
    """The stitched MP4: segments' packets copied or encoded again, timestamps continued."""

    def __init__(self, path: Path, comment: str | None, stop: Callable[[], bool]) -> None:
        self.path, self.comment, self.stop = path, comment, stop
        self.end = 0  # where the next segment's frames start, in stream ticks
        self.last_dts: int | None = None
        self.encoded = 0

    def write(self, segments: Sequence[_Segment]) -> Joined:
        import av

        with av.open(str(self.path), "w", format="mp4", options={"movflags": "+faststart"}) as output:
            self.output = output
            if self.comment is not None:
                output.metadata["comment"] = self.comment
            for k, segment in enumerate(segments):
                with av.open(str(segment.path)) as container:
                    stream = container.streams.video[0]
                    if k == 0:
                        self.stream = output.add_stream_from_template(stream)
                        self.time_base, self.rate = stream.time_base, Fraction(stream.average_rate)
                        self.tick = int(1 / (self.rate * self.time_base))
                        sets = avcc_parameter_sets(stream.codec_context.extradata)
                        assert sets is not None  # checked by copyable()
                        self.sets = sets
                        width, height = stream.codec_context.width, stream.codec_context.height
                    self._segment(container, stream, segment)
        counts = tuple(s.count for s in segments)
        dropped = tuple((k, s.count - 1) if s.drop_last else (k + 1, 0) for k, s in enumerate(segments[:-1]))
        return Joined(sum(counts) - (len(segments) - 1), counts, width, height, self.encoded, dropped)

    def _segment(self, container: Any, stream: Any, segment: _Segment) -> None:
        stream.codec_context.thread_type = "AUTO"  # before it opens, for the GOPs decoded here
        packets = [p for p in container.demux(stream) if p.dts is not None and p.size]
        if [p.pts for p in packets] != segment.pts:
            raise CannotCopy()  # the file changed since it was scanned
        shown = sorted(segment.pts)
        kept = shown[int(segment.drop_first) : len(shown) - int(segment.drop_last)]
        # This segment's stream ticks -> the stitched video's: its kept frames start at `end`.
        shift = self.end - kept[0] if kept else 0
        index = 0
        for a, b in [*segment.ranges, (segment.count, segment.count)]:
            for packet in packets[index:a]:
                self._put(packet, packet.pts + shift, packet.dts + shift)
                index += 1
                if index % FPS == 0 and self.stop():
                    raise InterruptedError("stitching was stopped")
            if a < b:
                first, last = segment.drop_first and a == 0, segment.drop_last and b == segment.count
                self._encode_again(stream, packets[a:b], shift, first=first, last=last, sample=bytes(packets[0]))
                index = b
        if kept:
            self.end = kept[-1] + shift + self.tick

    def _encode_again(
        self, stream: Any, packets: Sequence[Any], shift: int, *, first: bool, last: bool, sample: bytes
    ) -> None:
        """Decode one GOP and encode it again as it decodes, without its first (or last)
        frame: one frame held at a time, whatever the GOP's length. `sample`: the segment's
        first, where x264 wrote its settings."""
        import av

        decoder = stream.codec_context
        encoder: _GopEncoder | None = None
        when: list[int] = []  # where each frame encoded again is shown
        held, decoded, shown = None, 0, None
        for packet in [*packets, None]:
            for frame in decoder.decode(packet):
                decoded += 1
                if shown is not None and frame.pts <= shown:
                    raise CannotCopy()  # not in display order: let the decoder judge it whole
                shown = frame.pts
                if first and decoded == 1:
                    continue
                if last:  # the GOP's last frame is only known at its end: keep one back
                    held, frame = frame, held
                    if frame is None:
                        continue
                encoder = encoder or _GopEncoder(stream, sample, self.sets, self.rate)
                when.append(frame.pts + shift)
                frame.pts, frame.time_base = len(when) - 1, encoder.time_base
                frame.pict_type = av.video.frame.PictureType.NONE  # x264 chooses the frame types
                for out in encoder.encode(frame):
                    self._put(out, when[out.pts], when[0] + out.dts * self.tick)
                if len(when) % FPS == 0 and self.stop():
                    raise InterruptedError("stitching was stopped")
        decoder.flush_buffers()  # ready for the segment's other GOP, if it has one to encode
        if decoded != len(packets):
            raise CannotCopy()  # a frame that does not decode: let the decoder judge it whole
        if encoder is not None:
            for out in encoder.encode(None):
                self._put(out, when[out.pts], when[0] + out.dts * self.tick)
        self.encoded += len(when)

    def _put(self, packet: Any, pts: int, dts: int) -> None:
        if self.last_dts is not None and dts <= self.last_dts:
            dts = self.last_dts + 1  # after a GOP of another reorder delay
        if dts > pts:
            raise CannotCopy()
        self.last_dts = dts
        packet.pts, packet.dts, packet.time_base = pts, dts, self.time_base
        packet.stream = self.stream
        self.output.mux_one(packet)


class _GopEncoder:
    """x264 for one GOP, whose packets the stream's own `avcC` can decode: set up from the
    segment's x264 settings and checked to give the stream's SPS/PPS; else it writes its
    own parameter sets into its first packet, under ids the stream leaves free."""

    def __init__(self, stream: Any, first_sample: bytes, sets: ParameterSets, rate: Fraction) -> None:
        self.sets = sets
        self.time_base = 1 / rate
        import av

        found = x264_settings(first_sample, sets.length_size)
        options = x264_options_for_headers(found) if found else None
        self.in_band = True
        self.context: Any = None
        if options is not None:
            try:
                context = self._open(stream, options, rate, global_header=True)
            except (av.FFmpegError, ValueError):  # settings this x264 does not take
                options = None
            else:
                if sets.same_as(annexb_units(bytes(context.extradata or b""))):
                    self.context, self.in_band = context, False
        if self.context is None:
            free = sorted(set(range(1, 32)) - sets.ids())
            if not free:
                raise CannotCopy()
            try:
                self.context = self._open(stream, {**(options or _FALLBACK_X264), "sps-id": str(free[0])}, rate,
                                          global_header=False)
            except (av.FFmpegError, ValueError):
                raise CannotCopy() from None

    @staticmethod
    def _open(stream: Any, options: Mapping[str, str], rate: Fraction, *, global_header: bool) -> Any:
        import av

        source = stream.codec_context
        context = av.CodecContext.create("libx264", "w")
        context.width, context.height, context.pix_fmt = source.width, source.height, source.format.name
        context.time_base, context.framerate = 1 / rate, rate
        for name in ("color_range", "colorspace", "color_primaries", "color_trc", "sample_aspect_ratio"):
            value = getattr(source, name, None)
            if value:
                setattr(context, name, value)
        if global_header:
            context.flags |= av.codec.context.Flags.global_header
        context.thread_type = "FRAME"
        context.options = {"preset": "ultrafast", "x264-params": ":".join(f"{k}={v}" for k, v in options.items())}
        context.open()
        return context

    def encode(self, frame: Any) -> list[Any]:
        import av

        packets = []
        for packet in self.context.encode(frame):
            units = annexb_units(bytes(packet))
            if not self.in_band:
                units = [u for u in units if unit_type(u) not in (NAL_SPS, NAL_PPS)]
            copy = av.Packet(length_prefixed(units, self.sets.length_size))
            copy.pts, copy.dts, copy.is_keyframe = packet.pts, packet.dts, packet.is_keyframe
            packets.append(copy)
        return packets
