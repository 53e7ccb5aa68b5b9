"""How often to ask about a running task, and the wait loop's bookkeeping.

A notebook waits on a few tasks for minutes; these strategies keep status fresh (the
finished video is seen about a second after it is ready) while sending few GETs. `Waiter`
holds one wait's state (deadline, last snapshot, errors ridden out) so that both I/O
shells run the same loop with only their sleep and GET differing. Toward a server that
holds a GET until the task changes (the classroom service's `?wait=`), the wait sleeps not
at all between GETs (`long_poll`), only after errors, and a second between answers that
came back at once with nothing new (a server that does not hold them: no busy loop).
"""

from __future__ import annotations

import inspect
import logging
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field, fields

import httpx

from ..errors import APIError, InvalidInputError, NotFoundError, RateLimitError, TaskFailedError, TaskTimeoutError
from ..task import Task, TaskStatus, check_task_id, output_keys
from ._retry import backoff_delay, is_transient
from ._words import Words, words_for

__all__ = [
    "DEFAULT_WAIT_TIMEOUT",
    "AdaptivePoll",
    "ExponentialPoll",
    "FixedPoll",
    "PollStrategy",
    "Waiter",
    "check_expected_seconds",
    "coerce_poll",
    "poll_session",
]

logger = logging.getLogger("framepack_widgets")

DEFAULT_WAIT_TIMEOUT = 3600.0  # `timeout=None` waits at most an hour, then says how to re-attach
#: A task that says "completed" without a video URL is asked this many more times (the URL can lag).
URL_LAG_POLLS = 4
#: A long poll answered sooner than this with nothing new was not held: the next GET waits
#: `LONG_POLL_GAP` seconds (a server that ignores `?wait=` is polled once a second, no faster).
LONG_POLL_QUICK = 0.5
LONG_POLL_GAP = 1.0
#: A long poll's read timeout: the wait it asks for and this much more (the answer's way back).
LONG_POLL_MARGIN = 15.0


class PollStrategy:
    """How long to sleep before the next GET while waiting for a task.

    `delay(elapsed, attempt, task)`: `elapsed` is seconds since the wait began, `attempt`
    how many delays this wait has already asked for (0 for the first sleep), `task` the
    latest snapshot (None if none was seen yet). Stateful strategies return a fresh copy
    from `session()`, which the wait loop calls once per wait, so one strategy object can
    serve many concurrent waits. A strategy whose `session` accepts `expected_seconds`
    (or **kwargs) also receives wait()'s expected-duration hint that way (see `poll_session`).
    """

    def delay(self, elapsed: float, attempt: int, task: Task | None) -> float:
        raise NotImplementedError

    def session(self) -> "PollStrategy":
        return self


@dataclass(frozen=True)
class FixedPoll(PollStrategy):
    """The same interval every time (a reference point for the benchmark)."""

    interval: float = 1.0

    def delay(self, elapsed: float, attempt: int, task: Task | None) -> float:
        return self.interval


@dataclass(frozen=True)
class ExponentialPoll(PollStrategy):
    """initial * factor**attempt, capped at maximum (a reference point for the benchmark)."""

    initial: float = 1.0
    factor: float = 1.5
    maximum: float = 30.0

    def delay(self, elapsed: float, attempt: int, task: Task | None) -> float:
        return min(self.maximum, self.initial * self.factor ** max(0, attempt))


