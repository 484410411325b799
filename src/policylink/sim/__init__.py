"""Simulated robots for demos, tests and benchmarks: numpy only, no torch, no gymnasium.

`SimArm` is the built-in reach-then-track task and `policylink.sim.expert` the policy that
solves it; `policylink.sim.gym_robot.GymRobot` (needs the `sim` extra) adapts gymnasium
environments.
"""

from policylink.sim.camera import CameraConfig
from policylink.sim.clock import ManualClock
from policylink.sim.robot import ACTION_NAMES, STATE_NAMES, SimArm
from policylink.sim.task import EpisodeResult, ReachTrackConfig

__all__ = [
    "ACTION_NAMES",
    "STATE_NAMES",
    "CameraConfig",
    "EpisodeResult",
    "ManualClock",
    "ReachTrackConfig",
    "SimArm",
]
