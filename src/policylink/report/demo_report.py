"""The demo's run folder: `report.html` (tables and plots) and `results.json` (every figure).

The figures are computed once into plain lists; the JSON holds exactly those lists and the
SVG plots are drawn from them, so a number in the JSON is a number in a plot.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from policylink.demo.fleet import PhaseRecord
from policylink.demo.summary import Comparison, PhaseSummary
from policylink.report import svg
from policylink.report.page import Page

ENGINE_COLOURS = {"async": "#1f77b4", "sync": "#e8710a"}
ROBOT_COLOURS = ("#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")
STATE_COLOURS = {
    "connecting": "#c7c7c7",
    "streaming": "#2ca02c",
    "degraded": "#f2c14e",
    "stalled": "#d62728",
    "reconnecting": "#9467bd",
    "dead": "#000000",
    "stopped": "#7f7f7f",
}
QUEUE_SAMPLES_PER_S = 10
QUEUE_CAPTIONS = {
    "async": "The next chunk arrives while a margin of future actions is still buffered.",
    "sync": "Blocking inference plays each chunk to the end, then waits for the next one.",
}


def _episode_label(robot: str, index: int) -> str:
    return f"{robot.removeprefix('robot-')}·{index}"


def figures(phases: list[PhaseRecord], fps: float) -> dict[str, Any]:
    """Plain-list data of every plot, keyed by figure."""
    labels = [
        _episode_label(robot.robot, episode.episode)
        for robot in phases[0].robots
        for episode in robot.episodes
    ]
    completion: dict[str, Any] = {"episodes": labels}
    for phase in phases:
        by_label = {
            _episode_label(robot.robot, episode.episode): episode.completion_s
            for robot in phase.robots
            for episode in robot.episodes
        }
        completion[phase.engine] = [by_label.get(label) for label in labels]
    stride = max(1, round(fps / QUEUE_SAMPLES_PER_S))
    return {
        "completion_s": completion,
        "rtt_ms": {phase.engine: [x for r in phase.robots for x in r.rtt_ms] for phase in phases},
        "queue_depth": {
            phase.engine: {
                robot.robot: {
                    "t_s": [round(t, 3) for t, _ in robot.queue_depth[::stride]],
                    "depth": [depth for _, depth in robot.queue_depth[::stride]],
                }
                for robot in phase.robots
            }
            for phase in phases
        },
        "engine_states": {
            phase.engine: {
                robot.robot: [
                    {"start_s": round(start, 3), "end_s": round(end, 3), "state": state}
                    for start, end, state in _segments(robot.transitions, robot.finished_s)
                ]
                for robot in phase.robots
            }
            for phase in phases
        },
    }


def _segments(transitions: list[tuple[float, str]], end_s: float) -> list[tuple[float, float, str]]:
    ends = [t for t, _ in transitions[1:]] + [end_s]
    return [
        (max(start, 0.0), max(end, 0.0), state)
        for (start, state), end in zip(transitions, ends, strict=True)
        if state != "stopped"
    ]


def _plots(data: dict[str, Any]) -> list[tuple[str, str]]:
    completion = data["completion_s"]
    engines = [name for name in ENGINE_COLOURS if name in completion]
    plots = [
        (
            svg.bar_chart(
                "Task completion time per episode",
                completion["episodes"],
                [(name, completion[name], ENGINE_COLOURS[name]) for name in engines],
                "seconds",
            ),
            "Time to complete each episode (robot·episode); the same episodes in both phases. "
            "A gap is an episode that did not succeed.",
        ),
        (
            svg.histogram(
                "Round-trip time per chunk",
                [(name, data["rtt_ms"][name], ENGINE_COLOURS[name]) for name in engines],
                "observation sent → chunk received (ms)",
            ),
            "Every chunk's round trip as the robot measured it: encoding, network, queueing "
            "on the server, the forward pass and decoding.",
        ),
    ]
    for name in engines:
        series = [
            svg.Series(robot, samples["t_s"], samples["depth"], ROBOT_COLOURS[i % 7])
            for i, (robot, samples) in enumerate(data["queue_depth"][name].items())
        ]
        plots.append(
            (
                svg.line_chart(f"Queue depth over time ({name})", series, "seconds", "actions"),
                f"Buffered actions per robot, sampled at {QUEUE_SAMPLES_PER_S} Hz ({name} engine). "
                + QUEUE_CAPTIONS.get(name, ""),
            )
        )
    lanes = [
        (
            f"{name} {robot.removeprefix('robot-')}",
            [svg.Segment(s["start_s"], s["end_s"], s["state"]) for s in segments],
        )
        for name in engines
        for robot, segments in data["engine_states"][name].items()
    ]
    plots.append(
        (
            svg.timeline(
                "Engine state over time", lanes, STATE_COLOURS, "seconds since phase start"
            ),
            "Each robot's engine state through its phase: streaming while chunks arrive in time, "
            "degraded or stalled when they do not.",
        )
    )
    return plots


def _summary_rows(summaries: list[PhaseSummary]) -> list[list[str]]:
    def fmt(value: float | None, unit: str, digits: int = 1) -> str:
        return "-" if value is None else f"{value:.{digits}f}{unit}"

    rows = [
        ["episodes succeeded", *(f"{s.succeeded}/{s.episodes}" for s in summaries)],
        ["success rate", *(f"{s.success_rate:.0%}" for s in summaries)],
        ["mean completion time", *(fmt(s.mean_completion_s, " s", 2) for s in summaries)],
        ["mean tracking error", *(fmt(s.mean_tracking_error_mm, " mm") for s in summaries)],
        ["ticks waiting on network", *(f"{s.waiting_ticks} of {s.ticks}" for s in summaries)],
        ["ticks overrun (any cause)", *(str(s.skipped_ticks) for s in summaries)],
        ["chunk requests", *(str(s.requests) for s in summaries)],
        ["requests timed out", *(str(s.timeouts) for s in summaries)],
        ["RTT p50", *(fmt(s.rtt_p50_ms, " ms") for s in summaries)],
        ["RTT p95", *(fmt(s.rtt_p95_ms, " ms") for s in summaries)],
        ["first chunk of episode", *(fmt(s.startup_ms, " ms") for s in summaries)],
    ]
    return rows


def _filmstrips(page: Page, folder: Path) -> None:
    """What each robot saw in its first recorded episode, a still every few seconds."""
    from policylink.episodes.reader import RecordingError, open_recordings
    from policylink.report.filmstrip import stills

    try:
        recordings = open_recordings(folder)
    except RecordingError:
        return
    page.heading("What each robot saw")
    for recording in recordings:
        if not recording.episodes or not recording.cameras:
            continue
        camera = recording.cameras[0]
        phase = recording.dir.parent.name
        page.filmstrip(
            stills(recording.episodes[0], camera),
            f"{recording.robot} ({phase}), first episode, camera {camera}; the full videos: "
            f"policylink report {folder}",
        )


def write_report(
    run_dir: Path,
    *,
    settings: dict[str, Any],
    phases: list[PhaseRecord],
    summaries: list[PhaseSummary],
    comparison: Comparison | None,
    fps: float,
    recording: Path | None = None,
) -> tuple[Path, Path]:
    """`recording`: the `--record` folder, whose videos give each robot a filmstrip."""
    data = figures(phases, fps)
    results = {
        "settings": settings,
        "summaries": [asdict(s) | {"success_rate": s.success_rate} for s in summaries],
        "comparison": None
        if comparison is None
        else asdict(comparison) | {"speedup": comparison.speedup},
        "figures": data,
        "phases": [asdict(phase) for phase in phases],
    }
    json_path = run_dir / "results.json"
    json_path.write_text(json.dumps(results, indent=1))

    page = Page("policylink demo")
    page.paragraph(
        f"{settings['robots']} simulated arms, each a real robot client over Zenoh, share one "
        f"policy server ({settings['policy_size']} backbone). Each arm must reach a target and "
        "then track it as it moves; the same episodes run with the asynchronous engine and "
        "with blocking inference."
    )
    if comparison is not None and comparison.speedup is not None:
        page.paragraph(
            f"Async finished the task {comparison.speedup:.2f}x faster than blocking inference: "
            f"{comparison.candidate_completion_s:.2f} s against "
            f"{comparison.baseline_completion_s:.2f} s on average over the "
            f"{comparison.paired_episodes} episodes both solved.",
            css_class="headline",
        )
    page.heading("Summary")
    page.table(["", *(f"{s.engine} ({s.impairment})" for s in summaries)], _summary_rows(summaries))
    page.paragraph(
        "Ticks waiting on network: control ticks after an episode's first chunk on which "
        "the engine had no action, plus the time the loop spent blocked inside get_action, in "
        "control periods. Overrun ticks are all ticks the loop started late, whatever the cause."
    )
    page.heading("Plots")
    for figure_svg, caption in _plots(data):
        page.figure(figure_svg, caption)
    if recording is not None:
        _filmstrips(page, recording)
    page.heading("Settings")
    page.preformatted(json.dumps(settings, indent=2))
    html_path = run_dir / "report.html"
    html_path.write_text(page.html())
    return html_path, json_path
