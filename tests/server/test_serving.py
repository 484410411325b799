"""End to end through real Zenoh: a robot opens a session and gets the chunk it asked for."""

from __future__ import annotations

import numpy as np

from policylink import wire
from tests.support.servers import echo_policy


def test_robot_gets_the_chunk_answering_its_observation(start_server, connect, verified_echo):
    app = start_server(policy=echo_policy(state_dim=3, chunk_size=5))
    robot = connect(app, "arm-1")
    ack = robot.opened()

    robot.send([1.0, 2.0, 3.0], seq_id=7, episode_id=2, inference_delay_steps=1)
    header, chunk = robot.next_chunk()

    assert (header.seq_id, header.episode_id, header.session_epoch) == (7, 2, ack.session_epoch)
    expected = np.array([1.0, 2.0, 3.0]) + np.arange(5)[:, None] + 1000
    np.testing.assert_allclose(chunk.chunk_robot, expected)
    assert chunk.inference_ms > 0


def test_default_manifest_serves_the_builtin_transformer(start_server, connect):
    app = start_server()
    robot = connect(app, "arm-1")
    ack = robot.opened()

    robot.send(np.zeros(ack.capabilities.state_dim), seq_id=1)
    _, chunk = robot.next_chunk()

    caps = ack.capabilities
    assert chunk.chunk_robot.shape == (caps.chunk_size, len(caps.action_names))
    assert caps.serving_mode == "shared"
    assert np.isfinite(chunk.chunk_robot).all()
    assert isinstance(ack, wire.SessionAck)
