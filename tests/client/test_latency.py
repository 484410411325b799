"""LatencyTracker: a windowed maximum turned into whole control ticks."""

from __future__ import annotations

import pytest

from policylink.client.latency import LatencyTracker


def test_no_sample_means_no_delay() -> None:
    tracker = LatencyTracker()
    assert (tracker.estimate_s, tracker.last_s, tracker.delay_steps(0.01)) == (0.0, None, 0)


def test_estimate_is_the_largest_recent_sample() -> None:
    tracker = LatencyTracker(window=3)
    for sample in (0.5, 0.1, 0.2, 0.3):
        tracker.add(sample)
    assert tracker.estimate_s == pytest.approx(0.3)
    assert tracker.last_s == pytest.approx(0.3)


def test_delay_steps_round_up_to_whole_ticks() -> None:
    tracker = LatencyTracker()
    tracker.add_ns(41_000_000)
    assert tracker.delay_steps(1 / 30) == 2


def test_an_exact_multiple_of_the_period_is_not_rounded_up() -> None:
    tracker = LatencyTracker()
    tracker.add(0.3)
    assert tracker.delay_steps(0.1) == 3


def test_negative_samples_are_refused() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        LatencyTracker().add(-0.001)
