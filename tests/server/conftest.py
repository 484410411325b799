"""Fixtures: in-process servers on free loopback ports and bare robots wired to them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from policylink.server import serving_modes
from policylink.server.app import ServerApp
from tests.server.policies import ECHO_FAMILY
from tests.server.robot import Robot
from tests.support.servers import in_process_servers


@pytest.fixture
def verified_echo(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests vouch for their echo policy: its chunk call reads nothing but its arguments."""
    monkeypatch.setitem(serving_modes.VERIFIED_FAMILIES, ECHO_FAMILY, serving_modes.SHARED)


@pytest.fixture
def start_server() -> Iterator[Callable[..., ServerApp]]:
    """`start_server(**manifest_fields)` → a started ServerApp listening on a free port."""
    with in_process_servers() as start:
        yield lambda **fields: start(fields)


@pytest.fixture
def connect() -> Iterator[Callable[..., Robot]]:
    """`connect(app, client_id)` → a bare robot peered with the app's listen endpoint."""
    robots: list[Robot] = []

    def make(app: ServerApp, client_id: str, **options: Any) -> Robot:
        endpoint = app.manifest.zenoh.listen[0]
        options.setdefault("replica", app.core.replica_id)
        robot = Robot(endpoint, app.manifest.namespace(), client_id, **options)
        robots.append(robot)
        return robot

    yield make
    for robot in robots:
        robot.close()
