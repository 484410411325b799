"""`policylink router` as a real child process: the Zenoh router robots and replicas dial out to.

A router in its own process is what a deployment runs, and the only way a test sees what a
robot sees when replicas come and go: the router, not the robot's process, notices a replica's
link close and withdraws its presence. Routers join each other into a mesh with `connect`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from policylink.net.ports import free_port
from policylink.net.processes import terminate
from tests.support.server_process import REPO

READY_LINE = "routing on"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0


class RouterProcess:
    """A router listening on a free loopback port; `wait_routing()` blocks until its ready
    line. The router needs zenoh only, so it runs on this interpreter, whichever it is."""

    def __init__(
        self,
        workdir: Path,
        name: str = "router",
        connect: Sequence[str] = (),
        *,
        scheme: str = "tcp",
        options: Sequence[str] = (),
        endpoint: str | None = None,
    ) -> None:
        """`scheme` `tls` with `options` (`--tls-*`, `--acl`) runs a router with mTLS;
        `endpoint` (a killed router's) restarts one where its clients keep dialling."""
        self.endpoint = endpoint or f"{scheme}/127.0.0.1:{free_port()}"
        self.stdout_path = workdir / f"{name}.out"
        self.stderr_path = workdir / f"{name}.err"
        command = [sys.executable, "-c", "from policylink.cli.main import main; main()"]
        command += ["router", "--listen", self.endpoint, *options]
        for endpoint in connect:
            command += ["--connect", endpoint]
        with self.stdout_path.open("w") as out, self.stderr_path.open("w") as err:
            self.process = subprocess.Popen(
                command,
                cwd=REPO,
                env={**os.environ, "PYTHONPATH": str(REPO)},
                stdout=out,
                stderr=err,
                text=True,
            )

    def wait_routing(self, timeout_s: float = START_TIMEOUT_S) -> RouterProcess:
        deadline = time.monotonic() + timeout_s
        while READY_LINE not in self.stdout_path.read_text():
            if self.process.poll() is not None:
                raise AssertionError(
                    f"router exited {self.process.returncode}: {self.stderr_path.read_text()}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"router not routing within {timeout_s} s")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        """SIGTERM (the router closes its session), SIGKILL if it lingers."""
        terminate(self.process, STOP_TIMEOUT_S, kill_timeout_s=STOP_TIMEOUT_S)
