"""Fixtures: a real policylink server with its OpenPI surface on a free port, and stock clients."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from openpi_client.websocket_client_policy import WebsocketClientPolicy

from policylink.server import serving_modes
from policylink.server.app import ServerApp
from tests.openpi.policies import FAMILY
from tests.support.servers import in_process_servers

IMAGE_SIZE = 8


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
    monkeypatch.setitem(serving_modes.VERIFIED_FAMILIES, FAMILY, serving_modes.SHARED)


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


@pytest.fixture
def serve(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Served]]:
    """`serve(openpi={...}, policy_params={...}, api_key=..., **manifest_fields)` → a server
    started from its manifest, with the OpenPI surface on a free port."""

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
        return Served(start_app({"policy": policy, "openpi": settings, **fields}))

    with in_process_servers() as start_app:
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
