"""`policylink router`: a Zenoh router that robots and servers dial out to.

Production deployments put a router where both sides can reach it, so neither a robot network
nor a GPU cluster needs an open inbound port. zenoh-python runs a router inside a process, so
no separate `zenohd` install is needed; any `zenohd` works in its place.

With `--acl` (the `acl.json5` that `policylink certs` writes) the router enforces Zenoh's access
control on every connection: each robot, known by the common name of its certificate, may only
use the keys that name it, and only the server's certificate may answer and publish actions.
The ACL needs mutual TLS, so `--acl` turns `--tls-mtls` on and needs the three TLS files.
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
    acl: str | None = typer.Option(
        None,
        "--acl",
        help="Access-control list to enforce (acl.json5 from `policylink certs`); implies "
        "--tls-mtls.",
    ),
) -> None:
    """Run a Zenoh router until SIGTERM or Ctrl-C."""
    from zenoh import ZError

    from policylink.net.zenoh_session import open_zenoh_session
    from policylink.net.zenoh_settings import ZenohSettings

    if acl is not None:
        missing = [
            flag
            for flag, value in (
                ("--tls-root-ca", tls_root_ca),
                ("--tls-cert", tls_cert),
                ("--tls-key", tls_key),
            )
            if not value
        ]
        if missing:
            typer.echo(
                f"policylink router: --acl needs {', '.join(missing)}: the ACL matches the "
                "common names of the certificates robots present under mutual TLS",
                err=True,
            )
            raise typer.Exit(2)
    try:
        settings = ZenohSettings(
            mode="router",
            listen=list(listen),
            connect=list(connect or []),
            tls_root_ca=tls_root_ca,
            tls_cert=tls_cert,
            tls_key=tls_key,
            tls_mtls=tls_mtls or acl is not None,
            acl_file=acl,
        )
        session = open_zenoh_session(settings)
    except (ValueError, OSError, ZError) as exc:
        typer.echo(f"policylink router: cannot start: {exc}", err=True)
        raise typer.Exit(2) from None
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    enforcing = f", enforcing {acl}" if acl else ""
    typer.echo(f"routing on {', '.join(listen)}{enforcing}")
    sys.stdout.flush()
    try:
        while not stop.wait(0.5):
            pass
    finally:
        session.close()
    typer.echo("stopped")
