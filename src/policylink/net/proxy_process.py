"""The impairment proxy as a child process: started, waited for, stopped, its counters read.

A process of its own, so its event loop shares no interpreter lock with the robots or the server
whose traffic it carries, as a router on the path would not.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from types import TracebackType
from typing import IO

from policylink.net.impairment_proxy import READY_MARK, STATS_MARK, Impairment, ProxyStats
from policylink.net.processes import terminate

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


class ProxyStartError(RuntimeError):
    """The proxy exited or stayed silent; the message quotes what it printed."""


class ProxyProcess:
    """`python -m policylink.net.impairment_proxy` relaying `listen_host` to `upstream`."""

    def __init__(
        self,
        upstream: tuple[str, int],
        impairment: Impairment,
        *,
        listen_host: str = "127.0.0.1",
        udp: bool = False,
        seed: int = 0,
    ) -> None:
        self.upstream = upstream
        self.impairment = impairment
        self.listen_host = listen_host
        self.udp = udp
        self.seed = seed
        self.port = 0
        self.stats: ProxyStats | None = None
        self._lines: list[str] = []
        self._ready = threading.Event()
        self._process: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    def start(self, timeout_s: float = START_TIMEOUT_S) -> ProxyProcess:
        command = [
            sys.executable, "-m", "policylink.net.impairment_proxy",
            "--listen", f"{self.listen_host}:0",
            "--upstream", f"{self.upstream[0]}:{self.upstream[1]}",
            "--seed", str(self.seed),
            "--stop-on-stdin-close",
            *self.impairment.to_args(),
        ]  # fmt: skip
        if self.udp:
            command.append("--udp")
        # This interpreter running policylink's own module on arguments built here.
        self._process = process = subprocess.Popen(  # noqa: S603
            command,
            stdin=subprocess.PIPE,  # closed when this process ends, however: the proxy follows
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        self._reader = threading.Thread(
            target=self._read, args=(process.stdout,), name="policylink-proxy-stdout", daemon=True
        )
        self._reader.start()
        if not self._ready.wait(timeout_s):
            self.stop()
            raise ProxyStartError(
                f"the impairment proxy did not listen within {timeout_s:g} s: "
                + " | ".join(self._lines[-10:])
            )
        if process.poll() is not None:
            raise ProxyStartError("the impairment proxy exited: " + " | ".join(self._lines[-10:]))
        return self

    def _read(self, stream: IO[str]) -> None:
        """Reader thread: ends when the child closes its stdout (it exits)."""
        for raw in stream:
            line = raw.strip()
            self._lines.append(line)
            if line.startswith(READY_MARK):
                self.port = int(line.split()[2].rpartition(":")[2])
                self._ready.set()
            elif line.startswith(STATS_MARK):
                self.stats = ProxyStats(**json.loads(line[len(STATS_MARK) :]))
        self._ready.set()

    @property
    def endpoint(self) -> str:
        """The Zenoh endpoint that reaches the upstream through the proxy."""
        return f"{'udp' if self.udp else 'tcp'}/{self.listen_host}:{self.port}"

    def stop(self) -> ProxyStats | None:
        """SIGTERM, then the counters it printed (None if it had to be killed)."""
        process, self._process = self._process, None
        if process is None:
            return self.stats
        terminate(process, STOP_TIMEOUT_S)
        if self._reader is not None:
            self._reader.join(STOP_TIMEOUT_S)
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                stream.close()
        return self.stats

    def __enter__(self) -> ProxyProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
