"""The ETA: learned from finished runs per backend, robust to outliers, honest about defaults."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from framepack_widgets.eta import (
    MIN_SAMPLES,
    PIAPI_SECONDS_PER_VIDEO_SECOND,
    Estimate,
    describe_remaining,
    estimate_wall_time,
    history_from_runs,
    progress_estimate,
    simulator_clock,
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


def test_simulator_default_comes_from_its_clock() -> None:
    est = estimate_wall_time(10, [], backend="simulator")
    assert est.basis == "default" and est.seconds == pytest.approx(3 + 4 + 3 * 10)
    fast = SimpleNamespace(time_scale=10.0, pending_seconds=1.0, processing_seconds=lambda d: d)
    assert simulator_clock(fast)(20) == pytest.approx((1 + 20) / 10)
    fixed = SimpleNamespace(time_scale=2.0, pending_seconds=None, processing_seconds=5.0)
    assert simulator_clock(fixed)(30) == pytest.approx((3 + 5) / 2)
    est = estimate_wall_time(10, [], backend="simulator", default=simulator_clock(fast))
    assert est.seconds == pytest.approx(1.1)
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
    def run(stage: str, duration: int, wall: float | None, backend: str = "simulator") -> SimpleNamespace:
        return SimpleNamespace(stage=stage, status=None, input=SimpleNamespace(duration=duration), wall_time=wall, backend=backend)

    runs = [
        run("completed", 10, 30.0),
        run("failed", 10, 5.0),
        run("completed", 20, None),
        run("processing", 10, 3.0),
        run("completed", 30, 90.0, "piapi"),
        {"stage": "completed", "duration": 10, "wall_time": 33.0, "backend": "simulator"},
    ]
    assert history_from_runs(runs) == [(10.0, 30.0, "simulator"), (30.0, 90.0, "piapi"), (10.0, 33.0, "simulator")]
    assert MIN_SAMPLES == 3
