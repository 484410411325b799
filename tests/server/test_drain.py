"""`policylink serve` as a process: start-up, and a SIGTERM drain losing no in-flight reply."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
import zenoh

from policylink import wire
from policylink.net.ports import free_port
from tests.server.robot import Robot
from tests.support.servers import echo_policy
from tests.support.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]
POLICYLINK = [sys.executable, "-c", "from policylink.cli.main import main; main()"]

pytestmark = pytest.mark.slow

REPLICA = "drain-test"


class ServerProcess:
    """`policylink serve` in a subprocess, its stdout lines collected by a reader thread."""

    def __init__(self, *args: str) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.process = subprocess.Popen(
            [*POLICYLINK, "serve", *args],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.stdout: list[str] = []
        self._reader = threading.Thread(target=self._read, name="serve-stdout", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.stdout.append(line)
            self.lines.put(line)

    def wait_for_line(self, needle: str, timeout_s: float = 60.0) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None and self.lines.empty():
                stderr = self.process.stderr.read() if self.process.stderr else ""
                raise AssertionError(f"server exited {self.process.returncode}: {stderr}")
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                continue
            if needle in line:
                return line
        raise AssertionError(f"no line containing {needle!r} within {timeout_s} s")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(30)
        self._reader.join(10)


@pytest.fixture
def slow_server(tmp_path) -> Iterator[tuple[ServerProcess, str, Path]]:
    started = tmp_path / "forward-started"
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    manifest = tmp_path / "server.yaml"
    manifest.write_text(
        yaml.safe_dump(
            {
                "policy": echo_policy(state_dim=2, delay_s=1.5, started_file=str(started)),
                "serving_mode": "exclusive",
                "replica_id": REPLICA,
                "warmup_inferences": 0,
                "zenoh": {"listen": [endpoint]},
            }
        )
    )
    server = ServerProcess("--manifest", str(manifest), "--log-level", "WARNING")
    yield server, endpoint, started
    server.stop()


def test_sigterm_drains_the_in_flight_forward_and_exits_zero(slow_server):
    server, endpoint, started = slow_server
    startup = server.wait_for_line("policylink serve:")
    assert endpoint in startup
    assert "mode exclusive" in startup
    server.wait_for_line("serving")

    namespace = wire.Namespace.of("policylink-transformer")
    robot = Robot(endpoint, namespace, "arm", replica=REPLICA)
    events: queue.Queue[tuple[str, zenoh.SampleKind]] = queue.Queue()
    watcher = robot.session.liveliness().declare_subscriber(
        namespace.replica_alive(REPLICA),
        lambda sample: events.put(("server", sample.kind)),
        history=True,
    )
    try:
        assert events.get(timeout=10) == ("server", zenoh.SampleKind.PUT)
        robot.opened()
        robot.send([1.0, 2.0], seq_id=1)
        wait_for(started.exists, what="the forward to start")

        server.process.send_signal(signal.SIGTERM)
        assert events.get(timeout=10) == ("server", zenoh.SampleKind.DELETE)
        robot.send([3.0, 4.0], seq_id=2)  # arrives while draining: never answered

        header, chunk = robot.next_chunk(timeout_s=30)
        assert header.seq_id == 1
        assert chunk.chunk_robot[0].tolist() == [1.0, 2.0]
        assert server.process.wait(30) == 0
        assert robot.replies.empty()
        assert "stopped\n" in server.stdout
    finally:
        watcher.undeclare()
        robot.close()


def test_invalid_manifest_exits_with_the_field_named(tmp_path):
    result = subprocess.run(
        [*POLICYLINK, "serve", "--max-sessions", "0"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    assert "max_sessions" in result.stderr


def test_print_manifest_prints_the_commented_default():
    result = subprocess.run(
        [*POLICYLINK, "serve", "--print-manifest"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert result.stdout.startswith("# policylink server manifest")
    assert "max_sessions: 8" in result.stdout


def test_drain_gives_up_on_a_forward_that_never_finishes(start_server, connect, verified_echo):
    gated = {"kind": "python", "factory": "tests.server.policies:build_gated"}
    app = start_server(policy={**gated, "params": {"state_dim": 2}}, warmup_inferences=0)
    app.drain_timeout_s = 0.2
    robot = connect(app, "arm")
    robot.opened()
    robot.send([1.0, 2.0], seq_id=1)
    assert app.policy.entered.acquire(timeout=20)

    started = time.monotonic()
    app.stop()
    assert time.monotonic() - started < 10
    assert not app.healthy()
    app.policy.release()
