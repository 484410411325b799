"""What the demo shows in the terminal: a live table per robot, then the comparison."""

from __future__ import annotations

import time

from rich.console import Console
from rich.live import Live
from rich.table import Table

from policylink.demo.fleet import Fleet, LiveRow, PhaseRecord
from policylink.demo.summary import Comparison, PhaseSummary

REFRESH_S = 0.25
_STATE_STYLE = {
    "streaming": "green",
    "degraded": "yellow",
    "stalled": "red",
    "reconnecting": "magenta",
    "dead": "bold red",
}


def live_table(title: str, rows: list[LiveRow], episodes: int, elapsed_s: float) -> Table:
    table = Table(title=f"{title} — {elapsed_s:5.1f} s", title_justify="left")
    table.add_column("robot")
    table.add_column("engine state")
    table.add_column("queue", justify="right")
    table.add_column("last RTT", justify="right")
    table.add_column("episodes done", justify="right")
    table.add_column("succeeded", justify="right")
    for row in rows:
        style = _STATE_STYLE.get(row.state, "")
        table.add_row(
            row.robot,
            f"[{style}]{row.state}[/]" if style else row.state,
            str(row.queue_depth),
            "-" if row.last_rtt_ms is None else f"{row.last_rtt_ms:.1f} ms",
            f"{row.episodes_done}/{episodes}",
            str(row.episodes_succeeded),
        )
    return table


def watch(fleet: Fleet, title: str, console: Console) -> PhaseRecord:
    """Run the fleet to the end with a live table; Ctrl-C stops the robots cleanly."""
    episodes = fleet.config.episodes

    def render() -> Table:
        return live_table(title, fleet.live(), episodes, time.monotonic() - fleet.origin_s)

    fleet.start()
    try:
        with Live(render(), console=console, refresh_per_second=1 / REFRESH_S) as live:
            while fleet.running:
                time.sleep(REFRESH_S)
                live.update(render())
    except KeyboardInterrupt:
        fleet.stop()
        fleet.join()
        raise
    console.print()
    return fleet.join()


def _value(value: float | None, unit: str = "", digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}{unit}"


def summary_table(phases: list[PhaseSummary], comparison: Comparison | None) -> Table:
    network = phases[0].impairment if phases else ""
    table = Table(title=f"Summary (network: {network})", title_justify="left")
    table.add_column("")
    for phase in phases:
        table.add_column(phase.engine, justify="right")
    rows = [
        ("episodes succeeded", lambda p: f"{p.succeeded}/{p.episodes} ({p.success_rate:.0%})"),
        ("mean completion time", lambda p: _value(p.mean_completion_s, " s", 2)),
        ("mean tracking error", lambda p: _value(p.mean_tracking_error_mm, " mm")),
        ("ticks waiting on network", lambda p: f"{p.waiting_ticks} of {p.ticks}"),
        ("ticks overrun (any cause)", lambda p: str(p.skipped_ticks)),
        ("chunk requests", lambda p: str(p.requests)),
        ("requests timed out", lambda p: str(p.timeouts)),
        ("bytes per request", lambda p: _value(p.bytes_per_request, " B", 0)),
        ("RTT p50 / p95", lambda p: f"{_value(p.rtt_p50_ms)} / {_value(p.rtt_p95_ms, ' ms')}"),
        ("first chunk of episode", lambda p: _value(p.startup_ms, " ms")),
        ("phase wall time", lambda p: _value(p.wall_s, " s")),
    ]
    for label, cell in rows:
        table.add_row(label, *(cell(phase) for phase in phases))
    if comparison is not None and comparison.speedup is not None:
        candidate, baseline = comparison.candidate_completion_s, comparison.baseline_completion_s
        table.caption = (
            f"async completes the task {comparison.speedup:.2f}x faster than blocking inference "
            f"(mean over the {comparison.paired_episodes} episodes both solved: "
            f"{candidate:.2f} s vs {baseline:.2f} s)"
        )
        table.caption_justify = "left"
    return table
