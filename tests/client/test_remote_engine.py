"""RemoteEngine against a real in-process server over Zenoh on loopback."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from policylink.client import (
    EngineState,
    HandshakeError,
    RemoteEngine,
    RobotLayout,
    ServerUnreachable,
    SyncEngine,
)
from policylink.net.ports import free_port
from policylink.net.zenoh_session import open_zenoh_session
from policylink.net.zenoh_settings import ZenohSettings
from policylink.wire import ErrorCode, Observation
from tests.client.conftest import ECHO, TRACE, endpoint_of, python_policy
from tests.client.policies import RAISE_MARKER
from tests.client.robots import MOTORS, ScriptedRobot
from tests.client.waiting import offer_until
from tests.support.waiting import wait_for

if TYPE_CHECKING:
    from policylink.server.app import ServerApp

LAYOUT = RobotLayout.of(ScriptedRobot())
ECHO_LAYOUT = RobotLayout(tuple(f"joint_{i}" for i in range(3)), ("a", "b", "c"))
StartServer = Callable[..., "ServerApp"]
StartEngine = Callable[..., RemoteEngine | SyncEngine]


def obs(value: float) -> Observation:
    return Observation(state=np.full(3, value, np.float32))


def trace_server(start_server: StartServer, **params: object) -> ServerApp:
    return start_server(policy=python_policy(TRACE, **params), max_sessions=1)


def test_start_opens_a_session_and_streams_chunks(
    start_server: StartServer, start_engine: StartEngine
) -> None:
    app = trace_server(start_server, chunk_size=4)
    engine = start_engine(endpoint_of(app), LAYOUT, buffer_time_s=0.0)
    assert engine.ready
    assert engine.state is EngineState.STREAMING
    assert engine.stats.session_id
    engine.notify_observation(obs(7.0))
    wait_for(lambda: engine.stats.chunks_merged == 1, what="first chunk")
    assert [engine.get_action()[0] for _ in range(4)] == [7.0, 8.0, 9.0, 10.0]
    assert engine.stats.last_rtt_ms is not None


def test_a_robot_with_its_motors_in_another_order_is_refused_at_start(
    start_server: StartServer, start_engine: StartEngine
) -> None:
    app = trace_server(start_server)
    swapped = RobotLayout((MOTORS[1], MOTORS[0], MOTORS[2]), LAYOUT.state_names)
    with pytest.raises(HandshakeError, match="wrong order") as refused:
        start_engine(endpoint_of(app), swapped)
    assert refused.value.code is ErrorCode.ACTION_MISMATCH
    assert refused.value.contract


def test_no_server_at_the_endpoint_fails_start_after_the_connect_timeout(
    start_engine: StartEngine,
) -> None:
    began = time.monotonic()
    with pytest.raises(ServerUnreachable, match=r"connect_timeout_s=0\.5"):
        start_engine(
            f"tcp/127.0.0.1:{free_port()}",
            LAYOUT,
            connect_timeout_s=0.5,
            reconnect_initial_backoff_s=0.1,
            handshake_timeout_s=0.2,
        )
    assert time.monotonic() - began < 5.0


def test_a_namespace_nobody_serves_is_unreachable(
    start_server: StartServer, start_engine: StartEngine
) -> None:
    app = trace_server(start_server)
    with pytest.raises(ServerUnreachable, match="model_id"):
        start_engine(endpoint_of(app), LAYOUT, model_id="another-model", connect_timeout_s=0.3)


def test_a_server_policy_error_fails_one_request_not_the_session(
    start_server: StartServer, start_engine: StartEngine
) -> None:
    app = trace_server(start_server, chunk_size=2)
    engine = start_engine(endpoint_of(app), LAYOUT, buffer_time_s=0.0)
    engine.notify_observation(obs(RAISE_MARKER))
    wait_for(lambda: engine.stats.error_replies == 1, what="error reply")
    engine.notify_observation(obs(3.0))
    wait_for(lambda: engine.stats.chunks_merged == 1, what="chunk after the error")
    assert engine.get_action()[0] == 3.0
    assert engine.ready


def test_a_chunk_that_arrives_older_than_max_action_age_is_never_played(
    start_server: StartServer, start_engine: StartEngine, shared_test_policies: None
) -> None:
    app = start_server(policy=python_policy(ECHO, state_dim=3, chunk_size=8, delay_s=0.25))
    engine = start_engine(endpoint_of(app), ECHO_LAYOUT, buffer_time_s=0.0, max_action_age_s=0.1)
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        engine.notify_observation(obs(1.0))
        assert engine.get_action() is None
        time.sleep(0.01)
    stats = engine.stats
    assert stats.chunks_merged >= 2
    assert stats.actions_expired >= 8
    assert stats.state is EngineState.STALLED


def test_reset_racing_an_inflight_request_drops_the_stale_chunk(
    start_server: StartServer,
    start_engine: StartEngine,
    shared_test_policies: None,
    tmp_path: Path,
) -> None:
    started = tmp_path / "forward-started"
    app = start_server(
        policy=python_policy(
            ECHO, state_dim=3, chunk_size=8, delay_s=0.3, started_file=str(started)
        )
    )
    started.unlink()  # written by the warm-up forward
    engine = start_engine(endpoint_of(app), ECHO_LAYOUT, buffer_time_s=0.0)
    engine.notify_observation(obs(1.0))
    wait_for(started.exists, what="forward started")
    engine.reset()
    engine.notify_observation(obs(50.0))
    wait_for(lambda: engine.stats.chunks_dropped_stale == 1, what="stale chunk dropped")
    wait_for(lambda: engine.stats.chunks_merged == 1, what="new-episode chunk")
    _, robot, _ = engine.queue_contents()
    assert robot[0, 0] % 1000 == 50.0
    assert np.all(robot[:, 0] % 1000 >= 50.0)


def test_sync_engine_blocks_for_one_round_trip_when_empty(
    start_server: StartServer, start_engine: StartEngine
) -> None:
    app = trace_server(start_server, chunk_size=3)
    engine = start_engine(endpoint_of(app), LAYOUT, engine=SyncEngine)
    assert engine.get_action() is None
    engine.notify_observation(obs(5.0))
    assert [engine.get_action()[0] for _ in range(3)] == [5.0, 6.0, 7.0]
    assert engine.stats.requests == 1
    assert engine.stats.chunks_merged == 1


def test_requests_outliving_the_timeout_are_abandoned_and_the_session_reopened(
    start_server: StartServer, start_engine: StartEngine, shared_test_policies: None
) -> None:
    app = start_server(policy=python_policy(ECHO, state_dim=3, chunk_size=8, delay_s=0.6))
    engine = start_engine(
        endpoint_of(app),
        ECHO_LAYOUT,
        buffer_time_s=0.0,
        request_timeout_s=0.2,
        timeouts_before_reconnect=2,
        reconnect_initial_backoff_s=0.05,
    )
    offer_until(
        engine, obs(1.0), lambda: engine.stats.reconnects >= 1, what="reconnect after two timeouts"
    )
    states = [t.state for t in engine.transitions()]
    reconnecting = states.index(EngineState.RECONNECTING)
    assert states[reconnecting + 1] is EngineState.STREAMING
    assert engine.stats.timeouts >= 2
    wait_for(lambda: engine.stats.chunks_dropped_stale >= 1, what="a late chunk dropped")


def test_every_state_change_is_logged_with_its_reason(
    start_server: StartServer, start_engine: StartEngine, caplog: pytest.LogCaptureFixture
) -> None:
    app = trace_server(start_server)
    with caplog.at_level("INFO", logger="policylink.client"):
        engine = start_engine(endpoint_of(app), LAYOUT, client_id="logged-arm")
    changes = [r.getMessage() for r in caplog.records if " -> " in r.getMessage()]
    assert changes[0].startswith("logged-arm: idle -> connecting (dialing tcp/127.0.0.1:")
    assert changes[1].startswith("logged-arm: connecting -> streaming (session ")
    assert engine.stats.session_id in changes[1]


def test_reset_is_acknowledged_by_the_server(
    start_server: StartServer, start_engine: StartEngine, caplog: pytest.LogCaptureFixture
) -> None:
    app = trace_server(start_server)
    engine = start_engine(endpoint_of(app), LAYOUT, client_id="resetting-arm")
    with caplog.at_level("INFO", logger="policylink.client"):
        engine.reset()
        wait_for(
            lambda: any("acknowledged episode 1" in r.getMessage() for r in caplog.records),
            what="reset acknowledgement",
        )
    assert engine.stats.episode_id == 1


def test_a_flood_of_unreadable_action_messages_is_counted_but_logged_once(
    start_server: StartServer, start_engine: StartEngine, caplog: pytest.LogCaptureFixture
) -> None:
    app = trace_server(start_server)
    engine = start_engine(endpoint_of(app), LAYOUT, client_id="flooded-arm")
    link = engine._transport
    peer = open_zenoh_session(ZenohSettings(mode="client", connect=[endpoint_of(app)]))
    try:
        with caplog.at_level("WARNING", logger="policylink.client"):
            for _ in range(200):
                peer.put("@policylink/**", b"not a policylink message")
            wait_for(lambda: link.malformed_replies == 200, what="every garbage put to arrive")
    finally:
        peer.close()
    warnings = [r.getMessage() for r in caplog.records if "unreadable" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith("flooded-arm: dropped 1 unreadable action message(s)")
    engine.notify_observation(obs(3.0))
    wait_for(lambda: engine.stats.chunks_merged >= 1, what="a chunk after the flood")
