from __future__ import annotations

from dataclasses import dataclass

from lerobot.robots import RobotConfig

ROBOT_TYPE = "policylink_sim_arm"


@RobotConfig.register_subclass(ROBOT_TYPE)
@dataclass
class SimArmConfig(RobotConfig):
    """`seed` picks the starting joints and the camera frame (those of
    `checkpoints.observation_arrays(seed)`); `action_log` receives every action sent, one JSON
    object per line, so a test can see what reached the motors."""

    camera: str = "front"
    seed: int = 0
    action_log: str | None = None
