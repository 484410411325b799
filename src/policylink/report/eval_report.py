"""`policylink eval`'s output folder: `eval.html` (table and plots) and `eval.json` (every number).

The plots are drawn from the same `PointResult` list the JSON holds: one line per engine (and per
jitter/loss combination when the sweep has several) over the added round-trip time, each with
markers of its own, so engines that score the same stay visible (`svg.line_chart`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from policylink.demo.evaluation import ENGINE_VARIANTS, EvalResult, PointResult
from policylink.report import svg
from policylink.report.page import Page

ENGINE_COLOURS = {"async_rtc": "#1f77b4", "async_append": "#2ca02c", "sync": "#e8710a"}
EXTRA_COLOURS = ("#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#d62728")
Metric = Callable[[PointResult], float | None]
FIGURES: tuple[tuple[str, str, Metric], ...] = (
    ("Success rate", "success rate", lambda p: p.success_rate),
    ("Completion time (successful episodes)", "seconds", lambda p: p.completion_s_mean),
    ("Stale-action ratio", "periods without a fresh action", lambda p: p.stale_action_ratio),
    ("Effective control rate", "fresh actions per second", lambda p: p.effective_control_hz),
    ("Measured round trip p95", "ms", lambda p: p.rtt_p95_ms),
)
TABLE_HEADER = (
    "engine",
    "added",
    "link",
    "success",
    "completion s",
    "vs blocking",
    "stale",
    "control Hz",
    "RTT p50/p95/p99 ms",
)


def _number(value: float | None, digits: int = 2, suffix: str = "") -> str:
    return "-" if value is None else f"{value:.{digits}f}{suffix}"


def _network(point: PointResult) -> str:
    """The added impairment, short: `+200 ms`, with `±20 ms 5%` when jitter or loss is set."""
    text = f"+{point.rtt_ms:g} ms"
    if point.jitter_ms or point.loss:
        text += f" ±{point.jitter_ms:g} ms {point.loss:.0%}"
    return text


def table_rows(points: list[PointResult]) -> list[list[str]]:
    """The rows both the terminal and the HTML table show."""
    return [
        [
            point.engine,
            _network(point),
            point.link,
            f"{point.succeeded}/{point.episodes} ({point.success_rate:.0%})",
            _number(point.completion_s_mean),
            _number(point.speedup_vs_sync, 2, "x"),
            f"{point.stale_action_ratio:.1%}",
            f"{point.effective_control_hz:.1f}",
            "/".join(_number(v, 0) for v in (point.rtt_p50_ms, point.rtt_p95_ms, point.rtt_p99_ms)),
        ]
        for point in points
    ]


def _series(points: list[PointResult], metric: Metric) -> list[svg.Series]:
    conditions = sorted({(p.jitter_ms, p.loss) for p in points})
    extra = iter(EXTRA_COLOURS * len(points))
    series = []
    for engine in dict.fromkeys(p.engine for p in points):
        for jitter, loss in conditions:
            chosen = [
                p for p in points if p.engine == engine and (p.jitter_ms, p.loss) == (jitter, loss)
            ]
            valued = [(p.rtt_ms, value) for p in chosen if (value := metric(p)) is not None]
            name = engine if len(conditions) == 1 else f"{engine} ±{jitter:g} ms {loss:.0%}"
            colour = ENGINE_COLOURS.get(engine, "#999") if len(conditions) == 1 else next(extra)
            series.append(svg.Series(name, [x for x, _ in valued], [y for _, y in valued], colour))
    return series


def render(result: EvalResult) -> str:
    settings = result.settings
    page = Page("policylink eval: control quality against latency")
    page.paragraph(
        f"{settings['robots']} robots, {settings['episodes']} episodes per engine and point, "
        f"{settings['policy_size']} backbone, {settings['fps']:g} Hz, camera "
        f"{settings['image_height']}x{settings['image_width']}, tracking {settings['track_s']:g} s."
    )
    goal = result.goal
    page.paragraph(_goal_line(goal), "headline")
    page.heading("Results")
    page.table(TABLE_HEADER, table_rows(result.points))
    page.paragraph(
        "Engines: "
        + "; ".join(
            f"{name}: {ENGINE_VARIANTS[name].description}"
            for name in dict.fromkeys(p.engine for p in result.points)
        )
        + ". Stale: control periods in which no fresh action was commanded (the arm held). "
        "vs blocking: completion time of the blocking engine over this engine's, on the "
        "episodes both solved. Link: real (the server in a network namespace behind a veth "
        "pair and an impairment proxy, so Zenoh's own traffic crosses the delay and loss; loss "
        "is per TCP segment, paid as a retransmission), wrapper (the robot side delays and drops "
        "whole messages) or loopback (nothing added)."
    )
    note = settings.get("link_note")
    page.paragraph(f"Path: {settings.get('path') or '-'}" + (f" ({note})." if note else "."))
    page.heading("Plots")
    for title, unit, metric in FIGURES:
        series = _series(result.points, metric)
        chart = svg.line_chart(title, series, "added round trip (ms)", unit, markers=True)
        page.figure(chart, title)
    page.heading("Settings")
    page.preformatted(json.dumps(settings, indent=2))
    return page.html()


def _goal_line(goal: dict) -> str:
    drop = goal.get("success_drop_points_0_to_200_ms")
    speedups = ", ".join(
        f"{rtt} ms: {_number(entry['speedup_vs_sync'], 2, 'x')}"
        for rtt, entry in goal.get("by_rtt_ms", {}).items()
    )
    speedup_met = "met" if goal.get("speedup_met") else "not met"
    drop_met = "met" if goal.get("success_drop_met") else "not met"
    return (
        f"async RTC vs blocking completion speed-up — {speedups or 'not measured'} "
        f"(goal ≥ {goal.get('speedup_goal', 2):g}x: {speedup_met}); "
        f"async RTC success drop from 0 to 200 ms: {_number(drop, 1, ' points')} ({drop_met})."
    )


def write_eval_report(out_dir: Path, result: EvalResult) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "eval.json"
    html_path = out_dir / "eval.html"
    json_path.write_text(json.dumps(result.to_json(), indent=2) + "\n")
    html_path.write_text(render(result))
    return html_path, json_path
