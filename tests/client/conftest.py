"""Fixtures: servers on free loopback ports, and engines that are always stopped."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from policylink.client import ClientConfig, RemoteEngine, RobotLayout, SyncEngine
from policylink.server import serving_modes
from tests.support.server_process import ServerProcess, hosts_servers
from tests.support.servers import in_process_servers, process_servers

if TYPE_CHECKING:
    from policylink.server.app import ServerApp

TRACE = "tests.client.policies:build_trace"
ECHO = "tests.server.policies:build_echo"


def python_policy(factory: str, **params: Any) -> dict[str, Any]:
    return {"kind": "python", "factory": factory, "params": params}


def endpoint_of(server: ServerApp | ServerProcess) -> str:
    if isinstance(server, ServerProcess):
        return server.endpoint
    return server.manifest.zenoh.listen[0]


@pytest.fixture
def shared_test_policies(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests vouch for their policies: the chunk call reads nothing but its arguments."""
    for family in ("tests.trace", "tests.echo"):
        monkeypatch.setitem(serving_modes.VERIFIED_FAMILIES, family, serving_modes.SHARED)


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., ServerApp | ServerProcess]]:
    """`start_server(**manifest_fields)` → a started server on a free port: in this process, or
    a `policylink serve` child where this interpreter has no torch (`make test-py310`); a test
    reaches it through `endpoint_of` alone."""
    servers = in_process_servers() if hosts_servers() else process_servers(tmp_path / "servers")
    with servers as start:
        yield lambda **fields: start(fields)


@pytest.fixture
def start_engine() -> Iterator[Callable[..., RemoteEngine | SyncEngine]]:
    """`start_engine(endpoint, layout, engine=RemoteEngine, **config)` → a started engine."""
    engines: list[RemoteEngine | SyncEngine] = []

    def start(
        endpoint: str,
        layout: RobotLayout,
        engine: type[RemoteEngine | SyncEngine] = RemoteEngine,
        on_shutdown: Callable[[str], None] | None = None,
        **config: Any,
    ) -> RemoteEngine | SyncEngine:
        config.setdefault("fps", 100.0)
        config.setdefault("connect_timeout_s", 10.0)
        made = engine(ClientConfig(endpoint=endpoint, **config), layout, on_shutdown=on_shutdown)
        engines.append(made)
        made.start()
        return made

    yield start
    for engine in engines:
        engine.stop()
