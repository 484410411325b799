"""Fixtures: a real policylink server with its OpenPI surface on a free port, and stock clients.

On the robot's interpreter (`make test-py310`: Python 3.10, no torch) the server is a
`policylink serve` child, and the modules that test the server itself are skipped whole.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from openpi_client.websocket_client_policy import WebsocketClientPolicy

from policylink.server import serving_modes
from tests.support.server_process import ServerProcess, hosts_servers
from tests.support.servers import in_process_servers, process_servers

if TYPE_CHECKING:
    from policylink.server.app import ServerApp

IMAGE_SIZE = 8
# `tests.openpi.policies.FAMILY`, spelled out: that module imports torch.
PROBE_FAMILY = "tests.openpi.probe"

# Modules that test policylink's OpenPI surface from inside the server's process, or run
# `policylink serve` with this interpreter: server side, so not on the robot's interpreter.
SERVER_SIDE = {
    "test_openpi_server.py": "reaches into the in-process server and its torch probe policy",
    "test_mixed_transports.py": "reaches into the in-process server's sessions",
    "test_openpi_serve_process.py": "runs `policylink serve` on this interpreter",
    "test_openpi_security.py": "reaches into the in-process server's pipeline and metrics",
}


class ServerSideModule(pytest.Module):
    """A `SERVER_SIDE` module on an interpreter without torch: skipped, never imported."""

    def collect(self) -> list[Any]:
        pytest.skip(
            f"{self.path.name} is server side ({SERVER_SIDE[self.path.name]}), and this "
            "interpreter has no torch",
            allow_module_level=True,
        )


def pytest_pycollect_makemodule(module_path: Path, parent: pytest.Collector) -> Any:
    if module_path.name in SERVER_SIDE and not hosts_servers():
        return ServerSideModule.from_parent(parent, path=module_path)
    return None


def probe_policy(**params: Any) -> dict[str, Any]:
    params.setdefault("image_size", IMAGE_SIZE)
    return {"kind": "python", "factory": "tests.openpi.policies:build_probe", "params": params}


def libero_obs(state: list[float], front: int = 10, wrist: int = 20, **extra: Any) -> dict:
    """A LIBERO-layout observation whose images have the given constant pixel values."""
    return {
        "observation/state": np.asarray(state, dtype=np.float64),
        "observation/image": np.full((IMAGE_SIZE, IMAGE_SIZE, 3), front, np.uint8),
        "observation/wrist_image": np.full((IMAGE_SIZE, IMAGE_SIZE, 3), wrist, np.uint8),
        "prompt": "pick up the cup",
        **extra,
    }


@pytest.fixture(autouse=True)
def verified_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    """The probe's chunk call reads nothing but its arguments, so it may be shared."""
    monkeypatch.setitem(serving_modes.VERIFIED_FAMILIES, PROBE_FAMILY, serving_modes.SHARED)


class Served:
    """A started server and its OpenPI surface."""

    def __init__(self, app: ServerApp) -> None:
        assert app.openpi is not None, "the manifest enables the OpenPI surface"
        self.app, self.openpi = app, app.openpi

    def url(self, path: str = "/") -> str:
        return f"ws://127.0.0.1:{self.openpi.port}{path}"

    @property
    def active_sessions(self) -> int:
        return self.app.core.status().active_sessions


class ServedProcess:
    """A `policylink serve` child and its OpenPI surface: reachable over the network only."""

    def __init__(self, server: ServerProcess) -> None:
        self.port = server.openpi_port

    def url(self, path: str = "/") -> str:
        return f"ws://127.0.0.1:{self.port}{path}"


@pytest.fixture
def serve(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Callable[..., Served | ServedProcess]]:
    """`serve(openpi={...}, policy_params={...}, api_key=..., **manifest_fields)` → a server
    started from its manifest, with the OpenPI surface on a free port: in this process, or a
    `policylink serve` child where this interpreter has no torch."""

    def start(
        openpi: dict[str, Any] | None = None,
        policy_params: dict[str, Any] | None = None,
        api_key: str | None = None,
        **fields: Any,
    ) -> Served:
        settings = {"enabled": True, "port": 0, "key_map": "libero", **(openpi or {})}
        if api_key is not None:
            monkeypatch.setenv("POLICYLINK_TEST_OPENPI_KEY", api_key)
            settings["api_key_env"] = "POLICYLINK_TEST_OPENPI_KEY"
        policy = probe_policy(**(policy_params or {}))
        started = start_server({"policy": policy, "openpi": settings, **fields})
        return ServedProcess(started) if isinstance(started, ServerProcess) else Served(started)

    servers = in_process_servers() if hosts_servers() else process_servers(tmp_path / "servers")
    with servers as start_server:
        yield start


@pytest.fixture
def client() -> Iterator[Callable[..., WebsocketClientPolicy]]:
    """`client(url, api_key=None)` → a stock openpi-client policy, closed after the test."""
    clients: list[WebsocketClientPolicy] = []

    def make(url: str, api_key: str | None = None) -> WebsocketClientPolicy:
        policy = WebsocketClientPolicy(url, api_key=api_key)
        clients.append(policy)
        return policy

    yield make
    for policy in clients:
        policy._ws.close()
