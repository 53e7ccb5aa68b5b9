"""Decode, clean and re-encode images for a Framepack request (the heavy half of inputs.py).

FramePack works at about 640 px, so sending a 12-megapixel phone photo as base64 wastes
megabytes per request. Everything here turns "whatever the user has" into one small,
upright, sRGB, metadata-free JPEG (or PNG when that is smaller), or refuses it with a
message that says what the file is and what to do instead.

This module imports PIL at import time; `inputs.py` imports it lazily, so only code that
actually touches pixels pays for PIL (numpy is imported only for arrays).
"""

from __future__ import annotations

import io
import threading
from typing import Any

from PIL import Image, ImageFile, ImageOps

from .errors import InvalidInputError

# Formats Pillow may open. Restricting the list keeps odd, rarely audited decoders away
# from untrusted bytes. The JPEG opener also returns MPO (a camera JPEG with a preview or
# depth image appended); AVIF is decoded when this Pillow build supports it, HEIF when
# pillow-heif is installed (see _heif_available).
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "AVIF", "HEIF")
ACCEPTED_TEXT = "JPEG, PNG, WebP, GIF, BMP or TIFF"

# Refuse images whose header claims more pixels than this before decoding any of them:
# a larger claim is a damaged file or a decompression bomb (a few kB that inflate to GBs).
# Same as Pillow's default warning threshold, so accepted images never trigger its
# DecompressionBombWarning (and no global warning filters need changing).
MAX_PIXELS = 89_478_485
# Refuse inputs bigger than this before reading them into memory.
MAX_FILE_BYTES = 256 * 1024 * 1024

JPEG_QUALITY = 90
# Only try PNG when the picture has few distinct colours (graphics, screenshots,
# diagrams, cartoons: PNG is 2-15x smaller there); for photos PNG is ~10x larger than
# JPEG and slow to encode, and counting up to this many colours bails out in a few ms.
PNG_MAX_COLORS = 4096  # flat graphics; above this JPEG wins and PNG costs 100+ ms
# Keep an already compact JPEG/PNG byte for byte (no generation loss, same sha256) when
# it is at most this much larger than our own re-encoding would be.
PASSTHROUGH_SLACK = 1.10
# Info keys that are harmless to send; anything else (EXIF with GPS, XMP, ICC profiles,
# PNG text chunks such as generation parameters) forces a clean re-encode.
_HARMLESS_INFO = frozenset(
    {"jfif", "jfif_version", "jfif_unit", "jfif_density", "dpi", "progressive",
     "progression", "srgb", "interlace", "aspect"}
)

_truncation_lock = threading.Lock()


def fail(what: str, label: str, problem: str) -> InvalidInputError:
    """Build the error: '<What> <label> <problem>'."""
    head = what[:1].upper() + what[1:]
    return InvalidInputError(f"{head}{' ' + label if label else ''} {problem}")


# --------------------------------------------------------------------------- sniffing


def _ftyp_brand(data: bytes) -> str | None:
    if len(data) >= 12 and data[4:8] == b"ftyp":
        return data[8:12].decode("latin-1").strip().lower()
    return None


_HEIF_BRANDS = {"heic", "heix", "hevc", "hevx", "heim", "heis", "hevm", "hevs", "mif1", "msf1"}
_AVIF_BRANDS = {"avif", "avis"}


def _heif_available() -> bool:
    try:
        import pillow_heif  # type: ignore[import-not-found]
    except Exception:
        return False
    try:
        pillow_heif.register_heif_opener()
    except Exception:  # pragma: no cover - broken optional install
        return False
    return True


def sniff_refusal(data: bytes) -> str | None:
    """Recognise well-known things that are not (supported) images, for a precise message.

    Returns the problem text, or None when the bytes may be an image Pillow can read.
    """
    if not data:
        return "is empty (0 bytes); pick the image file again or re-download it."
    head = data[:1024]
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    lower = stripped.lower()
    if lower.startswith(b"<svg") or (
        (lower.startswith(b"<?xml") or lower.startswith(b"<!doctype svg") or lower.startswith(b"<!--"))
        and b"<svg" in lower
    ):
        return "is an SVG (a vector drawing), which can't be sent; export it as PNG or JPEG."
    if lower.startswith((b"<!doctype html", b"<html", b"<head", b"<body")):
        return (
            "is an HTML page, not an image (a 'copy link' often gives the page, not the picture); "
            "save the image itself as PNG or JPEG, or use the image's own http(s) URL."
        )
    brand = _ftyp_brand(data)
    if brand in _HEIF_BRANDS:
        if _heif_available():
            return None
        return (
            "is a HEIC/HEIF photo (the iPhone camera format), which can't be decoded here; "
            "export it as JPEG (on iPhone: Settings > Camera > Formats > Most Compatible), "
            "or `pip install pillow-heif` and try again."
        )
    if brand in _AVIF_BRANDS:
        from PIL import features

        if features.check("avif"):
            return None
        return "is an AVIF image, which this Pillow can't decode; export it as PNG or JPEG."
    if brand is not None:
        return (
            "is a video (MP4/MOV), not an image; save the frame you want as PNG or JPEG "
            "and use that."
        )
    if head.startswith(b"%PDF"):
        return "is a PDF; export the page you want as PNG or JPEG."
    if head.startswith(b"PK\x03\x04"):
        return "is a ZIP archive (or an Office document), not an image; unpack it and pick the image."
    if head.startswith(b"8BPS"):
        return "is a Photoshop PSD; export it as PNG or JPEG."
    return None


