"""The facts of PiAPI's Framepack service and this package's fixed choices, in one place.

Every other module (the simulator and the widget's JavaScript included, which receives
them from the model) takes these from here, so a price or a limit changes in one line.
"""

from __future__ import annotations

__all__ = [
    "VERSION",
    "MODEL",
    "TASK_TYPE",
    "DEFAULT_BASE_URL",
    "DEFAULT_UPLOAD_URL",
    "COST_PER_SECOND",
    "MIN_DURATION",
    "MAX_DURATION",
    "FPS",
    "MAX_PROMPT_CHARS",
    "MAX_COMPARED",
    "DEFAULT_MAX_SIDE",
    "MESSAGE_CHUNK_BYTES",
    "MAX_UPLOAD_BYTES",
    "MAX_GALLERY_RUNS",
    "IMAGE_MIME_EXT",
    "IMAGE_EXT_MIME",
    "UPLOAD_EXTENSIONS",
    "UPLOAD_BASE64_LIMIT",
    "UPLOAD_NAME_CHARS",
    "SIMULATOR_HEADER",
    "SIMULATOR_KEY_PREFIX",
    "SUBMISSION_HEADER",
    "cost_usd",
]

#: This package's version (also `framepack_widgets.__version__`).
VERSION = "0.1.0"

#: What the create request asks PiAPI for.
MODEL = "Qubico/framepack"
TASK_TYPE = "img2video"
#: Where PiAPI's API and its upload endpoint are.
DEFAULT_BASE_URL = "https://api.piapi.ai"
DEFAULT_UPLOAD_URL = "https://upload.theapi.app/api/ephemeral_resource"

#: PiAPI's list price: US dollars per second of video.
COST_PER_SECOND = 0.03
#: Whole seconds of video one task may ask for.
MIN_DURATION, MAX_DURATION = 10, 30
#: Framepack renders at a fixed frame rate.
FPS = 30

#: Longest prompt (and negative prompt) accepted before anything is sent.
MAX_PROMPT_CHARS = 2000
#: How many runs a comparison puts side by side, at most (and at least 2).
MAX_COMPARED = 4
#: Images are downscaled so their long side is at most this many pixels before sending.
DEFAULT_MAX_SIDE = 1280
#: Largest piece of bytes in one widget message, either way: files are cut into chunks of
#: this size (Colab drops widget messages around 1 MB).
MESSAGE_CHUNK_BYTES = 512 * 1024
#: Largest image the browser sends to the kernel (in chunks) after trying to shrink it;
#: a bigger one is refused with a hint to set the image from Python.
MAX_UPLOAD_BYTES = 8 * 1024 * 1024
#: Most runs in one shared gallery (its page holds a word diff for each pair of prompts).
MAX_GALLERY_RUNS = 48

#: The image types sent to PiAPI and kept in the run store, with their file extensions.
IMAGE_MIME_EXT = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}
IMAGE_EXT_MIME = {ext: mime for mime, ext in IMAGE_MIME_EXT.items()} | {"jpeg": "image/jpeg"}
#: File extensions PiAPI's upload endpoint accepts for images.
UPLOAD_EXTENSIONS = ("jpg", "jpeg", "png", "webp")
#: PiAPI's upload endpoint: at most 10 MB of base64 in `file_data` (MB read as MiB: unverified).
UPLOAD_BASE64_LIMIT = 10 * 1024 * 1024
#: PiAPI's upload endpoint: at most this many characters in `file_name`, extension included.
UPLOAD_NAME_CHARS = 128

#: The offline simulator names itself in this header on every answer, so a client knows it
#: talks to the simulator (its videos are synthetic, nothing is charged), not to PiAPI
#: through a proxy on this machine.
SIMULATOR_HEADER = "X-Framepack-Simulator"
#: The keys the simulator makes for itself start so (a client made with one is made for it).
SIMULATOR_KEY_PREFIX = "sim-"
#: The classroom service's answer to a create carries `X-Framepack-Submission: unknown` when
#: PiAPI may or may not have made the task: the client then never sends it again.
SUBMISSION_HEADER = "X-Framepack-Submission"


def cost_usd(duration: int | float | None) -> float:
    """What `duration` seconds of video cost at PiAPI, rounded to the cent's hundredth."""
    return round(COST_PER_SECOND * (duration or 0), 4)
