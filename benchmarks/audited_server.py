"""A `policylink serve` child for load tests, whose audit log says what the device did.

The server runs in its own process, so the robots' CPU never shows up as server time and the
two do not share an interpreter lock, as on two machines. It logs at INFO: one audit line per
request, naming the forward that served it (`batch_size`, `inference_ms`). Reading the log
between two marks gives, for exactly that window, every forward's batch size (a forward of N
rows appears as N lines) and the time the device spent in forwards: exact numbers, where a
sampled gauge would only approximate them. The child also registers the families of
`VERIFIED` as safe to share, which is how a benchmark's own policy is served to many robots.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from benchmarks.proc_stats import cpu_seconds
from policylink.net.processes import terminate

REPO = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0
AUDIT_MARK = " policylink.audit "
_SERVE = """
import json, sys
from policylink.server import serving_modes
serving_modes.VERIFIED_FAMILIES.update(json.loads(sys.argv.pop(1)))
from policylink.cli.main import main
main()
"""


@dataclass(frozen=True)
class Mark:
    """A point in the server's life: its log's length, its CPU seconds and the time."""

    log_bytes: int
    cpu_s: float
    at_s: float


class AuditedServer:
    """Owns one `policylink serve` child; a context manager that starts and drains it."""

    def __init__(
        self, manifest: dict[str, Any], workdir: Path, name: str, verified: dict[str, str]
    ) -> None:
        self.manifest = manifest
        self.endpoint: str = manifest["zenoh"]["listen"][0]
        self._manifest_path = workdir / f"{name}.yaml"
        self._manifest_path.write_text(yaml.safe_dump(manifest))
        self._stdout = workdir / f"{name}.out"
        self.log = workdir / f"{name}.log"
        self._verified = json.dumps(verified)
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> AuditedServer:
        command = [sys.executable, "-c", _SERVE, self._verified, "serve"]
        command += ["--manifest", str(self._manifest_path), "--log-level", "INFO"]
        with self._stdout.open("w") as out, self.log.open("w") as log:
            self._process = process = subprocess.Popen(
                command,
                cwd=REPO,
                env={**os.environ, "PYTHONPATH": str(REPO)},
                stdout=out,
                stderr=log,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while "serving" not in self._stdout.read_text():
            if process.poll() is not None or time.monotonic() > deadline:
                tail = "\n".join(self.log.read_text().splitlines()[-15:])
                self.__exit__()
                raise RuntimeError(f"the benchmark server did not start:\n{tail}")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        process, self._process = self._process, None
        if process is not None:
            terminate(process, STOP_TIMEOUT_S)

    @property
    def openpi_url(self) -> str:
        """The OpenPI surface's address, as the start-up line reports it (port 0 in the
        manifest lets the server pick one)."""
        found = re.search(r"openpi (ws://[^:/]+:\d+)/", self._stdout.read_text())
        if found is None:
            raise RuntimeError("the server reports no OpenPI surface; enable openpi")
        return found.group(1)

    def mark(self) -> Mark:
        return Mark(self.log.stat().st_size, self._cpu_s(), time.monotonic())

    def since(self, mark: Mark) -> dict[str, Any]:
        """The forwards served since `mark`: batch-size histogram, device busy fraction,
        mean batch size, the server process's CPU (cores), and the median request's wait in
        its mailbox and server time outside the forward (the audit's `overhead_ms`)."""
        elapsed_s = time.monotonic() - mark.at_s
        cpu_s = self._cpu_s() - mark.cpu_s
        with self.log.open("rb") as log:
            log.seek(mark.log_bytes)
            text = log.read().decode(errors="replace")
        rows: Counter[int] = Counter()
        forward_ms = 0.0
        queue_wait_ms, overhead_ms = [], []
        for line in text.splitlines():
            _, sep, body = line.partition(AUDIT_MARK)
            if not sep:
                continue
            try:
                audit = json.loads(body)
            except json.JSONDecodeError:  # a line still being written as the window closed
                continue
            if audit["outcome"] == "ok":
                size = audit["batch_size"]
                rows[size] += 1
                forward_ms += audit["inference_ms"] / size
                queue_wait_ms.append(audit["queue_wait_ms"])
                overhead_ms.append(audit["overhead_ms"])
        forwards = {size: count // size for size, count in sorted(rows.items())}
        total = sum(forwards.values())
        return {
            "forwards_by_batch_size": forwards,
            "mean_batch_size": sum(s * n for s, n in forwards.items()) / total if total else 0.0,
            # A forward that began before the mark but answered after it counts whole.
            "device_busy": min(1.0, forward_ms / (elapsed_s * 1e3)),
            "server_cpu_cores": cpu_s / elapsed_s,
            "queue_wait_p50_ms": float(np.median(queue_wait_ms)) if queue_wait_ms else 0.0,
            "overhead_p50_ms": float(np.median(overhead_ms)) if overhead_ms else 0.0,
        }

    def _cpu_s(self) -> float:
        return 0.0 if self._process is None else cpu_seconds(self._process.pid)
