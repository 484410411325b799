"""`policylink audit join`: match a robot's recording with the server's audit log."""

from __future__ import annotations

import json
from pathlib import Path

import typer

audit = typer.Typer(no_args_is_help=True, help="Work with the server's audit log.")


@audit.command("join")
def join(
    run: Path = typer.Option(..., "--run", help="Recording folder (policylink run --record)."),
    audit_log: Path = typer.Option(
        ..., "--audit", help="The server's audit lines (JSON lines, or its log file)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of the timeline."),
) -> None:
    """Match every executed action to the audit line of the request that produced it, and show
    per episode where each request's time went: robot, network, queue, forward, server."""
    from policylink.episodes.audit_join import format_timeline, join_recordings, read_audit
    from policylink.episodes.reader import RecordingError, open_recordings

    if not audit_log.is_file():
        raise typer.BadParameter(f"{audit_log} is not a file", param_hint="--audit")
    try:
        recordings = open_recordings(run)
    except RecordingError as exc:
        raise typer.BadParameter(str(exc), param_hint="--run") from None
    lines = read_audit(audit_log)
    if not lines:
        raise typer.BadParameter(
            f"{audit_log} holds no request audit line (policylink serve writes them at "
            "--log-level INFO)",
            param_hint="--audit",
        )
    joins = join_recordings(recordings, lines)
    if as_json:
        typer.echo(json.dumps([j.to_json() for j in joins], indent=1))
    else:
        typer.echo(format_timeline(joins))
