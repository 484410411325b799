"""Fixtures: an in-process expert server on a free loopback port, and the CLI as a process."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from policylink.demo.server_process import MODEL_ID, TASK_SLUG
from policylink.server.app import ServerApp
from policylink.server.manifest import Manifest
from tests.support.servers import loopback_manifest

CLI_TIMEOUT_S = 120
SMALL_CAMERA = {"name": "top", "height": 96, "width": 128}


def policylink(*args: str, timeout_s: float = CLI_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    """Run the `policylink` command in a fresh interpreter, as a user would."""
    return subprocess.run(
        [sys.executable, "-c", "from policylink.cli.main import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def expert_manifest(**fields: Any) -> Manifest:
    data: dict[str, Any] = {
        "policy": {"kind": "sim_expert", "params": {"cameras": [SMALL_CAMERA]}},
        "model_id": MODEL_ID,
        "task_slug": TASK_SLUG,
    }
    return loopback_manifest(data | fields)


@pytest.fixture
def expert_server() -> Iterator[ServerApp]:
    """The sim expert served in-process; its endpoint is `zenoh.listen[0]`."""
    app = ServerApp(expert_manifest()).start()
    try:
        yield app
    finally:
        app.stop()


def endpoint_of(app: ServerApp) -> str:
    return app.manifest.zenoh.listen[0]
