"""`policylink certs`: a fleet's CA, server and robot certificates, and the ACL that binds them.

An operator's tool, run where the CA key is kept (not on a robot, and not on a GPU server):

    policylink certs --out fleet-tls --server-name gpu-box --robot arm-1 --robot arm-2

writes `ca.pem`/`ca.key`, `server.pem`/`server.key` (common name `policylink-server`, the given
names plus localhost and 127.0.0.1 as subject alternative names), `robots/<id>.pem`/`<id>.key`
(common name = the robot's client id), with `--router-name` also `router.pem`/`router.key`, and
`acl.json5`: the access-control list for every robot with a certificate in the directory.
Running it again with new robots signs them with the same CA and rewrites the ACL; files that
exist are kept, `--force` replaces everything (a new CA: every deployed certificate stops being
accepted).
"""

from __future__ import annotations

from pathlib import Path

import typer

ACL_FILE = "acl.json5"


def read_robots_file(path: Path) -> list[str]:
    """Robot ids, one a line; blank lines and `#` comments are skipped."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise typer.BadParameter(f"cannot read {path}: {exc.strerror}") from None
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return [line for line in lines if line]


def certs(
    *,
    out: Path = typer.Option(..., "--out", "-o", help="Directory for the certificates and ACL."),
    robot: list[str] | None = typer.Option(
        None,
        "--robot",
        "-r",
        help="A robot's client id (its certificate's common name); repeatable.",
    ),
    robots_file: Path | None = typer.Option(
        None, "--robots-file", help="Robot client ids, one a line ('#' starts a comment)."
    ),
    server_name: list[str] | None = typer.Option(
        None,
        "--server-name",
        help="A DNS name or IP address robots dial the server by (peer mode); repeatable. "
        "localhost and 127.0.0.1 are always included.",
    ),
    router_name: list[str] | None = typer.Option(
        None,
        "--router-name",
        help="A name robots and servers dial the router by; repeatable. Given, a router "
        "certificate is issued too.",
    ),
    model_id: str = typer.Option("", "--model-id", help="Confine the ACL to this model."),
    revision: str = typer.Option("", "--revision", help="Confine the ACL to this revision."),
    task_slug: str = typer.Option("", "--task-slug", help="Confine the ACL to this task slug."),
    days: int = typer.Option(825, "--days", min=1, help="Validity of the leaf certificates."),
    force: bool = typer.Option(
        False, "--force", help="Replace every file, the CA included (invalidates deployed ones)."
    ),
) -> None:
    """Make the fleet's certificates (a CA, the server, one per robot) and its Zenoh ACL."""
    try:
        from policylink.net import certs as fleet
    except ImportError:
        typer.echo(
            "policylink certs: needs the cryptography package: pip install 'policylink[certs]'",
            err=True,
        )
        raise typer.Exit(2) from None
    from policylink.net.acl import acl_document, namespace_pattern, write_acl
    from policylink.wire.errors import KeyExprError

    robots = [*(robot or []), *(read_robots_file(robots_file) if robots_file else [])]
    try:
        issued = fleet.issue_fleet(
            out,
            robots=robots,
            server_names=server_name,
            router_names=router_name,
            force=force,
            days=days,
        )
        servers = [fleet.SERVER_COMMON_NAME]
        if (out / fleet.ROUTER_CERT).exists():
            servers.append(fleet.common_name(out / fleet.ROUTER_CERT))
        namespace = namespace_pattern(model_id, revision, task_slug)
        document = acl_document(issued.robots, server_common_names=servers, namespace=namespace)
    except (fleet.CertError, KeyExprError, ValueError) as exc:
        typer.echo(f"policylink certs: {exc}", err=True)
        raise typer.Exit(2) from None
    except OSError as exc:
        typer.echo(f"policylink certs: cannot write {exc.filename}: {exc.strerror}", err=True)
        raise typer.Exit(2) from None
    acl_path = out / ACL_FILE
    write_acl(acl_path, document)
    for path in issued.written:
        typer.echo(f"wrote {path}")
    for path in issued.kept:
        typer.echo(f"kept  {path} (exists; --force replaces it)")
    typer.echo(f"wrote {acl_path}: {len(issued.robots)} robots ({', '.join(issued.robots)})")
    typer.echo(
        "\nKeep ca.key offline. Every process gets ca.pem; the server server.pem/.key; each robot "
        "robots/<id>.pem/.key; the process robots connect to (a router, or the server in peer "
        f"mode) enforces {ACL_FILE}."
    )
