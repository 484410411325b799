"""`policylink report DIR`: a recorded run on one page, videos beside plots on one time axis.

Per robot and episode: the camera videos, embedded, and under them actions, queue depth,
latency and engine state against seconds since the episode began — the same clock the videos
run on (their timestamps are the loop's schedule), so a moment in a plot is found in a video
at the same second.
"""

from __future__ import annotations

from pathlib import Path

from policylink.episodes.reader import Episode, Recording
from policylink.report import svg
from policylink.report.demo_report import ROBOT_COLOURS, STATE_COLOURS
from policylink.report.page import Page


def _times(table: dict) -> list[float]:
    start = table["mono_ns"][0] if table["mono_ns"] else 0
    return [(t - start) / 1e9 for t in table["mono_ns"]]


def _state_segments(times: list[float], states: list[str], period_s: float) -> list[svg.Segment]:
    segments: list[svg.Segment] = []
    for t, state in zip(times, states, strict=True):
        if segments and segments[-1].label == state:
            segments[-1] = svg.Segment(segments[-1].start, t + period_s, state)
        else:
            segments.append(svg.Segment(t, t + period_s, state))
    return segments


def _episode_section(page: Page, recording: Recording, episode: Episode) -> None:
    table = episode.ticks().to_pydict()
    times = _times(table)
    meta = episode.meta
    page.heading(f"{recording.name}, episode {episode.index}")
    server = meta.get("server") or {}
    page.paragraph(
        f"{len(times)} ticks, {meta.get('frames_dropped', 0)} frames dropped, status "
        f"{meta.get('status')}; outcome {meta.get('outcome') or '-'}; served by "
        f"{server.get('model_id', '?')}@{server.get('revision', '?')} "
        f"replica {server.get('replica') or '-'}."
    )
    clips = [
        (camera, episode.video_path(camera).read_bytes())
        for camera in recording.cameras
        if episode.video_path(camera).exists()
    ]
    if clips:
        page.videos(clips, "What the robot saw (" + ", ".join(c for c, _ in clips) + ").")
    names = recording.info.get("action_names", [])
    played = [(t, a) for t, a in zip(times, table["action"], strict=True) if a is not None]
    series = [
        svg.Series(
            name,
            [t for t, _ in played],
            [a[i] for _, a in played],
            ROBOT_COLOURS[i % len(ROBOT_COLOURS)],
        )
        for i, name in enumerate(names)
    ]
    page.figure(
        svg.line_chart("Actions", series, "seconds", "command"),
        "Every executed action, per motor; gaps are ticks that held.",
    )
    page.figure(
        svg.line_chart(
            "Queue depth",
            [svg.Series("buffered", times, table["queue_depth"], "#1f77b4")],
            "seconds",
            "actions",
        ),
        "Actions buffered after each tick.",
    )
    latency = [
        (t, rtt, inf)
        for t, rtt, inf in zip(times, table["rtt_ms"], table["inference_ms"], strict=True)
        if rtt is not None
    ]
    page.figure(
        svg.line_chart(
            "Latency of the playing chunk",
            [
                svg.Series(
                    "round trip", [t for t, _, _ in latency], [r for _, r, _ in latency], "#e8710a"
                ),
                svg.Series(
                    "forward", [t for t, _, _ in latency], [f for _, _, f in latency], "#2ca02c"
                ),
            ],
            "seconds",
            "ms",
        ),
        "Round trip and forward time of the request whose chunk each tick played.",
    )
    segments = _state_segments(times, table["engine_state"], 1 / recording.fps)
    page.figure(
        svg.timeline("Engine state", [("engine", segments)], STATE_COLOURS, "seconds"),
        "The engine's state at every tick.",
    )


def write_run_report(recordings: list[Recording], path: Path) -> Path:
    page = Page("policylink run")
    page.paragraph(
        f"{len(recordings)} robot(s): " + ", ".join(r.name for r in recordings) + ". Each "
        "episode's videos and plots share one clock: seconds since the episode began."
    )
    for recording in recordings:
        for episode in recording.episodes:
            _episode_section(page, recording, episode)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page.html())
    return path
