"""`policylink serve`: run one policy server until SIGTERM, then drain and exit 0."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from typing import Any

import typer
import yaml

from policylink.server.manifest import Manifest, ManifestError, default_manifest_text


def serve(
    *,
    manifest: str | None = typer.Option(None, "--manifest", "-m", help="YAML manifest file."),
    print_manifest: bool = typer.Option(
        False, "--print-manifest", help="Print a fully commented default manifest and exit."
    ),
    kind: str | None = typer.Option(None, "--kind", help="policy.kind"),
    path: str | None = typer.Option(None, "--path", help="policy.path (checkpoint directory)"),
    preset: str | None = typer.Option(None, "--preset", help="policy.preset"),
    factory: str | None = typer.Option(None, "--factory", help="policy.factory (module:function)"),
    device: str | None = typer.Option(None, "--device", help="cpu | cuda[:N] | mps"),
    dtype: str | None = typer.Option(None, "--dtype", help="float32 | float16 | bfloat16"),
    model_id: str | None = typer.Option(None, "--model-id"),
    revision: str | None = typer.Option(None, "--revision"),
    task_slug: str | None = typer.Option(None, "--task-slug"),
    default_task: str | None = typer.Option(None, "--default-task"),
    serving_mode: str | None = typer.Option(
        None, "--serving-mode", help="auto | shared | exclusive"
    ),
    max_sessions: int | None = typer.Option(None, "--max-sessions"),
    scheduler: str | None = typer.Option(
        None, "--scheduler", help="round_robin | batch | deadline"
    ),
    max_batch_size: int | None = typer.Option(None, "--max-batch-size"),
    max_wait_ms: float | None = typer.Option(None, "--max-wait-ms"),
    warmup_inferences: int | None = typer.Option(None, "--warmup-inferences"),
    health_port: int | None = typer.Option(None, "--health-port", help="0 disables /healthz"),
    zenoh_mode: str | None = typer.Option(None, "--zenoh-mode", help="peer | client | router"),
    listen: list[str] | None = typer.Option(None, "--listen", help="Zenoh listen endpoint"),
    connect: list[str] | None = typer.Option(None, "--connect", help="Zenoh connect endpoint"),
    overrides: list[str] | None = typer.Option(
        None, "--set", help="Any field as dotted.path=YAML value, e.g. rtc.enabled=false"
    ),
    log_level: str = typer.Option(
        "INFO", "--log-level", help="INFO prints one audit line per request"
    ),
) -> None:
    """Serve one pre-warmed policy to many robots over Zenoh."""
    if print_manifest:
        typer.echo(default_manifest_text(), nl=False)
        return
    logging.basicConfig(
        level=log_level.upper(), stream=sys.stderr, format="%(asctime)s %(name)s %(message)s"
    )
    from zenoh import ZError

    from policylink.server.app import ServerApp

    values: dict[str, Any] = {
        "policy.kind": kind,
        "policy.path": path,
        "policy.preset": preset,
        "policy.factory": factory,
        "device": device,
        "dtype": dtype,
        "model_id": model_id,
        "revision": revision,
        "task_slug": task_slug,
        "default_task": default_task,
        "serving_mode": serving_mode,
        "max_sessions": max_sessions,
        "scheduler": scheduler,
        "max_batch_size": max_batch_size,
        "max_wait_ms": max_wait_ms,
        "warmup_inferences": warmup_inferences,
        "health_port": health_port,
        "zenoh.mode": zenoh_mode,
        "zenoh.listen": listen or None,
        "zenoh.connect": connect or None,
    }
    app = ServerApp(load_manifest(manifest, values, overrides))

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        app.start()
    except (ValueError, OSError, ZError) as exc:
        typer.echo(f"cannot serve: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(app.startup_line())
    typer.echo(f"serving {app.manifest.namespace().base}")
    sys.stdout.flush()
    while not stop.wait(0.5):
        pass
    typer.echo("draining")
    app.stop()
    typer.echo("stopped")


def load_manifest(
    path: str | None, values: dict[str, Any], overrides: list[str] | None
) -> Manifest:
    """The manifest file, then the options that were given, then `--set` items; a manifest
    error exits 2 with the message that names the field."""
    given = {key: value for key, value in values.items() if value is not None}
    for item in overrides or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"--set {item!r}: use dotted.path=value", param_hint="--set")
        given[key.strip()] = yaml.safe_load(raw)
    try:
        return Manifest.load(path, given)
    except ManifestError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