@dataclass
class AdaptivePoll(PollStrategy):
    """The default: few requests, yet the finished video is seen soon after it is ready.

    - no percent, nothing known of how long the task takes (the first run; what PiAPI
      documents for Framepack): a first look after `first` seconds (a tiny task is done by
      then, and a person sees it start), then a steady beat of `blind_interval` seconds
      counted from the start of the wait (fixed polling's moments, whatever each answer's
      latency), which sees a video half a beat after it is ready on average. A first look
      that finds the task still pending stands in for the first beat, and the beat after
      the first beat that finds it rendering is skipped, for a video is not ready seconds
      after its render starts. A wait so costs no more GETs than fixed polling at that beat
      (one fewer when the task queued a moment), and sees the video no later.
    - processing with a percent: fit progress against time (least squares over this wait's
      observations) to estimate the time left; far from the end sleep `fraction` of it
      (at most `max_delay`), and once the estimate is trustworthy (the remaining time is no
      longer than the span already observed) sleep until just after the expected end
      (+`margin`). Past the expected end, poll quickly (`min_delay`), backing off gently
      to `overdue_max` in case the last stretch (encoding, upload) is slow.
    - with an expected duration (`session(expected_seconds=...)`, e.g. learned from earlier
      runs) and no percent (also while pending): the expectation is taken as off by up to
      ±`hint_spread` (20 %), so the task ends between expected/1.2 and expected/0.8. Before
      that window opens, sleep `hint_fraction` of the time left until it does (at most
      `hint_max`); inside it and until `hint_margin` seconds past its end, poll every
      `hint_interval`; after that grow by `hint_growth` up to `hint_overdue_max`. A bad
      estimate so costs a few GETs or a few seconds, never a storm. A reported percent
      always wins over the hint.
    - completed but no video URL yet (it can lag): ask again after `first` seconds, growing
      by half each time.
    """

    first: float = 1.0
    blind_interval: float = 3.0
    fraction: float = 0.6
    margin: float = 0.3
    min_delay: float = 0.5
    max_delay: float = 15.0
    probe_max: float = 6.0
    overdue_max: float = 2.5
    hint_fraction: float = 0.7
    hint_spread: float = 0.2
    hint_interval: float = 1.5
    hint_margin: float = 2.0
    hint_growth: float = 1.2
    hint_max: float = 10.0
    hint_overdue_max: float = 5.0
    _expected: float | None = field(default=None, repr=False, compare=False)
    _last_pending: float | None = field(default=None, repr=False, compare=False)
    _points: list[tuple[float, float]] = field(default_factory=list, repr=False, compare=False)
    _looked: bool = field(default=False, repr=False, compare=False)
    _skipped: bool = field(default=False, repr=False, compare=False)
    _overdue_polls: int = field(default=0, repr=False, compare=False)
    _late_polls: int = field(default=0, repr=False, compare=False)
    _lag_polls: int = field(default=0, repr=False, compare=False)

    def session(self, expected_seconds: float | None = None) -> "AdaptivePoll":
        """A fresh copy for one wait; `expected_seconds`: when the task is expected to end,
        in seconds from the start of the wait (None: unknown)."""
        settings = {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}
        return AdaptivePoll(**settings, _expected=_clean_expected(expected_seconds))

    def _clamp(self, value: float, high: float | None = None) -> float:
        return max(self.min_delay, min(self.max_delay if high is None else high, value))

    def delay(self, elapsed: float, attempt: int, task: Task | None) -> float:
        status = task.status if task is not None else None
        if status is TaskStatus.COMPLETED:  # completed, but its video URL is not there yet
            self._lag_polls += 1
            return self._clamp(self.first * 1.5 ** (self._lag_polls - 1))
        if status not in (TaskStatus.PROCESSING, TaskStatus.RUNNING):
            if status is None or not status.is_terminal:
                self._last_pending = elapsed
            return self._hinted(elapsed) if self._expected is not None else self._blind(elapsed)
        percent = task.percent if task is not None else None
        if percent is None:
            return self._hinted(elapsed) if self._expected is not None else self._blind(elapsed, rendering=True)
        if percent < 100.0 and float(percent).is_integer():
            percent += 0.5  # whole percents are usually truncated: the true value is on average .5 higher
        if not self._points or self._points[-1] != (elapsed, percent):
            self._points.append((elapsed, percent))
        remaining, trusted = self._estimate(elapsed)
        if remaining is None:
            return self._blind(elapsed, rendering=True)
        if remaining <= 0:
            self._overdue_polls += 1
            return self._clamp(self.min_delay * 1.5 ** (self._overdue_polls - 1), self.overdue_max)
        self._overdue_polls = 0
        if trusted:
            return self._clamp(remaining + self.margin)
        if len(self._points) == 1:
            return self._clamp(self.fraction * remaining, self.probe_max)
        return self._clamp(self.fraction * remaining)

    def _blind(self, elapsed: float, rendering: bool = False) -> float:
        """No percent and no expectation: the first look, then the beat (see the class).
        `rendering`: the latest look found the task processing."""
        beat = self.blind_interval
        if not self._looked:
            self._looked = True
            if elapsed < self.first:
                return self.first - elapsed
        beats = math.floor(elapsed / beat + 1e-6) + 1  # the next beat, counted from the start of the wait
        if beats == 1 and not rendering:  # still pending at the first look: it stood in for the first beat
            beats = 2
        if beats * beat - elapsed < self.min_delay:  # too close (a slow answer): the one after
            beats += 1
        if rendering and not self._skipped and elapsed >= beat - 1e-6:  # rendering only just began
            self._skipped = True
            beats += 1
        return beats * beat - elapsed

    def _hinted(self, elapsed: float) -> float:
        """No percent, but an expected end: few GETs early, dense in the window, then gentle growth."""
        expected = self._expected
        assert expected is not None
        opens = expected / (1.0 + self.hint_spread)
        closes = expected / max(1.0 - self.hint_spread, 0.05) + self.hint_margin
        if elapsed < opens:
            left = opens - elapsed
            step = self.hint_fraction * left
            if left - step < 2 * self.hint_interval:  # nearly there: go straight to the window
                step = left
            return self._clamp(step, self.hint_max)
        if elapsed < closes:
            return self._clamp(self.hint_interval)
        self._late_polls += 1
        grown = self.hint_interval * self.hint_growth ** self._late_polls
        return self._clamp(grown, max(self.hint_interval, self.hint_overdue_max))

    def _estimate(self, now: float) -> tuple[float | None, bool]:
        """(seconds left, whether to trust it enough to aim straight at the end)."""
        points = self._points
        t_last, p_last = points[-1]
        if p_last >= 100.0:
            return 0.0, True
        if len(points) >= 2:
            n = len(points)
            mean_t = sum(t for t, _ in points) / n
            mean_p = sum(p for _, p in points) / n
            var_t = sum((t - mean_t) ** 2 for t, _ in points)
            if var_t > 0:
                rate = sum((t - mean_t) * (p - mean_p) for t, p in points) / var_t
                if rate > 0:
                    fitted_now = mean_p + rate * (now - mean_t)
                    remaining = (100.0 - fitted_now) / rate
                    span = points[-1][0] - points[0][0]
                    return remaining, remaining <= span
        # One point: processing began after the last pending poll (if we saw one), so
        # p / (now - last_pending) is a lower bound on the rate: an upper bound on time left.
        if p_last > 0 and self._last_pending is not None and t_last > self._last_pending:
            rate = p_last / (t_last - self._last_pending)
            return (100.0 - p_last) / rate - (now - t_last), False
        return None, False


