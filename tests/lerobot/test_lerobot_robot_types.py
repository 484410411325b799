"""Every robot type of the installed LeRobot decodes from `policylink run`'s options, cameras
included, as `lerobot-rollout` decodes its `--robot.*` flags (no driver needed to decode)."""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from typing import Any

import pytest

from policylink.client.lerobot_robot import decode_robot_config

pytest.importorskip("lerobot", reason="LeRobot lives in its own environment: make test-lerobot")

PORT = "/dev/ttyACM0"
ARM = {"port": PORT}
# The fields each type requires (besides cameras), as its users pass them.
REQUIRED: dict[str, dict[str, Any]] = {
    "so100_follower": ARM,
    "so101_follower": ARM,
    "koch_follower": ARM,
    "omx_follower": ARM,
    "openarm_follower": ARM,
    "rebot_b601_follower": ARM,
    "hope_jr_arm": ARM,
    "hope_jr_hand": {"port": PORT, "side": "left"},
    "lekiwi": {},
    "lekiwi_client": {"remote_ip": "192.168.1.20"},
    "reachy2": {"ip_address": "192.168.1.30"},
    "unitree_g1": {},
    "earthrover_mini_plus": {},
    "bi_so_follower": {"left_arm_config": ARM, "right_arm_config": {"port": "/dev/ttyACM1"}},
    "bi_openarm_follower": {"left_arm_config": ARM, "right_arm_config": {"port": "/dev/ttyACM1"}},
    "bi_rebot_b601_follower": {
        "left_arm_config": ARM,
        "right_arm_config": {"port": "/dev/ttyACM1"},
    },
}
CAMERAS = {
    "front": {"type": "opencv", "index_or_path": 0, "width": 640, "height": 480, "fps": 30},
    "wrist": {
        "type": "intelrealsense",
        "serial_number_or_name": "0123456789",
        **{"width": 640, "height": 480, "fps": 30},
    },
    "side": {
        "type": "zmq",
        "server_address": "192.168.1.40",
        **{"camera_name": "side", "width": 640, "height": 480, "fps": 30},
    },
}


def builtin_types() -> list[str]:
    import lerobot.robots
    from lerobot.robots import RobotConfig

    for package in pkgutil.iter_modules(lerobot.robots.__path__):
        if package.ispkg:
            importlib.import_module(f"lerobot.robots.{package.name}")
    return sorted(
        name
        for name, config_class in RobotConfig.get_known_choices().items()
        if config_class.__module__.startswith("lerobot.robots.")
    )


def test_every_builtin_robot_type_has_decoding_options_here():
    assert builtin_types() == sorted(REQUIRED)


@pytest.mark.parametrize("robot_type", sorted(REQUIRED))
def test_a_builtin_robot_type_decodes_with_its_cameras(robot_type):
    from lerobot.robots import RobotConfig

    config_class = RobotConfig.get_choice_class(robot_type)
    with_cameras = "cameras" in {field.name for field in dataclasses.fields(config_class)}
    options = {**REQUIRED[robot_type], **({"cameras": CAMERAS} if with_cameras else {})}
    config = decode_robot_config(robot_type, options)
    assert type(config) is config_class
    if with_cameras:
        assert set(CAMERAS) <= set(config.cameras)
        assert type(config.cameras["front"]).__name__ == "OpenCVCameraConfig"
        assert config.cameras["front"].width == 640


def test_a_camera_missing_a_field_says_which():
    options = {**ARM, "cameras": {"front": {"type": "opencv", "index_or_path": 0, "fps": 30}}}
    with pytest.raises(ValueError, match=r"SOFollowerRobotConfig.*Specifying 'width' is required"):
        decode_robot_config("so101_follower", options)


def test_a_camera_type_that_does_not_exist_is_named_in_the_error():
    options = {**ARM, "cameras": {"front": {"type": "webcam9000", "index_or_path": 0}}}
    with pytest.raises(ValueError, match=r"do not fit SOFollowerRobotConfig.*webcam9000"):
        decode_robot_config("so101_follower", options)
