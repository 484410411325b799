import re

from policylink.report import svg
from policylink.report.page import Page


def test_ticks_are_round_and_cover_the_range():
    assert svg.nice_ticks(0.0, 9.3) == [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]
    assert svg.nice_ticks(0.13, 0.61) == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]


def test_a_degenerate_range_still_gets_ticks():
    assert len(svg.nice_ticks(5.0, 5.0)) >= 2


def test_a_line_chart_draws_one_polyline_per_series_with_its_legend():
    chart = svg.line_chart(
        "depth",
        [
            svg.Series("robot-0", [0, 1, 2], [3, 4, 5], "#111111"),
            svg.Series("robot-1", [0, 1], [1, 0], "#222222"),
        ],
        "s",
        "actions",
    )
    assert chart.count("<polyline") == 2
    assert ">robot-0<" in chart
    assert ">robot-1<" in chart


def test_bars_leave_a_gap_for_a_missing_value():
    chart = svg.bar_chart("t", ["a", "b"], [("x", [1.0, None], "#111111")], "s")
    # One bar and the legend's swatch.
    assert chart.count('fill="#111111"') == 2


def test_a_histogram_counts_every_value_once():
    chart = svg.histogram("rtt", [("async", [0.0, 0.0, 4.0, 8.0], "#111111")], "ms", bins=4)
    heights = [
        float(h) for h in re.findall(r'height="([\d.]+)" fill="#111111" fill-opacity', chart)
    ]
    assert len(heights) == 3
    assert heights[0] == 2 * heights[1] == 2 * heights[2]


def test_a_timeline_colours_segments_by_label():
    chart = svg.timeline(
        "states",
        [("r0", [svg.Segment(0, 1, "streaming"), svg.Segment(1, 2, "stalled")])],
        {"streaming": "#00aa00", "stalled": "#aa0000"},
        "s",
    )
    assert 'fill="#00aa00"' in chart
    assert 'fill="#aa0000"' in chart


def test_charts_without_data_say_so():
    assert "no data" in svg.line_chart("empty", [], "x", "y")
    assert "no data" in svg.histogram("empty", [("a", [], "#000000")], "x")


def test_text_is_escaped_in_plots_and_pages():
    chart = svg.line_chart("<x1>", [svg.Series("<script>", [0], [0], "#000000")], "x", "y")
    page = Page("<x2>")
    page.paragraph("<x3>")
    page.table(["<x4>"], [["<x5>"]])
    page.figure(chart, "<x6>")
    html = page.html()
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    for raw in ("<x1>", "<x2>", "<x3>", "<x4>", "<x5>", "<x6>"):
        assert raw not in html
        assert raw.replace("<", "&lt;").replace(">", "&gt;") in html
