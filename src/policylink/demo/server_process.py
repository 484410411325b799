"""The demo's policy server: a real `policylink serve` process, started and drained like one.

A separate process, not a thread, so the server's forward passes and the robots' control loops
do not share an interpreter lock, exactly as they would not on two machines. Its log goes to a
file in the run folder; its stdout is read only for the readiness line.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import yaml

from policylink.net.processes import terminate

READY_MARK = "serving "
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 15.0
_LAUNCH = "from policylink.cli.main import main; main()"


MODEL_ID = "sim-expert"
TASK_SLUG = "reach_track"


def demo_manifest(
    port: int,
    policy_size: str,
    cameras: list[dict[str, Any]],
    fps: float,
    robots: int,
    *,
    host: str = "127.0.0.1",
) -> dict[str, Any]:
    """The expert for `SimArm` behind a `host` endpoint (loopback, or the server's end of a real
    link), with room for every robot."""
    return {
        "policy": {
            "kind": "sim_expert",
            "preset": policy_size,
            "params": {"chunk_size": 30, "fps": fps, "cameras": cameras},
        },
        "model_id": MODEL_ID,
        "task_slug": TASK_SLUG,
        "max_sessions": robots,
        "warmup_inferences": 2,
        "rtc": {"enabled": True, "execution_horizon": 10},
        "zenoh": {"mode": "peer", "listen": [f"tcp/{host}:{port}"]},
    }


class ServerStartError(RuntimeError):
    """The server exited or stayed silent; the message quotes the end of its log."""


class ServerProcess:
    """Owns one `policylink serve` child: `start()` returns once it serves, `stop()` drains it.

    `command_prefix` goes before its command line: `ip netns exec <namespace>` puts it behind
    a real link (`policylink.net.real_link`).
    """

    def __init__(
        self, manifest: dict[str, Any], run_dir: Path, command_prefix: Sequence[str] = ()
    ) -> None:
        self.command_prefix = list(command_prefix)
        self.manifest_path = run_dir / "server_manifest.yaml"
        self.log_path = run_dir / "server.log"
        self.manifest_path.write_text(yaml.safe_dump(manifest, sort_keys=False))
        self.endpoint = manifest["zenoh"]["listen"][0]
        self.startup_line = ""
        self._ready = threading.Event()
        self._reader: threading.Thread | None = None
        self._process: subprocess.Popen[str] | None = None
        self._log: IO[str] | None = None

    def start(self, timeout_s: float = START_TIMEOUT_S) -> ServerProcess:
        self._log = self.log_path.open("w")
        command = [
            *self.command_prefix,
            *(sys.executable, "-c", _LAUNCH, "serve", "--manifest", str(self.manifest_path)),
        ]
        # This interpreter running policylink on a manifest this process wrote: nothing untrusted.
        self._process = process = subprocess.Popen(  # noqa: S603
            command, stdout=subprocess.PIPE, stderr=self._log, text=True, bufsize=1
        )
        self._reader = threading.Thread(
            target=self._read_stdout,
            args=(process.stdout,),
            name="policylink-demo-server-stdout",
            daemon=True,
        )
        self._reader.start()
        deadline = time.monotonic() + timeout_s
        while not self._ready.wait(0.05):
            exited = process.poll() is not None
            if exited or time.monotonic() > deadline:
                tail = self._log_tail()
                self.stop()
                raise ServerStartError(
                    f"the demo server {'exited' if exited else 'timed out'} before serving; "
                    f"last log lines:\n{tail}"
                )
        return self

    def _read_stdout(self, stream: IO[str]) -> None:
        """Reader thread: ends when the child closes its stdout (it exits)."""
        for line in stream:
            if "namespace" in line:
                self.startup_line = line.strip()
            if line.startswith(READY_MARK):
                self._ready.set()

    def _log_tail(self, count: int = 15) -> str:
        if self._log is not None:
            self._log.flush()
        return "\n".join(self.log_path.read_text().splitlines()[-count:])

    def stop(self) -> int | None:
        """SIGTERM (the server drains), then SIGKILL if it does not exit in time."""
        process, self._process = self._process, None
        code = None
        if process is not None:
            code = terminate(process, STOP_TIMEOUT_S)
            if self._reader is not None:
                self._reader.join(STOP_TIMEOUT_S)
            if process.stdout is not None:
                process.stdout.close()
        if self._log is not None:
            self._log.close()
            self._log = None
        return code

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
