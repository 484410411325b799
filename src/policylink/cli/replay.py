"""`policylink replay`: a server capture through another checkpoint or configuration, offline.

Prints how the chunks differ per action dimension and which requests differ most, and how the
forward time changed; `--json`/`--out` give the whole report. With `--max-diff` the exit code
gates a checkpoint in CI: 1 when a chunk moved further than allowed (or the new policy failed a
request the captured one answered), 2 when the capture or the manifest cannot be used.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from policylink.cli.serve import load_manifest

if TYPE_CHECKING:
    from policylink.server.replay import ReplayReport

WORST_SHOWN = 5


def replay(
    capture_dir: Path = typer.Argument(..., help="A folder the server wrote with capture.dir."),
    *,
    manifest: str | None = typer.Option(
        None, "--manifest", "-m", help="Manifest of the checkpoint/configuration to replay with."
    ),
    device: str | None = typer.Option(None, "--device", help="cpu | cuda[:N] | mps"),
    overrides: list[str] | None = typer.Option(
        None, "--set", help="Any manifest field as dotted.path=YAML value, e.g. policy.seed=1"
    ),
    max_diff: float | None = typer.Option(
        None, "--max-diff", min=0.0, help="Exit 1 when any action moved further than this."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Also write the JSON report here."),
) -> None:
    """Replay a server capture through another policy and report how its chunks differ."""
    loaded = load_manifest(manifest, {"device": device}, overrides)
    from policylink.server.capture import CaptureError
    from policylink.server.replay import ReplayError, replay_capture

    try:
        report = replay_capture(capture_dir, loaded, progress=_progress)
    except (CaptureError, ReplayError) as exc:
        typer.echo(f"\n{exc}", err=True)
        raise typer.Exit(2) from None
    data = report.to_json()
    if out is not None:
        out.write_text(json.dumps(data, indent=2) + "\n")
    if as_json:
        typer.echo(json.dumps(data, indent=2))
    else:
        _print(report, max_diff)
    if max_diff is not None and report.exceeds(max_diff):
        raise typer.Exit(1)


def _progress(done: int, total: int) -> None:
    """One line on stderr, rewritten in place; a capture of thousands takes a while."""
    if done == total or done % 20 == 0:
        sys.stderr.write(f"\rreplayed {done}/{total} requests")
        if done == total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _print(report: ReplayReport, max_diff: float | None) -> None:
    policy = report.policy
    outcomes = ", ".join(f"{count} {name}" for name, count in sorted(report.outcomes.items()))
    typer.echo(
        f"replayed {report.requests} requests of {report.capture_dir} through "
        f"{policy['kind']} (preset {policy['preset']}, seed {policy['seed']}): {outcomes}"
    )
    steps = report.chunk_steps
    if steps["captured"] and steps["captured"] != steps["replayed"]:
        typer.echo(
            f"chunks: {steps['captured']} steps captured, {steps['replayed']} replayed; the "
            "first steps both have are compared"
        )
    typer.echo(f"{'action':<16}{'max |diff|':>14}{'mean |diff|':>14}")
    for dim in report.dimensions:
        typer.echo(f"{dim.name:<16}{dim.max_abs_diff:>14.6g}{dim.mean_abs_diff:>14.6g}")
    worst = sorted(
        (d for d in report.per_request if d.max_abs_diff),
        key=lambda d: d.max_abs_diff or 0.0,
        reverse=True,
    )[:WORST_SHOWN]
    if worst:
        typer.echo("requests that differ most:")
        for diff in worst:
            typer.echo(
                f"  {diff.file}  {diff.protocol:<7}{diff.client:<20}episode {diff.episode_id:<4}"
                f"seq {diff.seq_id:<6}max {diff.max_abs_diff:.6g}"
            )
    failed = [d for d in report.per_request if d.outcome == "replay_error"]
    for diff in failed[:WORST_SHOWN]:
        typer.echo(f"  {diff.file}: the replay policy failed: {diff.message}")
    forward = report.forward
    ratio = forward.p50_ratio
    sizes = ", ".join(str(size) for size in forward.captured_batch_sizes) or "-"
    typer.echo(
        f"forward ms p50/p95: captured {_ms(forward.captured_p50_ms)}/"
        f"{_ms(forward.captured_p95_ms)} (batch sizes {sizes}), replayed "
        f"{_ms(forward.replayed_p50_ms)}/{_ms(forward.replayed_p95_ms)} (batch 1)"
        + ("" if ratio is None else f", {ratio:.2f}x")
    )
    verdict = f"largest difference {report.max_abs_diff:.6g}"
    if report.regressions:
        verdict += f"; {report.regressions} requests failed on the replay policy"
    if max_diff is not None:
        verdict += (
            f" (--max-diff {max_diff:g}): FAIL"
            if report.exceeds(max_diff)
            else f" <= --max-diff {max_diff:g}: ok"
        )
    typer.echo(verdict)
