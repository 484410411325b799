"""`policylink export FORMAT DIR`: a recording in a format the ecosystem opens.

Each format is one function registered on `export`; adding one is adding a function.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, cast

import typer

if TYPE_CHECKING:
    from policylink.episodes.reader import Recording

export = typer.Typer(no_args_is_help=True, help="Export a recording for other tools.")


def _recordings(run: Path) -> list[Recording]:
    from policylink.episodes.reader import RecordingError, open_recordings

    try:
        return open_recordings(run)
    except RecordingError as exc:
        raise typer.BadParameter(str(exc), param_hint="DIR") from None


@export.command("rerun")
def rerun(
    run: Path = typer.Argument(..., help="Recording folder (policylink run/demo --record)."),
    out: Path | None = typer.Option(None, "--out", help="The .rrd file (default: DIR/run.rrd)."),
) -> None:
    """A Rerun recording (.rrd): cameras, state, actions and engine state on one timeline."""
    from policylink.episodes.rerun_export import export_rerun

    try:
        path = export_rerun(_recordings(run), out or run / "run.rrd")
    except ImportError as exc:
        raise typer.BadParameter(str(exc)) from None
    typer.echo(f"rerun recording: {path} (open it with: rerun {path})")


@export.command("lerobot")
def lerobot(
    run: Path = typer.Argument(..., help="Recording folder (policylink run/demo --record)."),
    *,
    out: Path = typer.Option(..., "--out", help="The dataset folder to create (must not exist)."),
    repo_id: str | None = typer.Option(
        None, "--repo-id", help="The dataset's repo id (default: local/<DIR's name>)."
    ),
    fps: int | None = typer.Option(
        None, "--fps", help="Dataset rate: the recorded one (default) or an integer divisor of it."
    ),
    task: str | None = typer.Option(
        None, "--task", help="Task string of every frame (default: the one the robot sent)."
    ),
    no_action: str = typer.Option(
        "skip",
        "--no-action",
        help="Ticks where the robot was sent no action: skip them, or hold the last action.",
    ),
    robot_type: str | None = typer.Option(
        None, "--robot-type", help="LeRobot's robot type for the metadata, e.g. so101_follower."
    ),
) -> None:
    """A LeRobot dataset (the format of the installed lerobot): state, action, camera videos,
    task and recorded tick per frame, one dataset episode per recorded episode. Needs the
    LeRobot environment: `make setup-lerobot`, then `.venv-lerobot/bin/policylink export
    lerobot ...`."""
    from policylink.episodes.lerobot_export import NO_ACTION_CHOICES, NoAction, export_lerobot

    if no_action not in NO_ACTION_CHOICES:
        raise typer.BadParameter(
            f"{no_action!r} is not one of {', '.join(NO_ACTION_CHOICES)}", param_hint="--no-action"
        )
    recordings = _recordings(run)
    try:
        summary = export_lerobot(
            recordings,
            out,
            repo_id=repo_id or f"local/{run.resolve().name}",
            fps=fps,
            task=task,
            no_action=cast("NoAction", no_action),
            robot_type=robot_type,
            progress=typer.echo,
        )
    except (ImportError, ValueError) as exc:
        raise typer.BadParameter(str(exc)) from None
    typer.echo(f"lerobot dataset: {summary.root} ({summary.describe()})")
    typer.echo(f"load it with: LeRobotDataset({summary.repo_id!r}, root={str(summary.root)!r})")