def _looks_like_text(data: bytes) -> bool:
    sample = data[:512]
    try:
        text = sample.decode("utf-8")
    except UnicodeDecodeError:
        # A multi-byte character may be cut at the sample's end.
        try:
            text = sample[:-3].decode("utf-8")
        except UnicodeDecodeError:
            return False
    return bool(text) and all(ch.isprintable() or ch in "\r\n\t" for ch in text)


def _unidentified_problem(data: bytes) -> str:
    """Say what the bytes are when none of the accepted decoders recognised them."""
    if _looks_like_text(data):
        return f"is text, not an image; use a {ACCEPTED_TEXT} file."
    # Name the format when some other Pillow decoder knows it (header parse only).
    try:
        with Image.open(io.BytesIO(data)) as other:
            name = other.format
    except Exception:
        name = None
    if name:
        return f"is a {name} image, which isn't accepted; save it as PNG or JPEG."
    return (
        f"isn't an image this tool can read (accepted: {ACCEPTED_TEXT}); "
        "check the file or save it as PNG or JPEG."
    )


# --------------------------------------------------------------------------- decoding


class _StrictLoading:
    """Decode with LOAD_TRUNCATED_IMAGES off, so a cut-off file fails instead of being padded grey.

    Pillow's switch is global: when someone turned it on, it is switched off for the
    duration of the decode under a lock (decodes then run one at a time); in the default
    state nothing is touched and decodes run in parallel.
    """

    def __enter__(self) -> None:
        self._locked = bool(ImageFile.LOAD_TRUNCATED_IMAGES)
        if self._locked:
            _truncation_lock.acquire()
            self._saved = ImageFile.LOAD_TRUNCATED_IMAGES
            ImageFile.LOAD_TRUNCATED_IMAGES = False

    def __exit__(self, *exc: object) -> None:
        if self._locked:
            ImageFile.LOAD_TRUNCATED_IMAGES = self._saved
            _truncation_lock.release()


def _bomb_problem(width: int, height: int) -> str:
    return (
        f"claims to be {width}x{height} pixels ({width * height / 1e6:.0f} megapixels), over the "
        f"{MAX_PIXELS / 1e6:.0f}-megapixel safety limit; a claim this large usually means a "
        "damaged file or a decompression bomb. If it is a real picture, resize it first."
    )


def _open_bytes(data: bytes, *, what: str, label: str, max_side: int) -> tuple[Image.Image, str]:
    """Open and fully decode the first frame; return (image, format)."""
    refusal = sniff_refusal(data)
    if refusal:
        raise fail(what, label, refusal)
    Image.init()
    formats = [name for name in ACCEPTED_FORMATS if name in Image.OPEN]
    try:
        img = Image.open(io.BytesIO(data), formats=formats)
    except Image.DecompressionBombError:
        raise fail(
            what, label,
            "claims more pixels than Pillow's safety limit allows; that usually means a damaged "
            "file or a decompression bomb. If it is a real picture, resize it below "
            f"{MAX_PIXELS / 1e6:.0f} megapixels first.",
        ) from None
    except Image.UnidentifiedImageError:
        raise fail(what, label, _unidentified_problem(data)) from None
    except Exception as exc:  # damaged headers raise all sorts of things
        raise fail(
            what, label, f"is truncated or damaged ({exc}); re-export or re-download it, or save it as PNG or JPEG."
        ) from None

    fmt = img.format or "?"
    width, height = img.size
    if width < 1 or height < 1:
        raise fail(what, label, f"has no pixels ({width}x{height}); use a real picture.")
    if width * height > MAX_PIXELS:
        raise fail(what, label, _bomb_problem(width, height))

    # Let libjpeg decode straight at 1/2, 1/4 or 1/8 scale when that still leaves at least
    # max_side on the long side: a 12 MP photo decodes ~4x faster and in a quarter of the memory.
    if fmt in ("JPEG", "MPO"):
        scale = max_side / max(width, height)
        if scale <= 0.5:
            img.draft(img.mode, (max(1, int(width * scale + 1)), max(1, int(height * scale + 1))))
    try:
        with _StrictLoading():
            img.load()
    except MemoryError:
        raise fail(what, label, "is too large to decode in memory; resize it first.") from None
    except Exception as exc:  # OSError "image file is truncated", SyntaxError, struct.error...
        raise fail(
            what, label,
            f"is truncated or damaged ({fmt}: {exc}); re-export or re-download it.",
        ) from None
    return img, fmt


