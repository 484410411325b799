"""`policylink router`: robots and servers that dial out to it find each other."""

import select
import signal
import subprocess
import sys

import pytest

from policylink.net.ports import free_port
from policylink.server.app import ServerApp

from .conftest import expert_manifest, policylink

ROUTING_TIMEOUT_S = 30.0


@pytest.fixture
def router_endpoint():
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from policylink.cli.main import main; main()",
            "router",
            "--listen",
            endpoint,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], ROUTING_TIMEOUT_S)
        assert ready, "the router printed nothing"
        line = process.stdout.readline()
        assert line.startswith("routing on"), line
        yield endpoint, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(ROUTING_TIMEOUT_S)
        process.stdout.close()


def test_a_server_and_a_robot_dialling_out_to_the_router_find_each_other(router_endpoint):
    endpoint, _ = router_endpoint
    manifest = expert_manifest(zenoh={"mode": "client", "connect": [endpoint], "listen": []})
    app = ServerApp(manifest).start()
    try:
        result = policylink("status", "--zenoh-mode", "client", "--connect", endpoint)
    finally:
        app.stop()
    assert result.returncode == 0, result.stderr
    assert "@policylink/sim-expert/main/reach_track" in result.stdout


def test_the_router_stops_cleanly_on_sigterm(router_endpoint):
    _, process = router_endpoint
    process.send_signal(signal.SIGTERM)
    assert process.wait(ROUTING_TIMEOUT_S) == 0
    assert "stopped" in process.stdout.read()


def test_a_router_that_cannot_listen_says_why():
    result = policylink("router", "--listen", "nonsense")
    assert result.returncode == 2
    assert "cannot start" in result.stderr
