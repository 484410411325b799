"""How one process attaches to the Zenoh network, as plain data.

Kept free of zenoh itself, so a manifest or a client config can be validated on a machine (or in
a process) that never opens a session.

TLS takes three PEM files: the CA certificate that verifies peers, and this process's own
certificate and key. A certificate and key always come with the CA and with each other (mutual
TLS, and the identity an access-control list keys on, need all three); the CA alone is
server-authenticated TLS: the process verifies whom it dials and presents no certificate, so an
mTLS listener refuses it and an ACL grants it nothing. The shapes are checked when settings are
made; whether the files exist is checked when a session opens (`check_files`), on the machine
that reads them — a manifest naming `/etc/policylink/tls/...` validates on a laptop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MODES = ("peer", "client", "router")


def tls_problem(
    root_ca: str | None, cert: str | None, key: str | None, *, prefix: str = ""
) -> str | None:
    """What is wrong with a set of TLS paths (`prefix` names their block), or None.

    Shared by the manifest, the client config and the settings, so each names the missing file
    the same way.
    """
    given = {"tls_root_ca": root_ca, "tls_cert": cert, "tls_key": key}
    if not (cert or key):
        return None
    missing = [name for name, value in given.items() if not value]
    if not missing:
        return None
    what = {
        "tls_root_ca": "the CA certificate (PEM) that signed the peers' certificates",
        "tls_cert": "this process's certificate (PEM), signed by that CA",
        "tls_key": "the private key (PEM) of that certificate",
    }
    names = " and ".join(f"{prefix}{name}" for name in missing)
    fixes = "; ".join(f"{prefix}{name} to {what[name]}" for name in missing)
    return (
        f"{names} {'is' if len(missing) == 1 else 'are'} missing: tls_root_ca, tls_cert and "
        "tls_key must be given together (tls_cert and tls_key go together, and tls_root_ca "
        "verifies the peers), or tls_root_ca alone for TLS without a client certificate. "
        f"Set {fixes}"
    )


def missing_files(paths: dict[str, str | None]) -> list[str]:
    """`name (path)` for each given path that is not a file (checked as Zenoh will read it)."""
    return [f"{name} ({path})" for name, path in paths.items() if path and not Path(path).is_file()]


@dataclass
class ZenohSettings:
    """How one process attaches to the Zenoh network.

    `lease_ms` is announced to peers: a hung (not crashed) process is noticed after roughly this
    long, so it is kept well below Zenoh's 10 s default. `shared_memory` lets processes of one
    host exchange large messages through Zenoh's shared memory (both sides must turn it on; see
    `zenoh_session.ShmSender` for what it costs a receiver). `acl_file` is a Zenoh configuration
    holding an `access_control` block (`policylink certs` writes one), enforced on connections
    this process accepts, so it needs mutual TLS and a mode that accepts them. `json5` maps config
    paths to JSON values for anything not modelled here (an escape hatch, applied last).
    """

    mode: str = "peer"
    connect: list[str] = field(default_factory=list)
    listen: list[str] = field(default_factory=list)
    lease_ms: int = 1000
    tls_root_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_mtls: bool = False
    acl_file: str | None = None
    shared_memory: bool = False
    json5: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"zenoh.mode must be one of {MODES}, got {self.mode!r}")
        if self.lease_ms < 100:
            raise ValueError(f"zenoh.lease_ms must be at least 100, got {self.lease_ms}")
        problem = tls_problem(self.tls_root_ca, self.tls_cert, self.tls_key, prefix="zenoh.")
        if problem:
            raise ValueError(problem)
        if self.tls_mtls and not self.tls_cert:
            raise ValueError(
                "zenoh.tls_mtls needs zenoh.tls_root_ca, zenoh.tls_cert and zenoh.tls_key: "
                "mutual TLS verifies peers with the CA and presents this process's certificate"
            )
        if self.acl_file:
            if self.mode == "client":
                raise ValueError(
                    "zenoh.acl_file is enforced by the process robots connect to (a router, or "
                    "a server in peer mode); in client mode the router enforces it: give the "
                    "file to `policylink router --acl` instead"
                )
            if not self.tls_mtls:
                raise ValueError(
                    "zenoh.acl_file needs zenoh.tls_mtls: true (with tls_root_ca, tls_cert and "
                    "tls_key): the ACL matches the common names of the certificates that only "
                    "mutual TLS makes peers present"
                )

    def check_files(self) -> None:
        """Every file these settings name exists; else `ValueError` naming each missing one."""
        missing = missing_files(
            {
                "zenoh.tls_root_ca": self.tls_root_ca,
                "zenoh.tls_cert": self.tls_cert,
                "zenoh.tls_key": self.tls_key,
                "zenoh.acl_file": self.acl_file,
            }
        )
        if missing:
            raise ValueError(f"no such file: {', '.join(missing)}")