def _upright(img: Image.Image) -> Image.Image:
    """Apply the EXIF orientation (phones store photos sideways plus a rotate flag)."""
    try:
        out = ImageOps.exif_transpose(img)
    except Exception:  # broken EXIF must not block an otherwise fine picture
        return img
    return out if out is not None else img


def _to_colour_mode(img: Image.Image) -> Image.Image:
    """Bring any Pillow mode to RGB, L or CMYK (colour-managed next), flattening alpha on white."""
    mode = img.mode
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        mode in ("P", "L", "RGB", "1") and "transparency" in img.info
    )
    if has_alpha:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if mode in ("RGB", "L", "CMYK"):
        return img
    if mode == "1":
        return img.convert("L")
    if mode == "P":
        return img.convert("RGB")
    if mode.startswith("I"):
        # 16/32-bit greyscale: scale to 8 bits instead of clipping everything above 255 to white.
        wide = img if mode == "I" else img.convert("I")
        lo, hi = wide.getextrema()
        if hi > 255:
            wide = wide.point(lambda v: v * (255.0 / 65535.0))
        return wide.convert("L")
    if mode == "F":
        lo, hi = img.getextrema()
        if 0.0 <= lo and hi <= 1.0:
            img = img.point(lambda v: v * 255.0)
        return img.convert("L")
    try:
        return img.convert("RGB")
    except Exception as exc:
        raise InvalidInputError(f"colour mode {mode!r} can't be converted to RGB") from exc


def _to_srgb(img: Image.Image, icc: bytes | None) -> Image.Image:
    """Convert to sRGB RGB using the embedded ICC profile when there is one (P3 photos, CMYK)."""
    if icc:
        try:
            from PIL import ImageCms

            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            desc = (ImageCms.getProfileDescription(src) or "").lower()
            if not (img.mode == "RGB" and "srgb" in desc):
                return ImageCms.profileToProfile(
                    img, src, ImageCms.createProfile("sRGB"), outputMode="RGB"
                )
        except Exception:
            pass  # unusable profile: fall back to Pillow's plain conversion
    return img if img.mode == "RGB" else img.convert("RGB")


def _fit(img: Image.Image, max_side: int) -> Image.Image:
    """Shrink so the long side is at most max_side; never enlarge."""
    width, height = img.size
    long_side = max(width, height)
    if long_side <= max_side:
        return img
    scale = max_side / long_side
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return img.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def clean(img: Image.Image, *, max_side: int) -> Image.Image:
    """Upright, alpha-flattened, downscaled, sRGB RGB copy of an already loaded image.

    Colour management runs last, on the small image, where it costs a few ms.
    """
    icc = img.info.get("icc_profile")
    img = _upright(img)
    img = _to_colour_mode(img)
    img = _fit(img, max_side)
    return _to_srgb(img, icc)


# --------------------------------------------------------------------------- encoding


