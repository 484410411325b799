"""Policy servers started in the test's own process, each on a free loopback port.

In-process so a test can reach into the server (its core, metrics, surfaces) while real
robots talk to it over real Zenoh or WebSockets on loopback.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from policylink.net.ports import free_port
from policylink.server.app import ServerApp
from policylink.server.manifest import Manifest


def loopback_manifest(data: dict[str, Any]) -> Manifest:
    """`data` with one warm-up forward and a Zenoh listen endpoint on a free loopback port,
    unless it sets them itself; the other Zenoh settings it gives are kept."""
    zenoh = {"listen": [f"tcp/127.0.0.1:{free_port()}"], **data.get("zenoh", {})}
    return Manifest.from_data({"warmup_inferences": 1, **data, "zenoh": zenoh})


@contextmanager
def in_process_servers() -> Iterator[Callable[[dict[str, Any]], ServerApp]]:
    """`start(manifest_data)` → a started `ServerApp` (see `loopback_manifest`); every server
    started inside the block is stopped when it ends, even one whose start failed halfway."""
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
