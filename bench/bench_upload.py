"""How many bytes does a phone photo cost in the create request, raw vs normalised?

Synthesises a realistic 12-megapixel photo (4000x3000: soft scenery, objects with edges,
fine texture and sensor noise; a JPEG of 3-6 MB at quality 95, like a phone camera's),
then compares the create body's start_image as sent (base64 of the normalised image)
with sending the original file as it is (base64 of the file). Goal: at least 10x fewer
bytes. Also times normalisation of that photo.

Run: python bench/bench_upload.py
"""

from __future__ import annotations

import base64
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    from PIL import Image

GOAL_RATIO = 10.0
WIDTH, HEIGHT = 4000, 3000


def _pink_noise(rng: np.random.Generator, height: int, width: int, beta: float) -> np.ndarray:
    """Random field with a 1/f**beta amplitude spectrum, like natural images; unit std."""
    import numpy as np

    fy = np.fft.fftfreq(height).astype(np.float32)[:, None]
    fx = np.fft.rfftfreq(width).astype(np.float32)[None, :]
    freq = np.sqrt(fx * fx + fy * fy)
    freq[0, 0] = 1.0
    amplitude = freq ** np.float32(-beta)
    amplitude[0, 0] = 0.0
    phase = rng.random(amplitude.shape, dtype=np.float32) * np.float32(2 * np.pi)
    field = np.fft.irfft2(amplitude * np.exp(1j * phase).astype(np.complex64), s=(height, width))
    field = field.astype(np.float32)
    return field / field.std()


def synth_photo(width: int = WIDTH, height: int = HEIGHT, seed: int = 12) -> Image.Image:
    """A deterministic photo-like RGB image.

    Natural images have a roughly 1/f amplitude spectrum, so the scenery is 1/f noise
    (luminance plus weaker chroma) over a sky-to-ground gradient, with lens-softened
    objects pasted on, fine texture in some regions only, and sensor noise everywhere.
    """
    import numpy as np
    from PIL import Image, ImageDraw, ImageFilter

    rng = np.random.default_rng(seed)
    y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    img = (np.array([0.56, 0.68, 0.86], np.float32) * (1 - y)
           + np.array([0.34, 0.38, 0.22], np.float32) * y)
    lum = _pink_noise(rng, height, width, 1.2)
    c1 = _pink_noise(rng, height, width, 1.5)
    c2 = _pink_noise(rng, height, width, 1.5)
    img = img + 0.08 * lum[..., None] + 0.04 * np.stack([c1, 0.5 * (c2 - c1), c2], axis=-1)
    del lum, c1, c2

    # Objects with hard edges (buildings, people, leaves...), softened like a real lens.
    canvas = Image.fromarray(np.clip(img * 255.0, 0, 255).astype(np.uint8))
    objects = Image.new("RGB", (width, height))
    mask = Image.new("L", (width, height), 0)
    draw, draw_mask = ImageDraw.Draw(objects), ImageDraw.Draw(mask)
    for _ in range(60):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        w, h = int(rng.integers(60, 900)), int(rng.integers(60, 900))
        colour = tuple(int(c) for c in rng.integers(30, 200, 3))
        if rng.random() < 0.5:
            draw.ellipse((x0, y0, x0 + w, y0 + h), fill=colour)
            draw_mask.ellipse((x0, y0, x0 + w, y0 + h), fill=255)
        else:
            points = [(x0 + int(rng.integers(0, w)), y0 + int(rng.integers(0, h))) for _ in range(5)]
            draw.polygon(points, fill=colour)
            draw_mask.polygon(points, fill=255)
    canvas.paste(objects, (0, 0), mask)
    img = np.asarray(canvas.filter(ImageFilter.GaussianBlur(1.2)), dtype=np.float32) / 255.0

    # Fine texture (foliage, fabric, gravel), strong in some regions and faint in others.
    region = _pink_noise(rng, height, width, 2.5)
    weight = np.clip(0.5 + 0.5 * region, 0.1, 1.0)[..., None]
    img = img * (1.0 + 0.06 * _pink_noise(rng, height, width, 0.6)[..., None] * weight)

    # Sensor noise: luminance plus a little chroma.
    img += rng.normal(0.0, 0.005, (height, width, 1)).astype(np.float32)
    img += rng.normal(0.0, 0.0025, (height, width, 3)).astype(np.float32)
    return Image.fromarray(np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8))


def _mb(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"


def results() -> list[dict]:
    """Measure and return table rows {"bench","metric","figure","goal","met"}."""
    from framepack_widgets.inputs import FramepackInput, normalize_image

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "IMG_0001.jpg"
        synth_photo().save(path, "JPEG", quality=95)
        original = path.read_bytes()

        inp = FramepackInput("the camera slowly pushes in as leaves move in the wind", path)
        sent = inp.request_input()["start_image"]
        raw = base64.b64encode(original).decode("ascii")

        body_raw = json.dumps({"model": "Qubico/framepack", "task_type": "img2video",
                               "input": {**inp.request_input(), "start_image": raw}})
        body_norm = json.dumps({"model": "Qubico/framepack", "task_type": "img2video",
                                "input": inp.request_input()})

        timings = []
        for _ in range(5):
            t0 = time.perf_counter()
            normalize_image(path)
            timings.append(time.perf_counter() - t0)

    src = inp.start_image
    ratio = len(raw) / len(sent)
    return [
        {"bench": "upload size", "metric": "original file on disk",
         "figure": f"{_mb(len(original))} (4000x3000 JPEG q95)", "goal": "3-6 MB (realistic photo)",
         "met": 3e6 <= len(original) <= 6e6},
        {"bench": "upload size", "metric": "start_image sent as is (base64 of file)",
         "figure": f"{_mb(len(raw))}; body {_mb(len(body_raw))}", "goal": "-", "met": None},
        {"bench": "upload size", "metric": "start_image normalised (base64)",
         "figure": f"{_mb(len(sent))} ({src.width}x{src.height} {src.mime}); body {_mb(len(body_norm))}",
         "goal": "-", "met": None},
        {"bench": "upload size", "metric": "reduction",
         "figure": f"{ratio:.1f}x fewer bytes", "goal": f">= {GOAL_RATIO:.0f}x fewer",
         "met": ratio >= GOAL_RATIO},
        {"bench": "upload size", "metric": "normalisation time, 12 MP JPEG",
         "figure": f"{statistics.median(timings) * 1000:.0f} ms median of 5 "
                   f"(min {min(timings) * 1000:.0f}, max {max(timings) * 1000:.0f})",
         "goal": "-", "met": None},
    ]


def _print_table(rows: list[dict]) -> None:
    cols = ["bench", "metric", "figure", "goal", "met"]
    cells = [[str(r[c]) if r[c] is not None else "-" for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    rows = results()
    _print_table(rows)
    sys.exit(0 if all(r["met"] is not False for r in rows) else 1)
