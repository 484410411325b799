"""Eight robots on one server: each executes only chunks computed from its own observations.

The echo policy answers `action[t, a] = state[a] + t + 1000 * delay`, so `action[1] - action[0]`
equals `state[1] - state[0]`: the signature each robot puts in its observations. A chunk
routed to the wrong robot, or computed from another robot's observation, shows up as a
foreign signature in what that robot was sent.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from policylink.client import ClientConfig, LoopStats, RemoteEngine, RobotLayout, run_loop
from tests.client.conftest import ECHO, endpoint_of, python_policy
from tests.client.robots import ScriptedRobot

if TYPE_CHECKING:
    from policylink.server.app import ServerApp

ROBOTS = 8
FPS = 30.0
DURATION_S = 4.0
JOINTS = ("joint_0", "joint_1", "joint_2")


def test_eight_robots_each_execute_only_their_own_chunks(
    start_server: Callable[..., ServerApp], shared_test_policies: None
) -> None:
    app = start_server(policy=python_policy(ECHO, state_dim=3, chunk_size=10), max_sessions=ROBOTS)
    robots = [ScriptedRobot(motors=JOINTS, signature=7.0 * (i + 1)) for i in range(ROBOTS)]
    results: dict[int, LoopStats] = {}
    errors: list[BaseException] = []

    def drive(index: int) -> None:
        robot = robots[index]
        config = ClientConfig(
            endpoint=endpoint_of(app), client_id=f"arm-{index}", fps=FPS, buffer_time_s=0.15
        )
        try:
            engine = RemoteEngine(config, RobotLayout.of(robot))
            results[index] = run_loop(robot, engine, FPS, duration_s=DURATION_S)
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=drive, args=(i,), name=f"test-robot-{i}") for i in range(ROBOTS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert sorted(results) == list(range(ROBOTS))
    for robot, stats in zip(robots, (results[i] for i in range(ROBOTS)), strict=True):
        sent = robot.sent
        assert stats.actions_sent == len(sent) > stats.ticks // 2
        signatures = {round(a["joint_1"] - a["joint_0"], 3) for a in sent}
        assert signatures == {robot.signature}
