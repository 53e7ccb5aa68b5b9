"""Validate and normalise a Framepack request before anything is sent (and before anything is paid).

`FramepackInput` checks the prompt, negative prompt, duration and images, and turns every
image into an `ImageSource`: an http(s) URL passed through untouched, or a small, upright,
sRGB JPEG/PNG (long side <= 1280 px by default; the model works at about 640 px).
Anything wrong raises `InvalidInputError` with a message a person can act on.

Cheap to import: PIL and numpy are loaded only when an image is actually decoded.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import math
import numbers
import os
import re
import sys
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union
from urllib.parse import urlsplit

from .constants import DEFAULT_MAX_SIDE, IMAGE_MIME_EXT, MAX_DURATION, MAX_PROMPT_CHARS, MIN_DURATION, cost_usd
from .errors import InvalidInputError

if TYPE_CHECKING:  # pragma: no cover
    import numpy
    import PIL.Image

__all__ = [
    "IMAGE_ENCODINGS",
    "ImageSource",
    "FramepackInput",
    "ImageLike",
    "normalize_image",
    "check_request_input",
]

MIN_MAX_SIDE, MAX_MAX_SIDE = 64, 8192
IMAGE_ENCODINGS = ("base64", "data_uri", "upload")

ImageLike = Union[
    "ImageSource", str, os.PathLike, bytes, bytearray, memoryview, "PIL.Image.Image", "numpy.ndarray"
]

# "C:\\x.png" must stay a path, so a scheme needs at least two letters.
_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]+):")
_BASE64_TEXT_RE = re.compile(r"^[A-Za-z0-9+/=\s]+$")
_CONTROL_RE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
_DATA_URI_RE = re.compile(r"^data:(image/[A-Za-z0-9.+\-]+)?((?:;[^,;]*)*?);base64,(.*)$", re.S | re.I)


# --------------------------------------------------------------------------- ImageSource


@dataclass(frozen=True, repr=False)
class ImageSource:
    """One image as it will be sent: a URL passed through untouched, or normalised bytes.

    Build it with `normalize_image()`; constructing it directly is for code that reloads
    bytes it stored earlier (the sha256 is recomputed and checked).
    """

    url: str | None = None
    data: bytes | None = field(default=None, compare=False)
    mime: str | None = None
    width: int | None = None
    height: int | None = None
    sha256: str = ""
    original_size: int | None = field(default=None, compare=False)
    #: What a person calls the image ("lake_cabin.jpg"): kept in `to_params()` so runs can
    #: be labelled by it; never part of the hash or of equality.
    name: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if (self.url is None) == (self.data is None):
            raise InvalidInputError("ImageSource needs exactly one of url= or data=.")
        if self.data is not None:
            if not isinstance(self.data, bytes):
                object.__setattr__(self, "data", bytes(self.data))
            if not self.mime:
                object.__setattr__(self, "mime", _sniff_mime(self.data))  # type: ignore[arg-type]
            digest = hashlib.sha256(self.data).hexdigest()  # type: ignore[arg-type]
        else:
            if not isinstance(self.url, str):
                raise InvalidInputError(f"ImageSource url must be a str; got {type(self.url).__name__}.")
            digest = hashlib.sha256(self.url.encode("utf-8")).hexdigest()
        if self.sha256 and self.sha256 != digest:
            raise InvalidInputError(
                "ImageSource sha256 does not match its data (the stored image is damaged); "
                "pick the image again."
            )
        object.__setattr__(self, "sha256", digest)

    @property
    def is_url(self) -> bool:
        return self.url is not None

    @property
    def nbytes(self) -> int:
        """Size of the normalised bytes (0 for a URL)."""
        return len(self.data) if self.data is not None else 0

    @property
    def filename(self) -> str:
        """A stable file name for uploads and caches, e.g. '3fa1c2...e9.jpg'."""
        return f"{self.sha256[:16]}.{IMAGE_MIME_EXT.get(self.mime or '', 'bin')}"

    def request_value(self, encoding: str = "base64") -> str:
        """The string for the request's start_image/end_image field.

        "base64": plain base64, no prefix (what PiAPI documents); "data_uri":
        "data:image/jpeg;base64,..."; "upload" falls back to base64 here (the client
        uploads the bytes and puts the returned URL in the request instead). A URL
        source always returns its URL.
        """
        encoding = _check_encoding(encoding)
        if self.url is not None:
            return self.url
        b64 = base64.b64encode(self.data).decode("ascii")  # type: ignore[arg-type]
        if encoding == "data_uri":
            return f"data:{self.mime};base64,{b64}"
        return b64

    def to_pil(self) -> PIL.Image.Image:
        """Decode the normalised bytes (URLs are not downloaded, so they raise)."""
        if self.data is None:
            raise InvalidInputError(
                f"This image is a URL ({self.url}) and is not downloaded; "
                "fetch it yourself if you need the pixels."
            )
        from . import _images

        return _images.open_normalized(self.data)

    def named(self, name: str | None) -> "ImageSource":
        """The same image under a name (None or "" keeps it as it is)."""
        return dataclasses.replace(self, name=str(name)[:120]) if name and name != self.name else self

    def to_params(self) -> dict[str, Any]:
        """JSON-safe description without bytes: {"url"} or {"sha256","mime","width","height"},
        with "name" when the image has one."""
        params: dict[str, Any] = (
            {"url": self.url} if self.url is not None
            else {"sha256": self.sha256, "mime": self.mime, "width": self.width, "height": self.height}
        )
        if self.name:
            params["name"] = self.name
        return params

    def __repr__(self) -> str:
        if self.url is not None:
            shown = self.url if len(self.url) <= 80 else self.url[:77] + "..."
            return f"ImageSource(url={shown!r})"
        return (
            f"ImageSource({self.mime} {self.width}x{self.height}, "
            f"{_human_bytes(self.nbytes)}, sha256={self.sha256[:12]})"
        )


def _sniff_mime(data: bytes) -> str:
    if data.startswith(b"\x89PNG"):
        return "image/png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "image/jpeg"


def _human_bytes(n: int) -> str:
    if n < 1000:
        return f"{n} B"
    if n < 1_000_000:
        return f"{n / 1000:.1f} kB"
    return f"{n / 1_000_000:.2f} MB"


# --------------------------------------------------------------------------- normalize_image


def normalize_image(value: Any, *, max_side: int = DEFAULT_MAX_SIDE, what: str = "start image") -> ImageSource:
    """Turn anything image-like into an `ImageSource`, or raise `InvalidInputError`.

    Accepts an http(s) URL (passed through, not downloaded), a path (str or PathLike),
    bytes/bytearray/memoryview, a binary file object, a `data:image/...;base64,` URI, a PIL
    image, a numpy array (HxW, HxWx3, HxWx4; uint8 or float 0..1) or an `ImageSource`
    (returned as is unless it is larger than max_side). Decoded images are EXIF-rotated,
    made RGB (alpha on white, colour profiles to sRGB), shrunk to max_side on the long
    side and re-encoded as JPEG q90 (or PNG when smaller); metadata (EXIF, GPS) is dropped.
    """
    max_side = _check_max_side(max_side)
    if isinstance(value, ImageSource):
        if value.url is not None or max(value.width or 0, value.height or 0) <= max_side:
            return value
        return _from_bytes(
            value.data,  # type: ignore[arg-type]
            max_side=max_side, what=what, label="", original_size=value.original_size,
        )
    if value is None:
        raise InvalidInputError(
            f"{_cap(what)} is required: give a file path, an http(s) URL, bytes, a PIL image or a numpy array."
        )
    if isinstance(value, str):
        return _from_text(value, max_side=max_side, what=what)
    if isinstance(value, os.PathLike):
        return _from_path(Path(os.fspath(value)), str(value), max_side=max_side, what=what)
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        return _from_bytes(data, max_side=max_side, what=what, label="", original_size=len(data))
    pil_image = sys.modules.get("PIL.Image")
    if pil_image is not None and isinstance(value, pil_image.Image):
        from . import _images

        data, mime, width, height = _images.normalize_pil(value, max_side=max_side, what=what, label="")
        return ImageSource(data=data, mime=mime, width=width, height=height)
    if _is_array(value):
        from . import _images

        data, mime, width, height = _images.normalize_array(value, max_side=max_side, what=what, label="")
        return ImageSource(data=data, mime=mime, width=width, height=height)
    if callable(getattr(value, "read", None)):
        data = value.read()
        if isinstance(data, str):
            raise InvalidInputError(f"{_cap(what)} is a file opened in text mode; open it with 'rb'.")
        return normalize_image(data, max_side=max_side, what=what)
    raise InvalidInputError(
        f"{_cap(what)} must be a file path, an http(s) URL, bytes, a PIL image or a numpy array; "
        f"got {type(value).__name__}."
    )


def _cap(what: str) -> str:
    return what[:1].upper() + what[1:]


def _is_array(value: Any) -> bool:
    np = sys.modules.get("numpy")
    if np is not None and isinstance(value, np.ndarray):
        return True
    # Tensors and other array-likes (numpy is importable: it is a dependency).
    return hasattr(value, "__array_interface__") or hasattr(value, "__array__")


def _from_bytes(data: bytes, *, max_side: int, what: str, label: str, original_size: int | None) -> ImageSource:
    from . import _images

    out, mime, width, height = _images.normalize_bytes(data, max_side=max_side, what=what, label=label)
    return ImageSource(data=out, mime=mime, width=width, height=height, original_size=original_size)


def _from_text(text: str, *, max_side: int, what: str) -> ImageSource:
    value = text.strip()
    if not value:
        raise InvalidInputError(
            f"{_cap(what)} is empty; give a file path, an http(s) URL, bytes, a PIL image or a numpy array."
        )
    scheme_match = _SCHEME_RE.match(value)
    if scheme_match and scheme_match.group(1).lower() not in ("http", "https", "data") and _exists(value):
        scheme_match = None  # a local file whose name merely contains a colon
    if scheme_match:
        scheme = scheme_match.group(1).lower()
        if scheme in ("http", "https"):
            return ImageSource(url=_check_url(value, what))
        if scheme == "data":
            return _from_data_uri(value, max_side=max_side, what=what)
        shown = value if len(value) <= 60 else value[:57] + "..."
        hint = ""
        if scheme == "file":
            hint = " For a local file, pass its path instead (e.g. '/home/me/cat.jpg')."
        raise InvalidInputError(
            f"{_cap(what)} {shown!r} uses the {scheme}: scheme; only http(s) URLs are passed on "
            f"(or give a local file path, bytes, a PIL image or a numpy array).{hint}"
        )
    if len(value) > 512 and _BASE64_TEXT_RE.match(value):
        raise InvalidInputError(
            f"{_cap(what)} looks like base64 text, not a path; pass the decoded bytes "
            "instead: base64.b64decode(text)."
        )
    return _from_path(Path(value).expanduser(), value, max_side=max_side, what=what)


def _exists(path: str) -> bool:
    try:
        return Path(path).expanduser().exists()
    except (OSError, ValueError):
        return False


def _check_url(url: str, what: str) -> str:
    shown = url if len(url) <= 80 else url[:77] + "..."
    if any(ch.isspace() or unicodedata.category(ch) == "Cc" for ch in url):
        raise InvalidInputError(
            f"{_cap(what)} URL {shown!r} contains spaces or control characters; percent-encode them (%20)."
        )
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError as exc:
        raise InvalidInputError(f"{_cap(what)} URL {shown!r} is malformed ({exc}).") from exc
    if parts.scheme.lower() not in ("http", "https"):
        raise InvalidInputError(f"{_cap(what)} URL {shown!r} must start with http:// or https://.")
    if not host:
        raise InvalidInputError(f"{_cap(what)} URL {shown!r} has no host name; give a full http(s) URL.")
    if len(url) > 4096:
        raise InvalidInputError(f"{_cap(what)} URL is {len(url)} characters long; the limit is 4096.")
    return url


def _from_data_uri(value: str, *, max_side: int, what: str) -> ImageSource:
    match = _DATA_URI_RE.match(value)
    if not match:
        raise InvalidInputError(
            f"{_cap(what)} is a data: URI that isn't 'data:image/...;base64,...'; "
            "pass the image bytes or a file path instead."
        )
    payload = re.sub(r"\s+", "", match.group(3))
    if not payload:
        raise InvalidInputError(f"{_cap(what)} is a data: URI with nothing after 'base64,'; pass the image itself.")
    try:
        data = base64.b64decode(payload, validate=True)
    except (ValueError, TypeError) as exc:
        raise InvalidInputError(
            f"{_cap(what)} is a data: URI whose data is not valid base64 ({exc}). Pass the image's bytes or "
            "its file path instead, or encode it again."
        ) from None
    return _from_bytes(data, max_side=max_side, what=what, label="(data: URI)", original_size=len(data))


def _from_path(path: Path, shown: str, *, max_side: int, what: str) -> ImageSource:
    from . import _images

    label = repr(shown if len(shown) <= 120 else "..." + shown[-117:])
    if "\x00" in str(path):
        raise InvalidInputError(f"{_cap(what)} {label} isn't a valid file path (it contains a NUL character).")
    try:
        if not path.exists():
            where = "" if path.is_absolute() else f" (relative paths start from {os.getcwd()})"
            raise InvalidInputError(
                f"{_cap(what)} {label}: no such file{where}; check the path, or give an http(s) URL."
            )
        if path.is_dir():
            raise InvalidInputError(f"{_cap(what)} {label} is a folder, not an image file; pick a file inside it.")
        size = path.stat().st_size
        if size > _images.MAX_FILE_BYTES:
            raise InvalidInputError(
                f"{_cap(what)} {label} is {size / 2**20:.0f} MB; files over "
                f"{_images.MAX_FILE_BYTES // 2**20} MB aren't accepted. Resize or re-compress it first."
            )
        data = path.read_bytes()
    except InvalidInputError:
        raise
    except ValueError as exc:  # e.g. an embedded NUL character
        raise InvalidInputError(f"{_cap(what)} {label} isn't a valid file path ({exc}).") from exc
    except OSError as exc:
        raise InvalidInputError(
            f"{_cap(what)} {label} can't be read ({exc.strerror or exc}); check the path and its permissions."
        ) from exc
    return _from_bytes(data, max_side=max_side, what=what, label=label, original_size=len(data))


# --------------------------------------------------------------------------- text and numbers


def _check_text(value: Any, name: str, *, required: bool) -> str:
    """Trimmed, newline-normalised text without control characters, at most MAX_PROMPT_CHARS."""
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise InvalidInputError(f"The {name} must be text (str); got {type(value).__name__}.")
    text = value.replace("\r\n", "\n").replace("\r", "\n")
    trimmed = text.strip()
    if len(trimmed) > MAX_PROMPT_CHARS:
        raise InvalidInputError(
            f"The {name} is {len(trimmed)} characters long; the limit is {MAX_PROMPT_CHARS}. Shorten it."
        )
    _refuse_controls(text, name)  # before trimming: a trailing ESC or NUL is still refused
    text = trimmed
    if not text and required:
        raise InvalidInputError(
            f"The {name} is empty; describe the motion you want, e.g. 'the cat slowly turns its head and blinks'."
        )
    return text


def _refuse_controls(text: str, name: str) -> None:
    """Refuse NUL, C0/C1 controls, DEL and lone surrogates anywhere (newline and tab are fine)."""
    found = _CONTROL_RE.search(text)
    if found is None:
        return
    code, index = ord(found.group()), found.start()
    if 0xD800 <= code <= 0xDFFF:
        raise InvalidInputError(
            f"The {name} contains an unpaired surrogate (U+{code:04X}) at position {index}; "
            "it isn't valid text. Retype or re-paste that part."
        )
    raise InvalidInputError(
        f"The {name} contains a control character (U+{code:04X}) at position {index}; "
        "remove it (newlines and tabs are fine)."
    )


def _check_duration(value: Any) -> int:
    rule = f"whole seconds from {MIN_DURATION} to {MAX_DURATION}"
    if isinstance(value, bool) or (
        type(value).__module__ == "numpy" and type(value).__name__ in ("bool", "bool_")
    ):
        raise InvalidInputError(f"The duration must be a number of seconds ({rule}), not {value!r}.")
    if isinstance(value, numbers.Integral):
        seconds = int(value)
    elif isinstance(value, numbers.Real):
        number = float(value)
        if not math.isfinite(number):
            raise InvalidInputError(f"The duration must be {rule}; got {number!r}.")
        if not number.is_integer():
            raise InvalidInputError(f"The duration must be {rule}; got {number:g} (not a whole number).")
        seconds = int(number)
    else:
        shown = repr(value) if len(repr(value)) <= 40 else type(value).__name__
        raise InvalidInputError(f"The duration must be a number of seconds ({rule}); got {shown}.")
    if not MIN_DURATION <= seconds <= MAX_DURATION:
        raise InvalidInputError(f"The duration is {seconds} s; it must be {rule}.")
    return seconds


def _check_max_side(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidInputError(f"max_side must be a whole number of pixels; got {value!r}.")
    side = int(value)
    if not MIN_MAX_SIDE <= side <= MAX_MAX_SIDE:
        raise InvalidInputError(f"max_side is {side}; it must be from {MIN_MAX_SIDE} to {MAX_MAX_SIDE} pixels.")
    return side


def _check_encoding(value: Any) -> str:
    if isinstance(value, str) and value.strip().lower() in IMAGE_ENCODINGS:
        return value.strip().lower()
    raise InvalidInputError(
        f"image_encoding must be one of {', '.join(repr(e) for e in IMAGE_ENCODINGS)}; got {value!r}."
    )


# --------------------------------------------------------------------------- FramepackInput


@dataclass(frozen=True, init=False)
class FramepackInput:
    """A validated, normalised Framepack request: if this object exists, it can be sent.

    Images are normalised once here (see `normalize_image`), so reruns and sweeps made
    with `replace()` reuse them without decoding again.
    """

    prompt: str
    start_image: ImageSource
    end_image: ImageSource | None
    negative_prompt: str
    duration: int
    max_side: int
    image_encoding: str

    def __init__(
        self,
        prompt: str,
        start_image: ImageLike,
        *,
        end_image: ImageLike | None = None,
        negative_prompt: str | None = "",
        duration: int = MIN_DURATION,
        max_side: int = DEFAULT_MAX_SIDE,
        image_encoding: str = "base64",
    ) -> None:
        set_ = object.__setattr__
        # Cheap checks first, so a typo in the prompt doesn't wait for a 12 MP decode.
        set_(self, "prompt", _check_text(prompt, "prompt", required=True))
        set_(self, "negative_prompt", _check_text(negative_prompt, "negative prompt", required=False))
        set_(self, "duration", _check_duration(duration))
        set_(self, "max_side", _check_max_side(max_side))
        set_(self, "image_encoding", _check_encoding(image_encoding))
        set_(self, "start_image", normalize_image(start_image, max_side=self.max_side, what="start image"))
        set_(
            self,
            "end_image",
            None if end_image is None else normalize_image(end_image, max_side=self.max_side, what="end image"),
        )

    @property
    def cost_usd(self) -> float:
        """What this request costs on PiAPI (`constants.COST_PER_SECOND` per second of video)."""
        return round(cost_usd(self.duration), 2)

    def images(self) -> dict[str, ImageSource]:
        """{"start_image": ..., "end_image": ...} for the images that are set."""
        found = {"start_image": self.start_image}
        if self.end_image is not None:
            found["end_image"] = self.end_image
        return found

    def request_input(
        self, *, encoding: str | None = None, uploaded: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        """The "input" object of the create-task body.

        encoding defaults to `image_encoding`. In "upload" mode the client uploads each
        image's bytes to PiAPI's File Upload API and passes the returned URLs as
        `uploaded={"start_image": url, ...}`; images without an uploaded URL fall back to
        plain base64.
        """
        encoding = _check_encoding(self.image_encoding if encoding is None else encoding)
        uploaded = dict(uploaded or {})
        unknown = set(uploaded) - {"start_image", "end_image"}
        if unknown:
            raise InvalidInputError(f"uploaded= keys must be 'start_image'/'end_image'; got {sorted(unknown)}.")
        body: dict[str, Any] = {"prompt": self.prompt, "negative_prompt": self.negative_prompt}
        for name, source in self.images().items():
            url = uploaded.get(name)
            if url is not None:
                body[name] = _check_url(url, f"uploaded {name.replace('_', ' ')}")
            else:
                body[name] = source.request_value(encoding)
        body["duration"] = self.duration
        # Keep PiAPI's documented key order: prompt, negative_prompt, start_image, end_image, duration.
        return {k: body[k] for k in ("prompt", "negative_prompt", "start_image", "end_image", "duration") if k in body}

    def replace(self, **changes: Any) -> FramepackInput:
        """A new, fully revalidated input with some fields changed (reruns, sweeps).

        Images are reused as normalised; a smaller max_side shrinks them again, a larger
        one can't bring back pixels that were already dropped.
        """
        names = [f.name for f in dataclasses.fields(self)]
        unknown = sorted(set(changes) - set(names))
        if unknown:
            raise InvalidInputError(f"Unknown field(s) {', '.join(unknown)}; FramepackInput has {', '.join(names)}.")
        values = {name: getattr(self, name) for name in names}
        values.update(changes)
        return FramepackInput(**values)

    def to_params(self) -> dict[str, Any]:
        """JSON-safe summary (no image bytes) for storage, run lists and comparisons."""
        return {
            "prompt": self.prompt,
            "negative_prompt": self.negative_prompt,
            "duration": self.duration,
            "start_image": self.start_image.to_params(),
            "end_image": None if self.end_image is None else self.end_image.to_params(),
        }


# --------------------------------------------------------------------------- a raw request input


def check_request_input(value: Any) -> dict[str, Any]:
    """Check a plain dict that is the create request's `input` object itself, by the same
    rules as `FramepackInput`; returns the dict to send (or raises `InvalidInputError`).

    Images must already be strings: an http(s) URL, base64 text, or a data: URI (a dict
    is not decoded or resized; `FramepackInput` takes paths, bytes, PIL images and arrays).
    Texts come back trimmed, the duration as an int; `end_image: None` is dropped; keys
    this package does not know are passed on untouched.
    """
    if not isinstance(value, Mapping):
        raise InvalidInputError(
            f"create_task() needs a FramepackInput or a dict for the request's input, not "
            f"{type(value).__name__}. Nothing was sent."
        )
    data = dict(value)
    data["prompt"] = _check_text(data.get("prompt", ""), "prompt", required=True)
    if "negative_prompt" in data:
        data["negative_prompt"] = _check_text(data["negative_prompt"], "negative prompt", required=False)
    data["start_image"] = _check_request_image(data.get("start_image"), "start image")
    if data.get("end_image") is None:
        data.pop("end_image", None)
    else:
        data["end_image"] = _check_request_image(data["end_image"], "end image")
    if "duration" in data:
        data["duration"] = _check_duration(data["duration"])
    return data


def _check_request_image(value: Any, what: str) -> str:
    """An image already in the request's form: an http(s) URL, base64 text or a data: URI."""
    text = value.strip() if isinstance(value, str) else ""
    scheme = _SCHEME_RE.match(text)
    if scheme and scheme.group(1).lower() in ("http", "https"):
        return _check_url(text, what)
    if _DATA_URI_RE.match(text) or (text and not scheme and _BASE64_TEXT_RE.match(text)):
        return text
    shown = repr(value) if len(repr(value)) <= 60 else type(value).__name__
    raise InvalidInputError(
        f"The input's {what.replace(' ', '_')} must be an http(s) URL or a base64 string, not {shown}. "
        "Nothing was sent. Tip: framepack_widgets.FramepackInput accepts paths, bytes, PIL images and arrays."
    )
