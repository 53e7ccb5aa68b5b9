"""`Client` and `AsyncClient` for PiAPI's Framepack image-to-video API.

    from framepack_widgets import Client, FramepackInput
    with Client() as client:                      # PIAPI_API_KEY from the environment
        task = client.generate(FramepackInput("a cat turns its head", "cat.jpg"))
        client.download(task, "cat.mp4")

`create_task()` takes a `FramepackInput`, or a plain dict that is the request's `input`
object (`prompt`, `start_image` as an http(s) URL or base64, optional `end_image`,
`negative_prompt`, `duration`), checked by the same rules as `FramepackInput`.

The package, one concept a module: `_settings` (configuration, the key kept secret),
`_redaction` (text without the key, URL secrets or image data), `_words` (advice worded for
Python code or the command line), `_core` (each call's request), `_envelope` (what an answer
says), `_decisions` (after each attempt: the money rule), `_retry` (which failures are
retried, and when), `_texts` (every error's message), `_uploads` (images sent before the
create), `_polling` (poll strategies and the wait loop's state), `_downloads` (saving
videos), `_logs` (secrets out of logs), `_trace` (recording a run's answers for bug reports)
and the two thin I/O shells `_sync` and `_async`.
"""

from __future__ import annotations

from ._async import AsyncClient
from ._polling import AdaptivePoll, ExponentialPoll, FixedPoll, PollStrategy
from ._sync import Client
from ._trace import TraceRecorder

__all__ = ["Client", "AsyncClient", "PollStrategy", "AdaptivePoll", "FixedPoll", "ExponentialPoll", "TraceRecorder"]
