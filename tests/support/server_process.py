"""`policylink serve` as a real child process: for tests that kill the server, and for the robot's
interpreter, which cannot host one.

The robot's environment (`make test-py310`: Python 3.10, `policylink[client,openpi]`, no torch)
is a robot's: the server lives on another machine. Tests there start it with the interpreter
that `POLICYLINK_SERVER_PYTHON` names (the main venv's), and talk to it over loopback.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from policylink.net.processes import terminate
from policylink.server import serving_modes

REPO = Path(__file__).resolve().parents[2]
SERVER_PYTHON_ENV = "POLICYLINK_SERVER_PYTHON"

# The child verifies the families this process verifies when it starts, so a test's
# monkeypatched `VERIFIED_FAMILIES` holds in its server whichever process that server is in.
_SERVE = """
import json, sys
from policylink.server import serving_modes
serving_modes.VERIFIED_FAMILIES.update(json.loads(sys.argv.pop(1)))
from policylink.cli.main import main
main()
"""


def hosts_servers() -> bool:
    """Whether this interpreter can run a policy server in-process (it has torch)."""
    return importlib.util.find_spec("torch") is not None


def server_python() -> str:
    """The interpreter for server children: this one where it has torch, else the one that
    `POLICYLINK_SERVER_PYTHON` names; without either the test skips (fails under CI)."""
    if hosts_servers():
        return sys.executable
    python = os.environ.get(SERVER_PYTHON_ENV)
    if python:
        return python
    why = (
        f"needs a policy server, and this interpreter has no torch: set {SERVER_PYTHON_ENV} "
        "to a Python with policylink[server] (make test-py310 sets it to .venv/bin/python)"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(why)
    pytest.skip(why)


class ServerProcess:
    """Started from a manifest dict; `wait_serving()` blocks until its "serving" line."""

    def __init__(
        self,
        manifest: dict[str, Any],
        workdir: Path,
        name: str = "server",
        *,
        log_level: str = "WARNING",
    ) -> None:
        """`log_level` INFO writes the server's audit lines to its stderr file."""
        self.manifest = manifest
        path = workdir / f"{name}.yaml"
        path.write_text(yaml.safe_dump(manifest))
        self.stdout_path = workdir / f"{name}.out"
        self.stderr_path = workdir / f"{name}.err"
        verified = json.dumps(serving_modes.VERIFIED_FAMILIES)
        command = [server_python(), "-c", _SERVE, verified, "serve", "--manifest", str(path)]
        with self.stdout_path.open("w") as out, self.stderr_path.open("w") as err:
            self.process = subprocess.Popen(
                [*command, "--log-level", log_level],
                cwd=REPO,
                env={**os.environ, "PYTHONPATH": str(REPO)},
                stdout=out,
                stderr=err,
                text=True,
            )

    @property
    def endpoint(self) -> str:
        """The Zenoh endpoint it listens on (the manifest's first)."""
        return self.manifest["zenoh"]["listen"][0]

    @property
    def openpi_port(self) -> int:
        """The OpenPI surface's port, as its start-up line reports it (the manifest may ask for
        port 0)."""
        match = re.search(r"openpi ws://[^:/]+:(\d+)/", self.stdout_path.read_text())
        assert match, f"no OpenPI surface in: {self.stdout_path.read_text()}"
        return int(match.group(1))

    def wait_serving(self, timeout_s: float = 90.0) -> ServerProcess:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if "serving" in self.stdout_path.read_text():
                return self
            if self.process.poll() is not None:
                raise AssertionError(
                    f"server exited {self.process.returncode}: {self.stderr_path.read_text()}"
                )
            time.sleep(0.05)
        raise AssertionError(f"server not serving within {timeout_s} s")

    def stop(self) -> None:
        """SIGTERM: the server drains and says goodbye; SIGKILL if it has not within 30 s."""
        terminate(self.process, 30, kill_timeout_s=30)

    def kill(self) -> None:
        """SIGKILL: no drain, no goodbye; the robot finds out from the network alone."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)
