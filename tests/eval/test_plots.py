"""Engines that score the same must not hide one another in the eval plots."""

from __future__ import annotations

import re

from policylink.report import svg

RTTS = [0.0, 100.0, 200.0, 300.0]


def _polylines(chart: str) -> dict[str, list[tuple[float, float]]]:
    """Each polyline's points by its stroke colour."""
    found = re.findall(r'<polyline [^>]*stroke="(#\w+)"[^>]*points="([^"]+)"', chart)
    return {
        colour: [tuple(map(float, pair.split(","))) for pair in points.split()]
        for colour, points in found
    }


def test_a_line_equal_to_an_earlier_one_is_lifted_dashed_and_named_in_the_legend():
    chart = svg.line_chart(
        "success",
        [
            svg.Series("async_rtc", RTTS, [1.0, 1.0, 1.0, 1.0], "#1f77b4"),
            svg.Series("sync", RTTS, [1.0, 1.0, 1.0, 1.0], "#e8710a"),
        ],
        "ms",
        "rate",
        markers=True,
    )
    lines = _polylines(chart)
    below, above = lines["#1f77b4"], lines["#e8710a"]
    assert [x for x, _ in below] == [x for x, _ in above]
    assert all(
        1.0 <= y_below - y_above <= 5.0
        for (_, y_below), (_, y_above) in zip(below, above, strict=True)
    )
    assert re.search(r'stroke="#e8710a"[^>]*stroke-dasharray', chart)
    assert ">sync (= async_rtc)<" in chart
    assert ">async_rtc<" in chart


def test_lines_that_meet_only_at_some_points_are_lifted_only_there():
    chart = svg.line_chart(
        "success",
        [
            svg.Series("async_rtc", RTTS, [1.0, 1.0, 1.0, 1.0], "#1f77b4"),
            svg.Series("sync", RTTS, [1.0, 1.0, 0.5, 0.25], "#e8710a"),
        ],
        "ms",
        "rate",
        markers=True,
    )
    lines = _polylines(chart)
    lifted = [a[1] - b[1] for a, b in zip(lines["#1f77b4"], lines["#e8710a"], strict=True)]
    assert lifted[0] == lifted[1] > 0
    assert lifted[2] < 0 and lifted[3] < 0  # below async_rtc there: drawn where its values are
    assert ">sync<" in chart  # not equal everywhere: no note


def test_every_series_of_a_sweep_gets_its_own_marker_shape():
    chart = svg.line_chart(
        "completion",
        [
            svg.Series("a", RTTS, [1.0, 2.0, 3.0, 4.0], "#111111"),
            svg.Series("b", RTTS, [4.0, 3.0, 2.0, 1.0], "#222222"),
            svg.Series("c", RTTS, [2.0, 2.0, 2.0, 2.0], "#333333"),
        ],
        "ms",
        "s",
        markers=True,
    )
    # One marker per point plus one in the legend, each series its own shape.
    assert chart.count('<circle cx="') == len(RTTS) + 1
    assert chart.count('width="7.0" height="7.0"') == len(RTTS) + 1
    assert chart.count("<polygon") == len(RTTS) + 1


def test_lines_apart_are_drawn_as_given():
    chart = svg.line_chart(
        "depth",
        [svg.Series("r0", [0, 1], [0, 4], "#111111"), svg.Series("r1", [0, 1], [2, 3], "#222222")],
        "s",
        "actions",
    )
    assert "stroke-dasharray" not in chart
    assert "<circle" not in chart
