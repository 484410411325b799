"""How one process attaches to the Zenoh network, as plain data.

Kept free of zenoh itself, so a manifest or a client config can be validated on a machine (or in
a process) that never opens a session.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MODES = ("peer", "client", "router")


@dataclass
class ZenohSettings:
    """How one process attaches to the Zenoh network.

    `lease_ms` is announced to peers: a hung (not crashed) process is noticed after roughly this
    long, so it is kept well below Zenoh's 10 s default. `json5` maps config paths to JSON values
    for anything not modelled here (an escape hatch, applied last).
    """

    mode: str = "peer"
    connect: list[str] = field(default_factory=list)
    listen: list[str] = field(default_factory=list)
    lease_ms: int = 1000
    tls_root_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_mtls: bool = False
    json5: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"zenoh.mode must be one of {MODES}, got {self.mode!r}")
        if self.lease_ms < 100:
            raise ValueError(f"zenoh.lease_ms must be at least 100, got {self.lease_ms}")
