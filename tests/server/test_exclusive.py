"""A policy with hidden state is served to one robot at a time, and its episodes start clean."""

from __future__ import annotations

import numpy as np
import pytest

from policylink import wire
from policylink.server.app import ServerApp
from policylink.server.manifest import Manifest
from policylink.server.serving_modes import ServingModeError

STATEFUL = {"kind": "python", "factory": "tests.server.policies:build_stateful"}


def test_unverified_family_is_served_exclusive_and_refuses_a_second_robot(start_server, connect):
    app = start_server(policy={**STATEFUL, "params": {"state_dim": 2}}, max_sessions=8)
    first = connect(app, "first").opened()
    assert first.capabilities.serving_mode == "exclusive"

    reply = connect(app, "second").session_open()
    assert isinstance(reply, wire.ErrorReply)
    assert reply.code is wire.ErrorCode.CAPACITY
    assert reply.details["max_sessions"] == 1


def test_new_episode_resets_an_exclusive_policy(start_server, connect):
    app = start_server(policy={**STATEFUL, "params": {"state_dim": 2}})
    robot = connect(app, "arm")
    robot.opened()
    calls = []
    for seq, episode in ((1, 0), (2, 0), (3, 1)):
        robot.send([0.0, 0.0], seq_id=seq, episode_id=episode)
        calls.append(robot.next_chunk()[1].chunk_robot[0, 0] // 100_000)
    assert calls == [1, 2, 1]


def test_explicit_reset_resets_an_exclusive_policy(start_server, connect):
    app = start_server(policy={**STATEFUL, "params": {"state_dim": 2}})
    robot = connect(app, "arm")
    robot.opened()
    robot.send([0.0, 0.0], seq_id=1)
    robot.next_chunk()
    robot.reset(episode_id=1)
    robot.send([0.0, 0.0], seq_id=2, episode_id=1)
    assert robot.next_chunk()[1].chunk_robot[0, 0] // 100_000 == 1


def test_forcing_shared_on_the_stateful_policy_stops_startup():
    manifest = Manifest.from_data({"policy": STATEFUL, "serving_mode": "shared"})
    with pytest.raises(ServingModeError, match="not verified free of cross-request state"):
        ServerApp(manifest).start()


def test_policy_without_a_chunk_api_is_refused_at_startup():
    policy = {"kind": "python", "factory": "tests.server.policies:build_single_action"}
    with pytest.raises(ServingModeError, match="no chunk API"):
        ServerApp(Manifest.from_data({"policy": policy})).start()


def test_manifest_can_force_exclusive_on_a_shared_policy(start_server, connect):
    app = start_server(serving_mode="exclusive", max_sessions=4)
    assert app.core.status().max_sessions == 1
    ack = connect(app, "arm").opened()
    assert ack.capabilities.serving_mode == "exclusive"
    assert np.isfinite(ack.capabilities.trained_fps)
