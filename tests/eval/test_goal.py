"""The eval's goal check reads the issue's goal: RTC at least 2x faster where both engines
succeed equally often, never less successful, and within 5 points of its 0 ms success at 200 ms."""

from __future__ import annotations

from policylink.demo.evaluation import BASELINE, CANDIDATE, PointResult, goal_summary


def point(engine: str, rtt_ms: float, succeeded: int, speedup: float | None = None) -> PointResult:
    return PointResult(
        engine=engine,
        rtt_ms=rtt_ms,
        jitter_ms=0.0,
        loss=0.0,
        link="wrapper",
        network="test",
        robots=4,
        episodes=12,
        succeeded=succeeded,
        success_rate=succeeded / 12,
        completion_s_mean=None,
        completion_s_p50=None,
        stale_action_ratio=0.0,
        effective_control_hz=30.0,
        rtt_p50_ms=None,
        rtt_p95_ms=None,
        rtt_p99_ms=None,
        requests=0,
        timeouts=0,
        dropped_by_link=0,
        wall_s=1.0,
        speedup_vs_sync=speedup,
    )


def sweep(*rows: tuple[float, int, int, float]) -> list[PointResult]:
    """(rtt, RTC successes, blocking successes, RTC speed-up) per round-trip time."""
    points = []
    for rtt, rtc, sync, speedup in rows:
        points += [point(CANDIDATE, rtt, rtc, speedup), point(BASELINE, rtt, sync, 1.0)]
    return points


def test_a_slower_point_where_blocking_fails_more_does_not_miss_the_goal():
    goal = goal_summary(sweep((0, 12, 12, 2.4), (200, 12, 11, 2.9), (300, 12, 7, 1.9)))
    assert goal["speedup_met"] and goal["success_drop_met"]


def test_under_2x_at_equal_success_misses_the_goal():
    goal = goal_summary(sweep((0, 12, 12, 2.4), (200, 12, 12, 1.8)))
    assert not goal["speedup_met"]


def test_rtc_solving_fewer_episodes_than_blocking_misses_the_goal():
    goal = goal_summary(sweep((0, 12, 12, 2.4), (200, 10, 12, 3.0)))
    assert not goal["speedup_met"]
    assert goal["success_drop_points_0_to_200_ms"] > 5 and not goal["success_drop_met"]
