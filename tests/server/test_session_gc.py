"""Sessions of vanished robots are collected, and a live replacement session never is."""

from __future__ import annotations

import time

from policylink import wire
from tests.support.waiting import wait_for


def test_session_closes_after_its_clients_liveliness_token_drops(start_server, connect):
    app = start_server()
    robot = connect(app, "arm", declare_liveliness=True)
    robot.opened()
    robot.token.undeclare()
    robot.token = None
    closed = app.metrics.sessions_closed.labels("client liveliness lost")
    wait_for(lambda: closed._value.get() == 1, what="liveliness GC")
    assert app.core.status().active_sessions == 0


def test_token_drop_noticed_before_a_restart_never_closes_the_new_session(start_server, connect):
    app = start_server()
    app.zenoh.liveliness_grace_s = 3.0  # room for the restart to land inside the grace period
    crashed = connect(app, "arm", declare_liveliness=True)
    crashed.opened()
    restarted = connect(app, "arm")

    crashed.token.undeclare()
    crashed.token = None
    wait_for(lambda: "arm" in app.zenoh.suspected_clients(), what="the drop to be noticed")
    new_session = restarted.opened().session_id
    wait_for(lambda: "arm" not in app.zenoh.suspected_clients(), what="the double-check")

    assert app.core.session_id_for_client("arm") == new_session
    assert app.metrics.sessions_closed.labels("client liveliness lost")._value.get() == 0


def test_reappearing_token_cancels_collection(start_server, connect):
    app = start_server()
    robot = connect(app, "arm", declare_liveliness=True)
    session_id = robot.opened().session_id
    robot.token.undeclare()
    robot.token = robot.session.liveliness().declare_token(
        robot.namespace.robot_alive("arm", robot.instance)
    )
    wait_for(lambda: "arm" not in app.zenoh.suspected_clients(), what="the token to return")
    assert app.core.session_id_for_client("arm") == session_id


def test_idle_session_is_closed(start_server, connect):
    app = start_server(session_idle_timeout_s=0.3)
    connect(app, "arm").opened()
    wait_for(lambda: app.metrics.sessions_closed.labels("idle")._value.get() == 1, what="idle GC")
    assert app.core.status().active_sessions == 0


def test_streaming_session_is_not_idle(start_server, connect):
    app = start_server(session_idle_timeout_s=0.3)
    robot = connect(app, "arm")
    ack = robot.opened()
    streamed_until = time.monotonic() + 1.0  # three idle timeouts
    seq = 0
    while time.monotonic() < streamed_until:
        seq += 1
        robot.send([0.0] * ack.capabilities.state_dim, seq_id=seq)
        assert robot.next_chunk()[0].seq_id == seq
    assert app.core.session_id_for_client("arm") == ack.session_id


def test_a_second_process_cannot_take_over_a_live_robots_session(start_server, connect):
    app = start_server()
    victim = connect(app, "arm", declare_liveliness=True, instance="first")
    ack = victim.opened()
    wait_for(lambda: "first" in app.zenoh.live_instances("arm"), what="the victim's token")
    impostor = connect(app, "arm", declare_liveliness=True, instance="second")
    reply = impostor.session_open()
    assert isinstance(reply, wire.ErrorReply), reply
    assert reply.code is wire.ErrorCode.CLIENT_IN_USE
    assert app.core.session_id_for_client("arm") == ack.session_id


def test_a_restarted_robot_rejoins_as_soon_as_its_old_process_is_gone(start_server, connect):
    app = start_server()
    old = connect(app, "arm", declare_liveliness=True, instance="before-restart")
    old.opened()
    wait_for(lambda: "before-restart" in app.zenoh.live_instances("arm"), what="the old token")
    old.close()
    restarted = connect(app, "arm", declare_liveliness=True, instance="after-restart")
    ack = wait_for(lambda: _acked(restarted.session_open()), what="the restarted robot's session")
    assert app.core.session_id_for_client("arm") == ack.session_id


def _acked(reply: wire.Message) -> wire.SessionAck | None:
    return reply if isinstance(reply, wire.SessionAck) else None
