"""A LeRobot robot plugin laid out like a `lerobot_robot_*` package: config and robot modules,
both exported here, where LeRobot's factory looks for the robot class."""

from tests.lerobot.sim_arm.config_sim_arm import SimArmConfig
from tests.lerobot.sim_arm.sim_arm import SimArm

__all__ = ["SimArm", "SimArmConfig"]
