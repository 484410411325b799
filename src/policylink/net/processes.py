"""Stopping a child process the way every policylink child expects it.

SIGTERM first: a server drains and answers what it took, a proxy reports its counters, a robot
closes its session. SIGKILL only for a child that lingers past its allowance.
"""

from __future__ import annotations

import signal
import subprocess
from typing import Any


def terminate(
    process: subprocess.Popen[Any], timeout_s: float, kill_timeout_s: float | None = None
) -> int | None:
    """SIGTERM `process` if it still runs and wait up to `timeout_s` for it; past that, SIGKILL
    it and wait up to `kill_timeout_s` (None: until it is gone). Returns its exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(kill_timeout_s)
    return process.returncode