def _clean_expected(expected_seconds: "float | None") -> float | None:
    """A usable expected duration (>= 0 s), or None when absent or not a finite number."""
    if expected_seconds is None or isinstance(expected_seconds, bool):
        return None
    try:
        value = float(expected_seconds)
    except (TypeError, ValueError):
        return None
    return max(0.0, value) if math.isfinite(value) else None


def check_expected_seconds(expected_seconds: "float | None") -> float | None:
    """Validate a wait()'s `expected_seconds` hint: a number (NaN/inf are ignored, negatives mean 0) or None."""
    if expected_seconds is not None and (
        isinstance(expected_seconds, bool) or not isinstance(expected_seconds, (int, float))
    ):
        raise InvalidInputError(f"expected_seconds must be a number of seconds (or None), not {expected_seconds!r}.")
    return _clean_expected(expected_seconds)


def poll_session(poll: PollStrategy, expected_seconds: "float | None" = None) -> PollStrategy:
    """`poll.session(expected_seconds=...)` when the strategy accepts the hint, else `poll.session()`
    (custom strategies written before the hint existed keep working; plain objects are used as is)."""
    session = getattr(poll, "session", None)  # a user's strategy may be any object with delay()
    if session is None:
        return poll
    if expected_seconds is None:
        return session()
    try:
        params = inspect.signature(session).parameters.values()
    except (TypeError, ValueError):
        return session()
    if any(p.name == "expected_seconds" or p.kind is p.VAR_KEYWORD for p in params):
        return session(expected_seconds=expected_seconds)
    return session()


