"""Images sent to PiAPI's upload endpoint before the create request (image_encoding="upload").

PiAPI's ephemeral-resource endpoint takes a file name (safe characters, at most 128 of them,
extension jpg/jpeg/png/webp) and base64 data up to 10 MB; plans without uploads answer 403,
after which images that fit go inline in the create request instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..constants import UPLOAD_BASE64_LIMIT, UPLOAD_EXTENSIONS, UPLOAD_NAME_CHARS
from ..inputs import FramepackInput

__all__ = ["INLINE_IMAGE_LIMIT", "UploadJob", "fits_inline", "upload_file_name", "upload_jobs"]

#: The longest base64 image sent inline when uploads are refused. PiAPI documents no limit
#: for a base64 image in the create body; its upload limit is the one it gives.
INLINE_IMAGE_LIMIT = UPLOAD_BASE64_LIMIT
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class UploadJob:
    """One image to send to the ephemeral-resource endpoint before the create request."""

    field: str  # "start_image" | "end_image"
    file_name: str
    data: bytes


def upload_file_name(name: str) -> str | None:
    """`name` as PiAPI's upload endpoint takes it (safe characters, at most 128 of them,
    extension jpg/jpeg/png/webp); None when its type is not one the endpoint accepts."""
    stem, dot, extension = name.strip().rpartition(".")
    extension = extension.lower()
    if not dot or extension not in UPLOAD_EXTENSIONS:
        return None
    stem = _UNSAFE_NAME.sub("_", stem).strip("._-") or "image"
    return f"{stem[: UPLOAD_NAME_CHARS - len(extension) - 1]}.{extension}"


def upload_jobs(value: FramepackInput) -> list[UploadJob]:
    """The images of an input in image_encoding="upload" mode that are bytes (URLs pass
    through; an image whose type the upload endpoint refuses is sent inline as base64)."""
    if value.image_encoding != "upload":
        return []
    jobs = []
    for name, source in value.images().items():
        file_name = upload_file_name(source.filename)
        if source.data is not None and file_name is not None:
            jobs.append(UploadJob(field=name, file_name=file_name, data=source.data))
    return jobs


def fits_inline(job: UploadJob) -> bool:
    """Whether the image may go inline (base64) in the create request instead."""
    return 4 * ((len(job.data) + 2) // 3) <= INLINE_IMAGE_LIMIT
