"""The ETA: learned from finished runs per backend, robust to outliers, honest about defaults."""

from __future__ import annotations

import math

import pytest

from framepack_widgets.runs.eta import (
    MIN_SAMPLES,
    PIAPI_SECONDS_PER_VIDEO_SECOND,
    Estimate,
    describe_remaining,
    estimate_wall_time,
    history_from_runs,
    progress_estimate,
)


def test_without_history_piapi_uses_the_documented_default() -> None:
    est = estimate_wall_time(20, [])
    assert est == Estimate(20 * PIAPI_SECONDS_PER_VIDEO_SECOND, "default", 0, "piapi", est.low, est.high)
    assert "guess" in est.describe()


def test_fewer_than_three_samples_is_still_the_default() -> None:
    history = [(10, 50.0, "piapi"), (10, 60.0, "piapi")]
    est = estimate_wall_time(10, history)
    assert est.basis == "default" and est.n == 2
    assert "only 2 finished runs" in est.describe()


def test_median_ratio_per_backend_ignores_outliers_and_other_backends() -> None:
    history = [
        (10, 50.0, "piapi"),  # 5 s per video second
        (20, 100.0, "piapi"),  # 5
        (30, 180.0, "piapi"),  # 6
        (10, 10_000.0, "piapi"),  # a stuck task: 1000
        (10, 1.0, "simulator"),  # another backend: ignored
        (10, 0.0, "piapi"),  # nonsense: ignored
        (10, float("nan"), "piapi"),
        ("x", 5, "piapi"),
    ]
    est = estimate_wall_time(30, history)
    assert est.basis == "history" and est.n == 4
    # median of ratios 5, 5, 6, 1000 = 5.5 -> 165 s for a 30 s clip
    assert est.seconds == pytest.approx(165.0)
    assert est.low is not None and est.high is not None and est.low <= est.seconds <= est.high
    assert "from 4 earlier runs" in est.describe()
    assert estimate_wall_time(30, history, backend="simulator").basis == "default"


def test_same_duration_history_is_used_directly() -> None:
    history = [(10, 40.0, "simulator"), (10, 44.0, "simulator"), (10, 42.0, "simulator"), (30, 60.0, "simulator")]
    est = estimate_wall_time(10, history, backend="simulator")
    assert est.basis == "history" and est.n == 3 and est.seconds == pytest.approx(42.0)
    # For 20 s there are not three runs of that length: the median ratio over all four.
    est20 = estimate_wall_time(20, history, backend="simulator")
    assert est20.n == 4 and est20.seconds == pytest.approx(20 * 4.1)  # ratios 4.0, 4.4, 4.2, 2.0


def test_a_known_clock_replaces_the_guess() -> None:
    guess = estimate_wall_time(10, [], backend="simulator")
    assert guess.basis == "default" and not guess.from_clock and "guess" in guess.describe()
    clock = estimate_wall_time(10, [], backend="simulator", default=lambda d: (1 + d) / 10)
    assert clock.seconds == pytest.approx(1.1) and clock.from_clock
    assert "the simulator's clock" in clock.describe()
    assert estimate_wall_time(10, [], default=2.0).seconds == 20.0


def test_progress_is_capped_until_done() -> None:
    est = Estimate(100.0, "default", 0)
    assert progress_estimate(0, est) == 0.0
    assert progress_estimate(50, est) == 50.0
    assert progress_estimate(99, est) == 95.0
    assert progress_estimate(10_000, est) == 95.0
    assert progress_estimate(10, est, done=True) == 100.0
    assert progress_estimate(5, 10.0) == 50.0
    assert progress_estimate(5, 0.0) == 95.0
    assert progress_estimate(-1, est) == 0.0
    assert progress_estimate(math.nan, est) == 0.0


def test_remaining_text() -> None:
    est = Estimate(100.0, "history", 5)
    assert describe_remaining(60, est) == "about 40 s left (estimate)"
    assert describe_remaining(200, est) == "taking longer than estimated"
    assert "min" in Estimate(300.0, "history", 3).describe()
    assert est.to_dict()["text"] == est.describe()


def test_history_from_runs_takes_completed_runs_only() -> None:
    from datetime import datetime, timedelta, timezone

    from framepack_widgets.runs import Run

    start = datetime(2026, 1, 1, tzinfo=timezone.utc)

    def run(stage: str, duration: int, wall: float | None, backend: str = "simulator") -> Run:
        ended = None if wall is None else start + timedelta(seconds=wall)
        return Run.from_dict({"run_id": f"{stage}-{duration}", "params": {"duration": duration}, "stage": stage,
                              "backend": backend, "submitted_at": start.isoformat(),
                              "finished_at": ended and ended.isoformat()})

    runs = [
        run("completed", 10, 30.0),
        run("failed", 10, 5.0),
        run("completed", 30, 90.0, "piapi"),
        run("completed", 10, 33.0),
    ]
    assert history_from_runs(runs) == [(10.0, 30.0, "simulator"), (30.0, 90.0, "piapi"), (10.0, 33.0, "simulator")]
    assert MIN_SAMPLES == 3