def coerce_poll(poll: "PollStrategy | float | None") -> PollStrategy:
    if poll is None:
        return AdaptivePoll()
    if isinstance(poll, (int, float)) and not isinstance(poll, bool):
        if poll <= 0:
            raise InvalidInputError(f"poll interval must be positive, not {poll!r}.")
        return FixedPoll(float(poll))
    if not callable(getattr(poll, "delay", None)):  # duck-typed: need not subclass PollStrategy
        raise InvalidInputError("poll must be a PollStrategy (an object with delay(elapsed, attempt, task)).")
    return poll


class Waiter:
    """The wait loop's bookkeeping, shared by both shells (which do the GETs and sleeps)."""

    def __init__(
        self,
        task_or_id: "Task | str",
        *,
        timeout: float | None,
        poll: PollStrategy,
        clock: Callable[[], float],
        rng: random.Random,
        redact: Callable[[str], str] = lambda text: text,
        expected_seconds: float | None = None,
        words: Words | None = None,
        long_poll: float | None = None,
    ) -> None:
        self._redact = redact
        self.long_poll = long_poll  # seconds one GET asks the server to hold it; None: sleep between GETs
        self._get_started: float | None = None
        self._not_held = False  # the last answer came back at once with nothing new
        self._words = words or words_for("python")
        if isinstance(task_or_id, Task):
            self.task_id = task_or_id.task_id
            self.last: Task | None = task_or_id
        elif isinstance(task_or_id, str) and task_or_id.strip():
            self.task_id = check_task_id(task_or_id.strip())
            self.last = None
        else:
            raise InvalidInputError(f"wait() needs a Task or a task id string, not {task_or_id!r}.")
        if timeout is None:
            timeout = DEFAULT_WAIT_TIMEOUT
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0:
            raise InvalidInputError(f"timeout must be a number of seconds >= 0, not {timeout!r}.")
        self.timeout = float(timeout)
        self.known_to_exist = self.last is not None
        self._clock = clock
        self._rng = rng
        self.started = clock()
        self.deadline = self.started + self.timeout
        # The hint (seconds from now until the task is expected to end) goes to the strategy's session.
        self.expected_seconds = check_expected_seconds(expected_seconds)
        self.poll = poll_session(poll, self.expected_seconds)
        self.gets = 0
        self.sleeps = 0
        self.url_lag_polls = 0  # GETs that found the task completed but its video URL not there yet
        self._unknown_words: set[str] = set()
        self._errors = 0
        self._not_found = 0
        self._error_delay = 0.0
        self.last_error: BaseException | None = None

    def hold_seconds(self) -> float:
        """Seconds the next GET asks the server to hold it (0: a plain GET); its start is noted."""
        self._get_started = self._clock()
        if not self.long_poll or self.last is None:  # the first look is answered at once
            return 0.0
        return float(max(0, min(self.long_poll, math.floor(self.deadline - self._get_started))))

    def long_poll_timeout(self, base: httpx.Timeout, hold: float) -> httpx.Timeout:
        """A long poll's timeout: its read above the wait it asks for."""
        read = hold + LONG_POLL_MARGIN
        if base.read is not None and base.read >= read:
            return base
        return httpx.Timeout(read, connect=base.connect, write=base.write, pool=base.pool)

    def observe(self, task: Task) -> bool:
        """Record a fresh snapshot; True when on_update should hear about it."""
        self._errors = 0
        self._not_found = 0
        self._error_delay = 0.0
        self.last_error = None
        changed = task.changed_since(self.last)
        self.last = task
        quick = self._get_started is not None and self._clock() - self._get_started < LONG_POLL_QUICK
        self._not_held = bool(self.long_poll) and quick and not changed
        if task.status is TaskStatus.UNKNOWN and task.status_word not in self._unknown_words:
            self._unknown_words.add(str(task.status_word))
            logger.warning("task %s: PiAPI reports a status this client does not know (%r); polling on.",
                           self.task_id, task.status_word)
        return changed

    def is_final(self, task: Task) -> bool:
        """True when the wait is over: the task ended, and a completed one has its video URL
        (or was asked `URL_LAG_POLLS` more times without getting one)."""
        if not task.is_terminal:
            return False
        if task.status is TaskStatus.COMPLETED and not task.video_url and self.url_lag_polls < URL_LAG_POLLS:
            self.url_lag_polls += 1
            return False
        return True

    def on_error(self, exc: BaseException) -> None:
        """Ride out transient errors (and a task briefly not visible yet); re-raise the rest."""
        if isinstance(exc, NotFoundError) and self.known_to_exist and self._not_found < 3:
            self._not_found += 1
        elif not is_transient(exc):
            raise exc
        self.last_error = exc
        retry_after = exc.retry_after if isinstance(exc, RateLimitError) else None
        self._error_delay = (
            float(retry_after) if retry_after is not None else backoff_delay(self._errors, rng=self._rng)
        )
        self._errors += 1
        logger.debug("waiting for task %s: %s; polling on", self.task_id, type(exc).__name__)

    def next_delay(self) -> float:
        """Seconds to sleep before the next GET; raises TaskTimeoutError at the deadline."""
        now = self._clock()
        remaining = self.deadline - now
        if remaining <= 0:
            raise self.timeout_error()
        if self.long_poll:  # the server holds each GET: no sleep, but after errors and unheld answers
            delay = LONG_POLL_GAP if self._not_held else 0.0
        else:
            delay = float(self.poll.delay(now - self.started, self.sleeps, self.last))
        self.sleeps += 1
        if not delay >= 0:  # NaN or negative from a custom strategy
            delay = 0.0
        delay = max(delay, self._error_delay)
        return min(delay, remaining)

    def request_timeout(self, base: httpx.Timeout) -> httpx.Timeout:
        """Per-GET timeout that does not run (much) past the overall deadline."""
        remaining = max(0.5, self.deadline - self._clock())
        read = base.read
        if read is not None and read <= remaining:
            return base
        return httpx.Timeout(
            remaining,
            connect=min(remaining, base.connect or remaining),
            pool=min(remaining, base.pool or remaining),
        )

    def timeout_error(self) -> TaskTimeoutError:
        last = self.last
        state = f"last status {last.status}" if last else "no status seen yet"
        if last is not None and last.percent is not None:
            state += f" at {last.percent:.0f}%"
        extra = ""
        if self.last_error is not None:
            said = " ".join(str(self.last_error).split())
            said = said if len(said) <= 300 else said[:299] + "…"
            extra = f" (last error: {type(self.last_error).__name__}: {said})"
        return TaskTimeoutError(
            self._redact(f"Stopped waiting for task {self.task_id} after {self.timeout:.0f} s ({state}){extra}. "
                         f"{self._words.wait_again(self.task_id)}"),
            task_id=self.task_id,
            last_task=last,
        )

    def finish(self, task: Task) -> Task:
        if task.status is TaskStatus.COMPLETED and task.video_url:
            return task
        if task.status is TaskStatus.COMPLETED:
            keys = output_keys(task.raw.get("output"))
            seen = f"its output had {', '.join(keys)}" if keys else "its output was empty"
            raise APIError(self._redact(
                f"Task {task.task_id} completed but PiAPI gave no video URL after {self.url_lag_polls + 1} "
                f"looks ({seen}). {self._words.follow_later(task.task_id)}, and please report this "
                "with a trace (framepack record) so the client learns where this answer keeps the video."
            ))
        if task.status is TaskStatus.CANCELLED:
            message = f"Task {task.task_id} was cancelled" + (f": {task.error}." if task.error else ".")
        else:
            reason = task.error or "PiAPI gave no error message"
            message = f"Task {task.task_id} failed: {reason}. Check the prompt and images, then try again."
        raise TaskFailedError(self._redact(message), task=task)


