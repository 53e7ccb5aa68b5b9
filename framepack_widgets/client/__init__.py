"""`Client` and `AsyncClient` for PiAPI's Framepack image-to-video API.

    from framepack_widgets import Client, FramepackInput
    with Client() as client:                      # PIAPI_API_KEY from the environment
        task = client.generate(FramepackInput("a cat turns its head", "cat.jpg"))
        client.download(task, "cat.mp4")

`create_task()` takes a `FramepackInput`, or a plain dict that is the request's `input`
object (`prompt`, `start_image` as an http(s) URL or base64, optional `end_image`,
`negative_prompt`, `duration`), checked by the same rules as `FramepackInput`.

The package, one concept a module: `_settings` (configuration, the key kept secret),
`_retry` (what is retried and when: the money rule's classification), `_polling` (poll
strategies and the wait loop's state), `_downloads` (saving videos), `_core` (requests,
answers, errors: every decision), `_trace` (recording a run's answers for bug reports) and
the two thin I/O shells `_sync` and `_async`.
"""

from __future__ import annotations

from ._async import AsyncClient
from ._polling import AdaptivePoll, ExponentialPoll, FixedPoll, PollStrategy
from ._sync import Client
from ._trace import TraceRecorder

__all__ = ["Client", "AsyncClient", "PollStrategy", "AdaptivePoll", "FixedPoll", "ExponentialPoll", "TraceRecorder"]
