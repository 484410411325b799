"""`policylink serve` as a real child process, for tests that kill it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
POLICYLINK = [sys.executable, "-c", "from policylink.cli.main import main; main()"]


class ServerProcess:
    """Started from a manifest dict; `wait_serving()` blocks until its "serving" line."""

    def __init__(self, manifest: dict[str, Any], workdir: Path, name: str = "server") -> None:
        path = workdir / f"{name}.yaml"
        path.write_text(yaml.safe_dump(manifest))
        self.stdout_path = workdir / f"{name}.out"
        self.stderr_path = workdir / f"{name}.err"
        with self.stdout_path.open("w") as out, self.stderr_path.open("w") as err:
            self.process = subprocess.Popen(
                [*POLICYLINK, "serve", "--manifest", str(path), "--log-level", "WARNING"],
                cwd=REPO,
                env={**os.environ, "PYTHONPATH": str(REPO)},
                stdout=out,
                stderr=err,
                text=True,
            )

    def wait_serving(self, timeout_s: float = 90.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if "serving" in self.stdout_path.read_text():
                return
            if self.process.poll() is not None:
                raise AssertionError(
                    f"server exited {self.process.returncode}: {self.stderr_path.read_text()}"
                )
            time.sleep(0.05)
        raise AssertionError(f"server not serving within {timeout_s} s")

    def kill(self) -> None:
        """SIGKILL: no drain, no goodbye; the robot finds out from the network alone."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)
