"""`policylink eval`: sweep round-trip time, jitter and loss over the built-in task for the
async engine with RTC, without RTC (append), and the blocking engine.

The network is the demo's: a real link (the server in a namespace behind a veth pair and an
impairment proxy) where the kernel allows one, the robot-side wrapper otherwise (`--link`).
Prints one table row per engine and point (the link it ran over, success, completion time,
speed-up against blocking, stale-action ratio, effective control rate, round trip p50/p95/p99)
and writes `eval.json` and `eval.html` into the output folder. Exit 0 when every robot ran; 1
when a robot ended with an error (the table still prints); 2 on bad options, or a link or
server that does not start.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer

from policylink.sim.expert import BACKBONES

DEFAULT_RUNS_DIR = "runs"


def _floats(value: str, option: str) -> tuple[float, ...]:
    try:
        values = tuple(float(part) for part in value.split(",") if part.strip())
    except ValueError:
        raise typer.BadParameter(
            f"{value!r}: give numbers separated by commas, e.g. 0,100,200", param_hint=option
        ) from None
    if not values:
        raise typer.BadParameter("give at least one value", param_hint=option)
    return values


def _image_size(value: str) -> tuple[int, int]:
    height, sep, width = value.lower().partition("x")
    if not sep or not height.isdigit() or not width.isdigit():
        raise typer.BadParameter(f"{value!r}: use HEIGHTxWIDTH, e.g. 480x640")
    return int(height), int(width)


def eval_(
    *,
    rtt_ms: str = typer.Option("0,100,200,300", "--rtt-ms", help="Added round trips (ms)."),
    jitter_ms: str = typer.Option("0", "--jitter-ms", help="± jitter each way (ms), a list."),
    loss: str = typer.Option(
        "0", "--loss", help="Loss probabilities, a list (per TCP segment on a real link)."
    ),
    link: str = typer.Option(
        "auto",
        "--link",
        help="Where the impairments apply: real (namespace, veth, impairment proxy), wrapper "
        "(robot side, per message), auto (real where the kernel allows it).",
    ),
    engines: str = typer.Option(
        "async_rtc,async_append,sync", "--engines", help="Engines to compare, a list."
    ),
    robots: int = typer.Option(4, "--robots", "-n", min=1, max=32, help="Simulated arms."),
    episodes: int = typer.Option(3, "--episodes", "-e", min=1, help="Episodes per arm and point."),
    policy_size: str = typer.Option(
        "small", "--policy-size", help=f"Backbone run per chunk: {', '.join(BACKBONES)}."
    ),
    fps: float = typer.Option(30.0, "--fps", min=5.0, max=200.0, help="Control rate (Hz)."),
    image_size: str = typer.Option("480x640", "--image-size", help="Camera HEIGHTxWIDTH."),
    track_s: float = typer.Option(3.0, "--track-s", min=0.1, help="Tracking time to succeed."),
    max_episode_s: float = typer.Option(
        30.0, "--max-episode-s", min=1.0, help="An episode not done by then fails."
    ),
    buffer_s: float = typer.Option(
        0.8, "--buffer-s", min=0.0, help="Async engine: request when less is buffered."
    ),
    out_dir: Path | None = typer.Option(
        None, "--out-dir", "-o", help="Where eval.json and eval.html go (default runs/eval-…)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the JSON instead of the table."),
) -> None:
    """Measure success, completion time and staleness against added latency, per engine."""
    from policylink.demo.evaluation import EvalConfig, Sweep
    from policylink.demo.server_process import ServerStartError
    from policylink.net.netpath import NetPathError
    from policylink.net.ports import free_port
    from policylink.net.proxy_process import ProxyStartError
    from policylink.report.eval_report import TABLE_HEADER, table_rows, write_eval_report

    if policy_size not in BACKBONES:
        raise typer.BadParameter(
            f"{policy_size!r} is not one of {', '.join(BACKBONES)}", param_hint="--policy-size"
        )
    height, width = _image_size(image_size)
    try:
        config = EvalConfig(
            rtt_ms=_floats(rtt_ms, "--rtt-ms"),
            jitter_ms=_floats(jitter_ms, "--jitter-ms"),
            loss=_floats(loss, "--loss"),
            engines=tuple(name.strip() for name in engines.split(",") if name.strip()),
            robots=robots,
            episodes=episodes,
            policy_size=policy_size,
            fps=fps,
            image_height=height,
            image_width=width,
            track_s=track_s,
            max_episode_s=max_episode_s,
            buffer_time_s=buffer_s,
            link=link,
        )
        folder = out_dir or Path(DEFAULT_RUNS_DIR) / time.strftime("eval-%Y%m%d-%H%M%S")
        sweep = Sweep(config, folder, progress=_progress)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    folder.mkdir(parents=True, exist_ok=True)
    try:
        result = sweep.run(free_port())
    except (NetPathError, ProxyStartError) as exc:
        typer.echo(f"the real link could not be built: {exc} (try --link wrapper)", err=True)
        raise typer.Exit(2) from None
    except ServerStartError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        typer.echo("interrupted; the robots and the server were stopped", err=True)
        raise typer.Exit(130) from None
    html_path, json_path = write_eval_report(folder, result)
    if as_json:
        typer.echo(json.dumps(result.to_json(), indent=2))
    else:
        _print_table(TABLE_HEADER, table_rows(result.points))
        typer.echo(f"report: {html_path}\nresults: {json_path}")
    errors = [error for point in result.points for error in point.errors]
    for error in errors:
        typer.echo(f"error: {error}", err=True)
    if errors:
        raise typer.Exit(1)


def _progress(line: str) -> None:
    typer.echo(line, err=True)


def _print_table(header: tuple[str, ...], rows: list[list[str]]) -> None:
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    for row in (list(header), *rows):
        typer.echo("  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)))
