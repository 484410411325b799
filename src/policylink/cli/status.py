"""`policylink status`: what every replica behind an endpoint serves, and how loaded it is."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from policylink.wire.messages import Status


def describe(status: Status) -> list[str]:
    caps = status.capabilities
    cameras = ", ".join(f"{c.name} {c.height}x{c.width}" for c in caps.cameras) or "none"
    rtc = f"yes (horizon {caps.rtc_execution_horizon})" if caps.supports_rtc else "no"
    task = caps.default_task or "(none)"
    lines = [
        f"@policylink/{caps.model_id}/{caps.revision}/{caps.task_slug}"
        f"  replica {status.replica_id}",
        f"  model        {caps.model_id} @ {caps.revision}, task slug {caps.task_slug}",
        f"  load         {status.active_sessions}/{status.max_sessions} sessions "
        f"({status.load:.0%}), {caps.serving_mode}" + (", DRAINING" if status.draining else ""),
        f"  actions      {len(caps.action_names)}: {', '.join(caps.action_names)}",
        f"  state        {caps.state_dim} values"
        + (f": {', '.join(caps.state_names)}" if caps.state_names else ""),
        f"  cameras      {cameras}",
        f"  chunk        {caps.chunk_size} steps at {caps.trained_fps:g} Hz, RTC {rtc}",
        f"  task         {task}" + (" (pinned)" if caps.pin_task else ""),
        f"  schema       {caps.schema_min}..{caps.schema_max}, server {caps.server_version or '?'}",
        f"  device       {status.device_busy:.0%} busy, up to {status.max_batch_size} "
        f"requests per forward",
    ]
    if status.forward_ms:
        table = ", ".join(f"{n}: {ms:.1f}" for n, ms in sorted(status.forward_ms.items()))
        lines.append(f"  forward ms   by batch size {table}")
        lines.append(f"  capacity     about {status.capacity_robots} robots at its planning rate")
    return lines


def status(
    *,
    connect: str = typer.Option(
        "tcp/127.0.0.1:7447", "--connect", "-c", help="Zenoh endpoint of the server or router."
    ),
    zenoh_mode: str = typer.Option("peer", "--zenoh-mode", help="peer | client (via a router)"),
    model_id: str = typer.Option("", "--model-id", help="Only this model (default: any)."),
    revision: str = typer.Option("", "--revision", help="Only this revision (default: any)."),
    task_slug: str = typer.Option("", "--task-slug", help="Only this task slug (default: any)."),
    timeout_s: float = typer.Option(2.0, "--timeout", min=0.1, help="Seconds to wait."),
    tls_root_ca: str | None = typer.Option(None, "--tls-root-ca", help="CA certificate (PEM)."),
    tls_cert: str | None = typer.Option(None, "--tls-cert", help="Client certificate (PEM)."),
    tls_key: str | None = typer.Option(None, "--tls-key", help="Client private key (PEM)."),
    as_json: bool = typer.Option(False, "--json", help="Print the statuses as JSON."),
) -> None:
    """Print every policylink replica's capabilities and load behind an endpoint."""
    from policylink.client.links.zenoh_discovery import DiscoveryError, discover
    from policylink.net.zenoh_settings import ZenohSettings
    from policylink.wire.errors import KeyExprError
    from policylink.wire.keys import EVERY_STATUS, sanitize_segment, status_pattern

    try:
        for name, value in (("model_id", model_id), ("revision", revision), ("task", task_slug)):
            if value:
                sanitize_segment(value, name)
        settings = ZenohSettings(
            mode=zenoh_mode,
            connect=[connect],
            tls_root_ca=tls_root_ca,
            tls_cert=tls_cert,
            tls_key=tls_key,
            tls_mtls=bool(tls_cert and tls_key),
        )
        key = status_pattern(model_id, revision, task_slug)
        statuses, problems = discover(settings, key, timeout_s)
        if not statuses and key != EVERY_STATUS:
            others, _ = discover(settings, EVERY_STATUS, timeout_s)
        else:
            others = []
    except (ValueError, KeyExprError, DiscoveryError) as exc:
        typer.echo(f"policylink status: {exc}", err=True)
        raise typer.Exit(2) from None
    for problem in problems:
        typer.echo(f"warning: {problem}", err=True)
    if as_json:
        typer.echo(json.dumps([asdict(s) | {"load": s.load} for s in statuses], indent=2))
    else:
        for line in (line for s in statuses for line in [*describe(s), ""]):
            typer.echo(line)
    if not statuses:
        message = f"no policylink server answered at {key} via {connect} within {timeout_s:g} s"
        if others:
            served = ", ".join(
                sorted(
                    {
                        f"{s.capabilities.model_id}/{s.capabilities.revision}/"
                        f"{s.capabilities.task_slug}"
                        for s in others
                    }
                )
            )
            message += f"; this endpoint serves: {served}"
        typer.echo(message, err=True)
        raise typer.Exit(2)
