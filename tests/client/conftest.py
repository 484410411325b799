"""Fixtures: in-process servers on free loopback ports, and engines that are always stopped."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from policylink.client import ClientConfig, RemoteEngine, RobotLayout, SyncEngine
from policylink.server import serving_modes
from policylink.server.app import ServerApp
from tests.support.servers import in_process_servers

TRACE = "tests.client.policies:build_trace"
ECHO = "tests.server.policies:build_echo"


def python_policy(factory: str, **params: Any) -> dict[str, Any]:
    return {"kind": "python", "factory": factory, "params": params}


def endpoint_of(app: ServerApp) -> str:
    return app.manifest.zenoh.listen[0]


@pytest.fixture
def shared_test_policies(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests vouch for their policies: the chunk call reads nothing but its arguments."""
    for family in ("tests.trace", "tests.echo"):
        monkeypatch.setitem(serving_modes.VERIFIED_FAMILIES, family, serving_modes.SHARED)


@pytest.fixture
def start_server() -> Iterator[Callable[..., ServerApp]]:
    """`start_server(**manifest_fields)` → a started in-process server on a free port."""
    with in_process_servers() as start:
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
