"""What the simulator accepts: the create and upload request bodies, checked as PiAPI checks them.

Why apart from the endpoints: validation is most of what an endpoint does, and none of it
needs a task, a clock or a server. `parse_create` turns a create body into a
`CreateRequest` (its images decoded, what the envelope echoes for them) or into the 400
PiAPI would answer; `parse_upload` does the same for /api/ephemeral_resource. An image
may be base64 (with or without a data: URI), a URL of this simulator's own files (read
locally), or any other URL (the simulator has no internet access: a placeholder picture
stands in for it, and the task's logs say so).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..constants import MAX_DURATION, MIN_DURATION, MODEL, TASK_TYPE, UPLOAD_BASE64_LIMIT
from ._http import Response, error_response

__all__ = ["CreateRequest", "InputImage", "parse_create", "parse_upload"]

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")

#: Finds this simulator's own file for a URL (None when the URL is not one of its files).
LocalFile = Callable[[str], "Path | None"]


@dataclass
class InputImage:
    """An input image of a create request, decoded, with what the envelope echoes for it."""

    data: bytes
    sha256: str
    echo: str
    note: str | None = None  # a line for the task's logs (a placeholder stands in for it)


@dataclass
class CreateRequest:
    """A valid create request: what the task is made from."""

    prompt: str
    duration: int
    start: InputImage
    end: InputImage | None
    input_echo: dict[str, Any]
    config_echo: dict[str, Any]


def parse_create(body: bytes, local_file: LocalFile) -> CreateRequest | Response:
    """The create request in `body`, or the 400 answer that refuses it."""
    try:
        request = json.loads(body.decode("utf-8")) if body else None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return error_response(400, f"invalid request body: not valid JSON ({exc.__class__.__name__})")
    if not isinstance(request, dict):
        return error_response(400, "invalid request body: expected a JSON object with model, task_type and input")
    model = request.get("model")
    if model != MODEL:
        return error_response(400, f"invalid model {model!r}: this endpoint serves {MODEL!r}")
    task_type = request.get("task_type")
    if task_type != TASK_TYPE:
        return error_response(400, f"invalid task_type {task_type!r} for {MODEL}: use {TASK_TYPE!r}")
    given = request.get("input")
    if not isinstance(given, dict):
        return error_response(400, "invalid request: input is required and must be an object")
    prompt = given.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        return error_response(400, "invalid request: input.prompt is required")
    negative = given.get("negative_prompt", "")
    if negative is not None and not isinstance(negative, str):
        return error_response(400, "invalid request: input.negative_prompt must be a string")
    duration = given.get("duration", MIN_DURATION)
    if isinstance(duration, bool) or not isinstance(duration, int) or not MIN_DURATION <= duration <= MAX_DURATION:
        return error_response(400, f"invalid request: input.duration must be a whole number of seconds from "
                                   f"{MIN_DURATION} to {MAX_DURATION}, got {duration!r}")
    if given.get("start_image") in (None, ""):
        return error_response(400, "invalid request: input.start_image is required")
    start = _image(given["start_image"], "start_image", local_file)
    if isinstance(start, Response):
        return start
    end: InputImage | None = None
    if given.get("end_image") not in (None, ""):
        resolved = _image(given["end_image"], "end_image", local_file)
        if isinstance(resolved, Response):
            return resolved
        end = resolved

    input_echo = dict(given)
    input_echo["start_image"] = start.echo
    if end is not None:
        input_echo["end_image"] = end.echo
    config = request.get("config") if isinstance(request.get("config"), dict) else {}
    webhook = config.get("webhook_config") if isinstance(config.get("webhook_config"), dict) else {}
    config_echo = {
        "service_mode": str(config.get("service_mode") or ""),
        # PiAPI echoes the secret in the task's config (and the webhook module reads it there)
        "webhook_config": {"endpoint": str(webhook.get("endpoint") or ""), "secret": str(webhook.get("secret") or "")},
    }
    return CreateRequest(prompt, duration, start, end, input_echo, config_echo)


def _image(value: object, name: str, local_file: LocalFile) -> InputImage | Response:
    from ._render import placeholder_png, probe_image

    if not isinstance(value, str):
        return error_response(400, f"invalid request: input.{name} must be a URL or a base64-encoded image")
    text = value.strip()
    if text.lower().startswith(("http://", "https://")):
        local = local_file(text)
        if local is not None:
            data = local.read_bytes()
            try:
                probe_image(data)
                return InputImage(data, hashlib.sha256(data).hexdigest(), text)
            except ValueError:
                note = f"{name} at {text} is not an image: using a generated placeholder picture"
        else:
            note = (f"could not fetch {name} from {text}: the simulator has no internet access, "
                    "so it uses a generated placeholder picture")
        data = placeholder_png(text)
        return InputImage(data, hashlib.sha256(data).hexdigest(), text, note)
    payload = text
    if payload.lower().startswith("data:"):
        header, comma, payload = payload.partition(",")
        if not comma or ";base64" not in header.lower():
            return error_response(400, f"invalid request: input.{name} is a data URI without base64 data")
    payload = "".join(payload.split())
    payload += "=" * (-len(payload) % 4)
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        try:
            data = base64.urlsafe_b64decode(payload)
        except (binascii.Error, ValueError):
            return error_response(400, f"invalid request: input.{name} is neither an http(s) URL nor valid base64")
    if not data:
        return error_response(400, f"invalid request: input.{name} is empty")
    try:
        probe_image(data)
    except ValueError as exc:
        return error_response(400, f"invalid request: input.{name} could not be decoded as an image: {exc}")
    return InputImage(data, hashlib.sha256(data).hexdigest(), f"<base64 image, {len(data)} bytes>")


def parse_upload(body: bytes) -> tuple[str, bytes] | Response:
    """(a safe file name, the bytes) of an upload request, or the 400 answer that refuses it."""
    try:
        request = json.loads(body.decode("utf-8")) if body else None
    except (UnicodeDecodeError, json.JSONDecodeError):
        return error_response(400, "invalid request body: not valid JSON")
    if not isinstance(request, dict):
        return error_response(400, "invalid request body: expected {\"file_name\": ..., \"file_data\": ...}")
    file_name = request.get("file_name")
    file_data = request.get("file_data")
    if not isinstance(file_name, str) or not file_name.strip():
        return error_response(400, "invalid request: file_name is required")
    if not isinstance(file_data, str) or not file_data.strip():
        return error_response(400, "invalid request: file_data (base64) is required")
    payload = file_data.strip()
    if payload.lower().startswith("data:"):
        payload = payload.partition(",")[2]
    payload = "".join(payload.split())
    if len(payload) > UPLOAD_BASE64_LIMIT:  # PiAPI counts the base64, not the bytes
        return error_response(400, "file too large: the upload limit is 10 MB of base64")
    try:
        data = base64.b64decode(payload + "=" * (-len(payload) % 4), validate=True)
    except (binascii.Error, ValueError):
        return error_response(400, "invalid request: file_data is not valid base64")
    if not data:
        return error_response(400, "invalid request: file_data is empty")
    base = _SAFE_NAME.sub("_", Path(file_name.strip().replace("\\", "/")).name).strip("._") or "file"
    return base[-80:], data
