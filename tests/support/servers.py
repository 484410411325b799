"""Policy servers for tests, each on a free loopback port.

In the test's own process where it has torch, so a test can reach into the server (its core,
metrics, surfaces) while real robots talk to it over real Zenoh or WebSockets on loopback. On
the robot's interpreter (`make test-py310`, no torch) as `policylink serve` children instead,
which is all a robot ever sees of a server.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from policylink.net.ports import free_port
from tests.support.server_process import ServerProcess

if TYPE_CHECKING:
    from policylink.server.app import ServerApp
    from policylink.server.manifest import Manifest


def echo_policy(**params: Any) -> dict[str, Any]:
    """The manifest's `policy` for `tests.server.policies.EchoPolicy` (named, not imported: the
    test processes that only write manifests stay free of torch)."""
    return {"kind": "python", "factory": "tests.server.policies:build_echo", "params": params}


def loopback_manifest_data(data: dict[str, Any]) -> dict[str, Any]:
    """`data` with one warm-up forward and a Zenoh listen endpoint on a free loopback port,
    unless it sets them itself; the other Zenoh settings it gives are kept."""
    zenoh = {"listen": [f"tcp/127.0.0.1:{free_port()}"], **data.get("zenoh", {})}
    return {"warmup_inferences": 1, **data, "zenoh": zenoh}


def loopback_manifest(data: dict[str, Any]) -> Manifest:
    """`loopback_manifest_data(data)`, validated."""
    from policylink.server.manifest import Manifest

    return Manifest.from_data(loopback_manifest_data(data))


@contextmanager
def in_process_servers() -> Iterator[Callable[[dict[str, Any]], ServerApp]]:
    """`start(manifest_data)` → a started `ServerApp` (see `loopback_manifest`); every server
    started inside the block is stopped when it ends, even one whose start failed halfway."""
    from policylink.server.app import ServerApp

    apps: list[ServerApp] = []

    def start(data: dict[str, Any]) -> ServerApp:
        app = ServerApp(loopback_manifest(data))
        apps.append(app)
        return app.start()

    try:
        yield start
    finally:
        for app in apps:
            app.stop()


@contextmanager
def process_servers(workdir: Path) -> Iterator[Callable[[dict[str, Any]], ServerProcess]]:
    """`start(manifest_data)` → a `ServerProcess` that is serving (see `loopback_manifest_data`);
    its files go to `workdir`; every one started inside the block is stopped when it ends."""
    workdir.mkdir(parents=True, exist_ok=True)
    servers: list[ServerProcess] = []
    names = (f"server-{index}" for index in itertools.count())

    def start(data: dict[str, Any]) -> ServerProcess:
        server = ServerProcess(loopback_manifest_data(data), workdir, next(names))
        servers.append(server)
        return server.wait_serving()

    try:
        yield start
    finally:
        for server in servers:
            server.stop()