def encode_jpeg(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    # Progressive with optimised Huffman tables: ~5% smaller than baseline for photos.
    img.save(buf, "JPEG", quality=JPEG_QUALITY, subsampling="4:2:0", optimize=True, progressive=True)
    return buf.getvalue()


def encode_png(img: Image.Image) -> bytes | None:
    """Lossless truecolour PNG for pictures with few colours; None for photos.

    Palette PNGs would be smaller still for screenshots, but decode as mode "P"; the
    server's decoder should always see plain RGB.
    """
    if img.getcolors(PNG_MAX_COLORS) is None:
        return None
    buf = io.BytesIO()
    # Not optimize=True: ~10% smaller, but up to seconds on a busy machine for a 1280 px image.
    img.save(buf, "PNG", compress_level=6)
    return buf.getvalue()


def encode(img: Image.Image) -> tuple[bytes, str]:
    """The smaller of JPEG q90 4:2:0 and (for flat graphics) lossless PNG."""
    jpeg = encode_jpeg(img)
    png = encode_png(img)
    if png is not None and len(png) <= len(jpeg):
        return png, "image/png"
    return jpeg, "image/jpeg"


def _passthrough_ok(img: Image.Image, fmt: str, max_side: int) -> bool:
    """Could the original bytes be sent as they are? (compact format, clean, RGB, small)."""
    return (
        fmt in ("JPEG", "PNG")
        and img.mode == "RGB"
        and max(img.size) <= max_side
        and set(img.info) <= _HARMLESS_INFO
    )


# --------------------------------------------------------------------------- entry points


def normalize_bytes(data: bytes, *, max_side: int, what: str, label: str) -> tuple[bytes, str, int, int]:
    """Encoded file bytes -> (normalised bytes, mime, width, height)."""
    if len(data) > MAX_FILE_BYTES:
        raise fail(
            what, label,
            f"is {len(data) / 2**20:.0f} MB; files over {MAX_FILE_BYTES // 2**20} MB aren't accepted. "
            "Resize or re-compress it first.",
        )
    img, fmt = _open_bytes(data, what=what, label=label, max_side=max_side)
    try:
        passthrough = _passthrough_ok(img, fmt, max_side)
        try:
            out = clean(img, max_side=max_side)
            encoded, mime = encode(out)
        except Exception as exc:
            raise fail(
                what, label,
                f"uses a {fmt} variant that can't be converted ({exc}); save it as 8-bit RGB PNG or JPEG.",
            ) from None
        if passthrough and len(data) <= len(encoded) * PASSTHROUGH_SLACK:
            encoded, mime = data, ("image/jpeg" if fmt == "JPEG" else "image/png")
        return encoded, mime, out.width, out.height
    finally:
        img.close()


def normalize_pil(img: Any, *, max_side: int, what: str, label: str) -> tuple[bytes, str, int, int]:
    """A PIL image (not modified) -> (normalised bytes, mime, width, height)."""
    width, height = img.size
    if width < 1 or height < 1:
        raise fail(what, label, f"has no pixels ({width}x{height}); use a real picture.")
    try:
        with _StrictLoading():
            img.load()
    except Exception as exc:
        raise fail(what, label, f"can't be decoded ({exc}); re-open or re-create the image.") from None
    try:
        out = clean(img, max_side=max_side)
        encoded, mime = encode(out)
    except Exception as exc:
        raise fail(what, label, f"can't be converted ({exc}); try img.convert('RGB') first.") from None
    return encoded, mime, out.width, out.height


def array_to_pil(arr: Any, *, what: str, label: str) -> Image.Image:
    """HxW / HxWx1 / HxWx3 / HxWx4 array (uint8, or float in 0..1) -> PIL image."""
    import numpy as np

    a = np.asarray(arr)
    shape = a.shape
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)):
        hint = ""
        if a.ndim == 3 and a.shape[0] in (1, 3, 4) and a.shape[2] not in (1, 3, 4):
            hint = " It looks channel-first: use arr.transpose(1, 2, 0)."
        raise fail(
            what, label,
            f"is an array of shape {shape}; expected height x width (greyscale), "
            f"height x width x 3 (RGB) or height x width x 4 (RGBA).{hint}",
        )
    if a.size == 0:
        raise fail(what, label, f"is an empty array (shape {shape}).")
    kind = a.dtype.kind
    if kind == "b":
        a = a.astype(np.uint8) * 255
    elif kind == "f":
        if not np.isfinite(a).all():
            raise fail(what, label, "contains NaN or infinite values; float arrays must hold values in 0..1.")
        lo, hi = float(a.min()), float(a.max())
        if lo < 0.0 or hi > 1.0:
            raise fail(
                what, label,
                f"is a float array with values {lo:g}..{hi:g}; float images must be in 0..1 "
                "(divide by 255 if yours are 0..255), or pass uint8.",
            )
        a = np.rint(a * 255.0).astype(np.uint8)
    elif kind in "iu":
        if a.dtype != np.uint8:
            lo, hi = int(a.min()), int(a.max())
            if lo < 0 or hi > 255:
                raise fail(
                    what, label,
                    f"is a {a.dtype} array with values {lo}..{hi}; pass uint8 (0..255) or float in 0..1.",
                )
            a = a.astype(np.uint8)
    else:
        raise fail(what, label, f"is an array of dtype {a.dtype}; pass uint8 (0..255) or float in 0..1.")
    height, width = a.shape[:2]
    if width * height > MAX_PIXELS:
        raise fail(what, label, _bomb_problem(width, height))
    return Image.fromarray(np.ascontiguousarray(a))


def normalize_array(arr: Any, *, max_side: int, what: str, label: str) -> tuple[bytes, str, int, int]:
    img = array_to_pil(arr, what=what, label=label)
    return normalize_pil(img, max_side=max_side, what=what, label=label)


def open_normalized(data: bytes) -> Image.Image:
    """Open bytes produced by this module (for ImageSource.to_pil)."""
    img = Image.open(io.BytesIO(data))
    img.load()
    return img
