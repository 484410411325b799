"""The request path over real Zenoh: correct chunks per robot, isolation, errors contained."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from policylink import wire
from policylink.wire import ErrorCode
from tests.server.policies import RAISE_MARKER
from tests.support.servers import echo_policy
from tests.support.waiting import wait_for


def echo_of(state, chunk_size: int, delay: int = 0) -> np.ndarray:
    return np.asarray(state, np.float32) + np.arange(chunk_size)[:, None] + 1000 * delay


def test_eight_concurrent_sessions_each_get_their_own_chunks(start_server, connect, verified_echo):
    app = start_server(policy=echo_policy(state_dim=2, chunk_size=4), max_sessions=8)
    robots = [connect(app, f"arm-{i}") for i in range(8)]
    for robot in robots:
        robot.opened()

    def stream(index: int) -> None:
        for seq in range(1, 6):
            robots[index].send([index, seq], seq_id=seq)
            header, chunk = robots[index].next_chunk()
            assert header.seq_id == seq
            np.testing.assert_array_equal(chunk.chunk_robot, echo_of([index, seq], 4))

    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            stream(index)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,), name=f"robot-{i}") for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    ok = app.core.metrics.requests.labels("ok")
    wait_for(lambda: ok._value.get() == 40, what="40 requests counted")  # counted after the reply


def test_relative_actions_use_each_sessions_own_state(start_server, connect):
    app = start_server(policy={"kind": "relative", "preset": "tiny", "params": {"state_dim": 3}})
    near, far = connect(app, "near"), connect(app, "far")
    near_ack, far_ack = near.opened(), far.opened()
    processors = {
        app.core.registry.get(a.session_id).pipeline.processor for a in (near_ack, far_ack)
    }
    assert len(processors) == 2

    for seq in range(1, 6):
        near.send([0.1 * seq, 0.0, 0.0], seq_id=seq)
        far.send([100.0 + seq, 50.0, -50.0], seq_id=seq)
        for robot, state in ((near, [0.1 * seq, 0, 0]), (far, [100.0 + seq, 50, -50])):
            _, chunk = robot.next_chunk()
            offset = chunk.chunk_robot - chunk.chunk_model
            np.testing.assert_allclose(offset, np.tile(np.float32(state), (50, 1)), atol=1e-4)


def test_policy_exception_fails_only_that_request(start_server, connect, verified_echo):
    app = start_server(policy=echo_policy(state_dim=2, chunk_size=3))
    bad, good = connect(app, "bad"), connect(app, "good")
    bad.opened()
    good.opened()

    bad.send([RAISE_MARKER, 0.0], seq_id=1)
    header, reply = bad.next_reply()
    assert isinstance(reply, wire.ErrorReply)
    assert reply.code is ErrorCode.POLICY_ERROR
    assert "ValueError" in reply.message
    assert (header.msg_type, header.seq_id) == (wire.MsgType.ERROR, 1)

    good.send([1.0, 2.0], seq_id=1)
    np.testing.assert_array_equal(good.next_chunk()[1].chunk_robot, echo_of([1, 2], 3))
    bad.send([1.0, 2.0], seq_id=2)
    assert bad.next_chunk()[0].seq_id == 2
    assert app.healthy()


def test_observation_not_matching_the_contract_gets_an_error_naming_the_field(
    start_server, connect, verified_echo
):
    app = start_server(policy=echo_policy(state_dim=2))
    robot = connect(app, "arm")
    robot.opened()
    robot.send([1.0, 2.0, 3.0], seq_id=1)
    _, reply = robot.next_reply()
    assert isinstance(reply, wire.ErrorReply)
    assert reply.code is ErrorCode.STATE_MISMATCH
    assert "observation.state" in reply.message


def test_observation_without_a_session_is_told_to_open_one(start_server, connect, verified_echo):
    app = start_server(policy=echo_policy(state_dim=2))
    robot = connect(app, "stranger")
    robot.send([1.0, 2.0], seq_id=3)
    header, reply = robot.next_reply()
    assert isinstance(reply, wire.ErrorReply)
    assert (reply.code, header.seq_id) == (ErrorCode.UNKNOWN_SESSION, 3)


def test_observation_from_a_replaced_session_is_stale(start_server, connect, verified_echo):
    app = start_server(policy=echo_policy(state_dim=2))
    robot = connect(app, "arm")
    old = robot.opened()
    robot.opened()
    robot.send([1.0, 2.0], seq_id=1, epoch=old.session_epoch)
    _, reply = robot.next_reply()
    assert isinstance(reply, wire.ErrorReply)
    assert reply.code is ErrorCode.STALE_SESSION


def test_reset_acknowledges_and_refuses_the_old_episodes_observations(
    start_server, connect, verified_echo
):
    app = start_server(policy=echo_policy(state_dim=2))
    robot = connect(app, "arm")
    ack = robot.opened()
    reply = robot.reset(episode_id=5)
    assert reply == wire.ResetAck(ack.session_id, 5)

    robot.send([1.0, 1.0], seq_id=1, episode_id=4)
    robot.send([2.0, 2.0], seq_id=2, episode_id=5)
    header, _ = robot.next_chunk()
    assert (header.seq_id, header.episode_id) == (2, 5)
    wait_for(lambda: app.core.metrics.dropped.labels("old_episode")._value.get() == 1)


def test_reset_of_another_clients_session_is_refused(start_server, connect, verified_echo):
    app = start_server(policy=echo_policy(state_dim=2))
    owner, other = connect(app, "owner"), connect(app, "other")
    other.ack = owner.opened()
    reply = other.reset(episode_id=1)
    assert isinstance(reply, wire.ErrorReply)
    assert reply.code is ErrorCode.UNKNOWN_SESSION


def test_default_task_fills_an_observation_without_one(start_server, connect):
    app = start_server(default_task="stack the cubes")
    robot = connect(app, "arm")
    ack = robot.opened()
    robot.send(np.zeros(ack.capabilities.state_dim), seq_id=1)
    first = robot.next_chunk()[1].chunk_model
    robot.send(np.zeros(ack.capabilities.state_dim), seq_id=2, task="stack the cubes")
    np.testing.assert_array_equal(robot.next_chunk()[1].chunk_model, first)
    robot.send(np.zeros(ack.capabilities.state_dim), seq_id=3, task="wipe the table")
    assert not np.array_equal(robot.next_chunk()[1].chunk_model, first)


def test_pinned_task_refuses_an_observation_with_another_task(start_server, connect, verified_echo):
    app = start_server(policy=echo_policy(state_dim=2), default_task="stack", pin_task=True)
    robot = connect(app, "arm")
    robot.opened()
    robot.send([1.0, 2.0], seq_id=1, task="unstack")
    _, reply = robot.next_reply()
    assert isinstance(reply, wire.ErrorReply)
    assert reply.code is ErrorCode.TASK_PINNED


@pytest.mark.parametrize("rtc", [True, False])
def test_prefix_guides_the_chunk_only_when_rtc_is_granted(start_server, connect, rtc):
    app = start_server(policy={"kind": "transformer", "params": {"state_dim": 2, "chunk_size": 6}})
    robot = connect(app, "arm")
    robot.opened(rtc=rtc)
    prefix = np.full((4, 2), 9.0, np.float32)
    robot.send([0.0, 0.0], seq_id=1, inference_delay_steps=2, prefix_model=prefix)
    chunk = robot.next_chunk()[1].chunk_model
    assert np.array_equal(chunk[:2], prefix[:2]) is rtc
