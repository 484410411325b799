"""Session open over Zenoh: the sync-safety contract, every reject code, warnings in the ack."""

from __future__ import annotations

import pytest

from policylink import wire
from policylink.wire import ErrorCode
from tests.support.servers import echo_policy

CAMERAS = [{"name": "front", "height": 48, "width": 64}]


@pytest.fixture
def app(start_server, verified_echo):
    return start_server(
        policy=echo_policy(state_dim=3, cameras=CAMERAS, trained_fps=30.0),
        default_task="stack",
        max_sessions=2,
    )


def refused(reply: wire.Message, code: ErrorCode) -> wire.ErrorReply:
    assert isinstance(reply, wire.ErrorReply), reply
    assert reply.code is code, reply
    return reply


def test_matching_robot_gets_an_ack_with_capabilities_and_no_warnings(app, connect):
    ack = connect(app, "arm-1").opened()
    assert ack.schema_version == wire.SCHEMA_VERSION
    assert ack.session_epoch > 0
    assert ack.capabilities.action_names == ["joint_0", "joint_1", "joint_2"]
    assert ack.capabilities.cameras == [wire.CameraSpec("front", 48, 64)]
    assert ack.rtc_enabled is False
    assert ack.warnings == []


def test_status_reports_capabilities_and_load(app, connect):
    robot = connect(app, "arm-1")
    robot.opened()
    status = robot.status()
    assert (status.active_sessions, status.max_sessions, status.draining) == (1, 2, False)
    assert status.capabilities.model_id == app.manifest.model_id


def test_swapped_action_order_is_refused_naming_the_position(app, connect):
    reply = connect(app, "arm-1").session_open(action_names=["joint_1", "joint_0", "joint_2"])
    assert "position 0" in refused(reply, ErrorCode.ACTION_MISMATCH).message


def test_unknown_action_name_is_refused(app, connect):
    reply = connect(app, "arm-1").session_open(action_names=["joint_0", "joint_1", "gripper"])
    assert "unknown ['gripper']" in refused(reply, ErrorCode.ACTION_MISMATCH).message


def test_wrong_state_dimension_is_refused(app, connect):
    reply = connect(app, "arm-1").session_open(state_dim=7)
    assert refused(reply, ErrorCode.STATE_MISMATCH).details == {"expected": 3}


def test_missing_camera_is_refused(app, connect):
    reply = connect(app, "arm-1").session_open(cameras=[])
    assert "'front'" in refused(reply, ErrorCode.CAMERA_MISMATCH).message


def test_camera_of_the_wrong_size_is_refused(app, connect):
    reply = connect(app, "arm-1").session_open(cameras=[wire.CameraSpec("front", 480, 640)])
    assert "480x640" in refused(reply, ErrorCode.CAMERA_MISMATCH).message


def test_schema_range_without_overlap_is_refused(app, connect):
    reply = connect(app, "arm-1").session_open(schema_min=7, schema_max=9)
    assert "upgrade the server" in refused(reply, ErrorCode.UNSUPPORTED_SCHEMA).message


def test_a_session_open_whose_body_names_another_robot_than_its_key_is_refused(app, connect):
    victim = connect(app, "arm-1")
    victim_ack = victim.opened()
    impostor = connect(app, "arm-2")
    reply = refused(impostor.session_open(client_id="arm-1"), ErrorCode.BAD_KEY)
    assert "does not match the key's robot 'arm-2'" in reply.message
    assert app.core.session_id_for_client("arm-1") == victim_ack.session_id


def test_a_robot_cannot_close_or_reset_another_robots_session(app, connect):
    victim = connect(app, "arm-1")
    victim_ack = victim.opened()
    other = connect(app, "arm-2")
    other.opened()
    close = wire.SessionClose(session_id=victim_ack.session_id, reason="hostile")
    _, reply = other.request(other.namespace.session("arm-2", other.replica), close)
    refused(reply, ErrorCode.UNKNOWN_SESSION)
    _, reply = other.request(
        other.namespace.reset("arm-2", other.replica),
        wire.Reset(session_id=victim_ack.session_id, episode_id=5),
    )
    refused(reply, ErrorCode.UNKNOWN_SESSION)
    assert app.core.session_id_for_client("arm-1") == victim_ack.session_id


