"""`policylink router`: a Zenoh router that robots and servers dial out to.

Production deployments put a router where both sides can reach it, so neither a robot network
nor a GPU cluster needs an open inbound port. zenoh-python runs a router inside a process, so
no separate `zenohd` install is needed; any `zenohd` works in its place.
"""

from __future__ import annotations

import signal
import sys
import threading

import typer


def router(
    *,
    listen: list[str] = typer.Option(
        ["tcp/0.0.0.0:7447"], "--listen", "-l", help="Endpoint to listen on; repeatable."
    ),
    connect: list[str] | None = typer.Option(
        None, "--connect", help="Another router to join; repeatable."
    ),
    tls_root_ca: str | None = typer.Option(None, "--tls-root-ca", help="CA certificate (PEM)."),
    tls_cert: str | None = typer.Option(None, "--tls-cert", help="Router certificate (PEM)."),
    tls_key: str | None = typer.Option(None, "--tls-key", help="Router private key (PEM)."),
    tls_mtls: bool = typer.Option(False, "--tls-mtls", help="Require client certificates."),
) -> None:
    """Run a Zenoh router until SIGTERM or Ctrl-C."""
    from zenoh import ZError

    from policylink.net.zenoh_session import open_zenoh_session
    from policylink.net.zenoh_settings import ZenohSettings

    try:
        settings = ZenohSettings(
            mode="router",
            listen=list(listen),
            connect=list(connect or []),
            tls_root_ca=tls_root_ca,
            tls_cert=tls_cert,
            tls_key=tls_key,
            tls_mtls=tls_mtls,
        )
        session = open_zenoh_session(settings)
    except (ValueError, ZError) as exc:
        typer.echo(f"policylink router: cannot start: {exc}", err=True)
        raise typer.Exit(2) from None
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    typer.echo(f"routing on {', '.join(listen)}")
    sys.stdout.flush()
    try:
        while not stop.wait(0.5):
            pass
    finally:
        session.close()
    typer.echo("stopped")
