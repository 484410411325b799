"""Operations: /healthz, Prometheus /metrics, the audit line per request, bounded capture."""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request

import msgpack
import numpy as np
import pytest

from policylink import wire
from policylink.net.ports import free_port
from policylink.server import health
from tests.support.waiting import wait_for


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.fixture
def served(start_server, connect):
    """A server with health on, after two served requests of one robot."""
    app = start_server(health_port=free_port())
    robot = connect(app, "arm")
    ack = robot.opened()
    for seq in (1, 2):
        robot.send(np.zeros(ack.capabilities.state_dim), seq_id=seq)
        robot.next_chunk()
    ok = app.metrics.requests.labels("ok")
    wait_for(lambda: ok._value.get() == 2, what="both requests counted")  # counted after replying
    return app


def test_healthz_is_ok_while_the_worker_serves(served):
    assert get(served.health_port, "/healthz") == (200, "ok\n")


def test_healthz_fails_once_the_worker_is_gone(served):
    served._worker.stop()
    assert get(served.health_port, "/healthz")[0] == 503


def test_metrics_count_requests_sessions_and_latency(served):
    status, text = get(served.health_port, "/metrics")
    assert status == 200
    samples = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    assert samples['policylink_requests_total{outcome="ok"}'] == 2
    assert samples["policylink_sessions_opened_total"] == 1
    assert samples["policylink_sessions_active"] == 1
    assert samples["policylink_superseded_total"] == 0
    assert samples["policylink_inference_seconds_count"] == 2
    assert samples["policylink_queue_wait_seconds_count"] == 2
    assert samples["policylink_overhead_seconds_count"] == 2
    assert "policylink_server_load" in samples


class CountingMetrics:
    def __init__(self) -> None:
        self.renders = 0

    def exposition(self) -> bytes:
        self.renders += 1
        return f"renders {self.renders}\n".encode()


def test_a_flood_of_metrics_requests_is_answered_from_one_rendering_per_interval():
    metrics, now = CountingMetrics(), [100.0]
    rendered = health._RenderedMetrics(metrics, clock=lambda: now[0])
    assert {rendered.body() for _ in range(1000)} == {b"renders 1\n"}
    now[0] += health.METRICS_MAX_AGE_S
    assert rendered.body() == b"renders 2\n" and metrics.renders == 2


def test_unknown_path_points_at_the_real_ones(served):
    status, text = get(served.health_port, "/")
    assert status == 404
    assert "/healthz" in text


def test_every_request_writes_one_json_audit_line(start_server, connect, caplog):
    app = start_server()
    robot = connect(app, "arm")
    ack = robot.opened()
    with caplog.at_level(logging.INFO, logger="policylink.audit"):
        for seq in (1, 2, 3):
            robot.send(np.zeros(ack.capabilities.state_dim), seq_id=seq, episode_id=4)
            robot.next_chunk()

        def audit_lines() -> list[dict]:
            return [json.loads(r.message) for r in caplog.records if r.name == "policylink.audit"]

        wait_for(
            lambda: len(audit_lines()) == 3, what="three audit lines"
        )  # written after replying
    lines = audit_lines()
    assert [line["seq_id"] for line in lines] == [1, 2, 3]
    assert set(lines[0]) == {
        "session_id",
        "client",
        "seq_id",
        "episode_id",
        "queue_wait_ms",
        "inference_ms",
        "overhead_ms",
        "batch_size",
        "superseded",
        "outcome",
    }
    assert lines[0]["session_id"] == ack.session_id
    assert (lines[0]["client"], lines[0]["episode_id"], lines[0]["outcome"]) == ("arm", 4, "ok")


def test_capture_keeps_raw_requests_and_replies_up_to_its_bound(start_server, connect, tmp_path):
    app = start_server(capture={"dir": str(tmp_path), "max_requests": 2})
    robot = connect(app, "arm")
    ack = robot.opened()
    for seq in (1, 2, 3):
        robot.send(np.full(ack.capabilities.state_dim, seq, np.float32), seq_id=seq)
        robot.next_chunk()

    files = sorted(tmp_path.iterdir())
    assert [f.name for f in files] == ["000000.msgpack", "000001.msgpack"]
    record = msgpack.unpackb(files[1].read_bytes())
    request = wire.decode_observation(record["request"])
    np.testing.assert_array_equal(request.state, np.full(ack.capabilities.state_dim, 2))
    assert wire.unpack_header(record["request_header"]).seq_id == 2
    reply_header = wire.unpack_header(record["reply_header"])
    reply = wire.decode_message(reply_header.msg_type, record["reply"])
    assert isinstance(reply, wire.ActionChunk)
    assert record["session_id"] == ack.session_id


def test_startup_line_states_namespace_endpoints_mode_and_capacity(start_server):
    app = start_server(max_sessions=3)
    line = app.startup_line()
    assert "@policylink/policylink-transformer/main/default" in line
    assert app.manifest.zenoh.listen[0] in line
    assert "mode shared" in line
    assert "capacity 3 sessions" in line