def test_capacity_reject_carries_the_current_load(app, connect):
    connect(app, "arm-1").opened()
    connect(app, "arm-2").opened()
    reply = refused(connect(app, "arm-3").session_open(), ErrorCode.CAPACITY)
    assert reply.details["active_sessions"] == 2
    assert reply.details["max_sessions"] == 2
    assert reply.details["load"] == 1.0


def test_reopening_client_replaces_its_session_without_using_capacity(app, connect):
    first = connect(app, "arm-1").opened()
    connect(app, "arm-2").opened()
    again = connect(app, "arm-1").opened()
    assert again.session_id != first.session_id
    assert again.session_epoch != first.session_epoch
    assert app.core.status().active_sessions == 2


def test_different_fps_opens_with_a_warning(app, connect):
    ack = connect(app, "arm-1").opened(fps=50.0)
    assert any("trained rate 30" in w for w in ack.warnings)


def test_unused_camera_opens_with_a_warning(app, connect):
    cameras = [wire.CameraSpec("front", 48, 64), wire.CameraSpec("side", 48, 64)]
    ack = connect(app, "arm-1").opened(cameras=cameras)
    assert any("['side']" in w for w in ack.warnings)


def test_rtc_request_is_granted_when_the_policy_supports_it(start_server, connect, verified_echo):
    app = start_server(policy=echo_policy(state_dim=3))
    assert connect(app, "arm-1").opened(rtc=True).rtc_enabled is True


def test_rtc_request_downgrades_to_append_with_a_warning(start_server, connect, verified_echo):
    app = start_server(policy=echo_policy(state_dim=3, supports_rtc=False))
    ack = connect(app, "arm-1").opened(rtc=True)
    assert ack.rtc_enabled is False
    assert any("RTC requested" in w for w in ack.warnings)


def test_strict_fps_refuses_a_different_rate(start_server, connect, verified_echo):
    app = start_server(policy=echo_policy(state_dim=3), strict_fps=True)
    reply = connect(app, "arm-1").session_open(fps=15.0)
    assert refused(reply, ErrorCode.FPS_MISMATCH).details == {"trained_fps": 30.0}


def test_pinned_task_refuses_another_task(start_server, connect, verified_echo):
    app = start_server(policy=echo_policy(state_dim=3), default_task="stack", pin_task=True)
    robot = connect(app, "arm-1")
    refused(robot.session_open(task="unstack"), ErrorCode.TASK_PINNED)
    assert isinstance(robot.session_open(task="stack"), wire.SessionAck)


def test_draining_server_refuses_new_sessions(app, connect):
    robot = connect(app, "arm-1")
    app.core.begin_drain()
    refused(robot.session_open(), ErrorCode.DRAINING)


def test_closing_a_session_frees_its_slot(app, connect):
    robot = connect(app, "arm-1")
    ack = robot.opened()
    _, reply = robot.request(
        robot.namespace.session("arm-1", robot.replica), wire.SessionClose(ack.session_id)
    )
    assert isinstance(reply, wire.SessionClose)
    assert app.core.status().active_sessions == 0


def test_closing_an_unknown_session_says_so(app, connect):
    robot = connect(app, "arm-1")
    _, reply = robot.request(
        robot.namespace.session("arm-1", robot.replica), wire.SessionClose("nope")
    )
    refused(reply, ErrorCode.UNKNOWN_SESSION)


def test_malformed_session_request_gets_an_error_reply(app, connect):
    robot = connect(app, "arm-1")
    _, reply = robot.request(robot.namespace.session("arm-1", robot.replica), wire.StatusRequest())
    refused(reply, ErrorCode.BAD_MESSAGE)
