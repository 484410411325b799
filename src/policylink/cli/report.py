"""`policylink report DIR`: one self-contained HTML page per recorded run."""

from __future__ import annotations

from pathlib import Path

import typer


def report(
    run: Path = typer.Argument(..., help="Recording folder (policylink run/demo --record)."),
    out: Path | None = typer.Option(
        None, "--out", help="Where to write the page (default: DIR/report.html)."
    ),
) -> None:
    """Write each episode's camera videos beside plots of actions, engine state, queue depth
    and latency on one time axis; the page embeds everything and opens offline."""
    from policylink.episodes.reader import RecordingError, open_recordings
    from policylink.report.run_report import write_run_report

    try:
        recordings = open_recordings(run)
    except RecordingError as exc:
        raise typer.BadParameter(str(exc), param_hint="DIR") from None
    path = write_run_report(recordings, out or run / "report.html")
    typer.echo(f"report: {path}")
