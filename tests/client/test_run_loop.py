"""run_loop: fixed rate without drift, holds on None, owns the lifecycle, stops on engine death."""

from __future__ import annotations

import threading

import pytest

from policylink.client import ClientConfig, LocalEngine, RobotLayout, run_loop
from tests.client.policies import TracePolicy
from tests.client.robots import ScriptedRobot

FPS = 100.0


def engine_for(robot: ScriptedRobot, **config: object) -> LocalEngine:
    config.setdefault("fps", FPS)
    config.setdefault("buffer_time_s", 0.05)
    return LocalEngine(TracePolicy(chunk_size=10), ClientConfig(**config), RobotLayout.of(robot))


def test_the_loop_keeps_its_rate_and_sends_the_engines_actions() -> None:
    robot = ScriptedRobot()
    stats = run_loop(robot, engine_for(robot), FPS, duration_s=1.0)
    assert stats.stopped_because == "duration reached"
    assert FPS - 5 <= stats.ticks + stats.skipped_ticks <= FPS + 1
    assert stats.actions_sent == len(robot.sent) > 0
    assert stats.held_ticks == stats.ticks - stats.actions_sent
    assert list(robot.sent[-1]) == ["shoulder.pos", "elbow.pos", "gripper.pos"]


def test_the_loop_connects_and_disconnects_the_robot_and_stops_the_engine() -> None:
    robot = ScriptedRobot()
    engine = engine_for(robot)
    run_loop(robot, engine, FPS, duration_s=0.05)
    assert robot.disconnects == 1
    assert not robot.connected
    assert engine.state.value == "stopped"


def test_a_none_action_sends_nothing() -> None:
    robot = ScriptedRobot()
    engine = engine_for(robot)
    engine.pause()
    stats = run_loop(robot, engine, FPS, duration_s=0.1)
    assert robot.sent == []
    assert stats.held_ticks == stats.ticks > 0


def test_the_loop_ends_when_the_engine_dies() -> None:
    robot = ScriptedRobot()
    policy = TracePolicy(always_raise=True)
    engine = LocalEngine(policy, ClientConfig(fps=FPS, max_offline_s=0.2), RobotLayout.of(robot))
    stats = run_loop(robot, engine, FPS, duration_s=30.0)
    assert stats.stopped_because == "engine failed"


def test_a_stop_event_ends_the_loop() -> None:
    robot = ScriptedRobot()
    stop = threading.Event()
    stop.set()
    stats = run_loop(robot, engine_for(robot), FPS, stop=stop)
    assert (stats.stopped_because, stats.ticks) == ("stop requested", 0)


def test_a_loop_rate_other_than_the_engines_is_refused() -> None:
    robot = ScriptedRobot()
    with pytest.raises(ValueError, match="differs from the engine's fps=100"):
        run_loop(robot, engine_for(robot), 30.0, duration_s=0.1)
