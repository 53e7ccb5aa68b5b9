"""Segments to stitch, made by the tests: H.264 MP4s from one x264, as the simulator writes them.

`chain` makes segments that continue one another (each starts on the picture the one
before ended on), with moving content so every frame differs; `level_clip` makes lossless
clips whose frame i is a flat grey of a known level, to tell which frames a stitch kept.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

FPS = 30
SIZE = (128, 96)
#: What the simulator uses (its GOP aside): B-frames, CABAC, 8x8 transforms, weighted P.
SIMULATOR_X264 = {"crf": "23", "preset": "superfast"}


def scene(t: int, size: tuple[int, int] = SIZE) -> np.ndarray:
    """The RGB picture at time `t`: gradients drifting under a bright square that moves."""
    w, h = size
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([(x * 2 + t * 3) % 256, (y * 3 + t) % 256, (x + y + t * 5) % 256], axis=-1).astype(np.uint8)
    left = (t * 3) % (w - 16)
    img[h // 4 : h // 4 + 16, left : left + 16] = (250, 250, 250)
    return img


def encode(path: Path, pictures: Any, *, gop: int, options: dict[str, str] | None = None,
           size: tuple[int, int] = SIZE) -> Path:
    """An H.264 MP4 of the RGB `pictures` at 30 fps (x264 with `options`, a keyframe every `gop`)."""
    with av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        stream.options = {**SIMULATOR_X264, **(options or {}), "g": str(gop)}
        stream.codec_context.time_base = Fraction(1, FPS)
        container.start_encoding()  # a header even for a clip without frames
        for i, picture in enumerate(pictures):
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, FPS)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def chain(folder: Path, lengths: list[int], *, gop: int, options: dict[str, str] | None = None,
          prefix: str = "segment") -> list[Path]:
    """Segments of these frame counts, each starting on the previous one's last picture."""
    paths, t = [], 0
    for k, n in enumerate(lengths):
        paths.append(encode(folder / f"{prefix}{k}.mp4", (scene(t + i) for i in range(n)), gop=gop, options=options))
        t += n - 1
    return paths


def level_clip(path: Path, frames: int, *, base: int, gop: int) -> Path:
    """A lossless clip whose frame i is a flat grey of level base + 4 i (see `levels`)."""
    pictures = (np.full((SIZE[1], SIZE[0], 3), base + 4 * i, np.uint8) for i in range(frames))
    return encode(path, pictures, gop=gop, options={"crf": "0"})


def levels(path: Path) -> list[int]:
    return [int(round(float(f.mean()))) for f in rgb_frames(path)]


def rgb_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def yuv_frames(path: Path) -> list[np.ndarray]:
    """Decoded frames as they are (no colour conversion), to compare bit for bit."""
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="yuv420p") for f in container.decode(video=0)]


def packets(path: Path) -> list[Any]:
    """(pts, dts, keyframe, bytes) of every packet, in decode order."""
    with av.open(str(path)) as container:
        return [(p.pts, p.dts, p.is_keyframe, bytes(p)) for p in container.demux(video=0) if p.dts is not None]


def keyframes(path: Path) -> list[int]:
    return [i for i, p in enumerate(packets(path)) if p[2]]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * float(np.log10(255.0**2 / mse))
