"""RobotLayout: LeRobot feature dicts in, the session contract and wire arrays out."""

from __future__ import annotations

import numpy as np
import pytest

from policylink.client import RobotLayout
from policylink.wire import CameraSpec
from tests.client.robots import MOTORS, ScriptedRobot


def test_layout_keeps_the_robots_action_order_and_finds_its_cameras() -> None:
    layout = RobotLayout.of(ScriptedRobot(camera=(48, 64)))
    assert layout.action_names == MOTORS
    assert layout.state_names == MOTORS
    assert layout.cameras == (CameraSpec("front", 48, 64),)


def test_an_observation_dict_becomes_a_float32_state_and_named_images() -> None:
    robot = ScriptedRobot(camera=(4, 6), first=7.0)
    layout = RobotLayout.of(robot)
    obs = layout.observation(robot.get_observation(), task="stack")
    assert obs.state.dtype == np.float32
    assert obs.state.tolist() == [7.0, 7.0, 7.0]
    assert obs.images["front"].shape == (4, 6, 3)
    assert obs.task == "stack"


def test_a_missing_feature_is_named() -> None:
    layout = RobotLayout.of(ScriptedRobot())
    with pytest.raises(ValueError, match=r"lacks 'elbow\.pos'"):
        layout.observation({"shoulder.pos": 1.0, "gripper.pos": 0.0})


def test_a_camera_frame_of_the_wrong_size_is_refused() -> None:
    robot = ScriptedRobot(camera=(4, 6))
    layout = RobotLayout.of(robot)
    raw = robot.get_observation()
    raw["front"] = np.zeros((6, 4, 3), np.uint8)
    with pytest.raises(ValueError, match=r"camera 'front' returned shape \(6, 4, 3\)"):
        layout.observation(raw)


def test_an_action_row_becomes_the_motor_dict_in_order() -> None:
    layout = RobotLayout.of(ScriptedRobot())
    action = layout.action_dict(np.array([1.5, 2.5, 3.5], np.float32))
    assert list(action.items()) == [("shoulder.pos", 1.5), ("elbow.pos", 2.5), ("gripper.pos", 3.5)]


def test_a_camera_feature_must_be_rgb() -> None:
    with pytest.raises(ValueError, match="cameras must be"):
        RobotLayout.from_features({"front": (4, 6, 1)}, {"a": float})
