"""`SimArm`: the reach-then-track task as a robot with LeRobot's duck type.

Time in the simulation follows a clock, not the calls made to the robot. Physics advances in
fixed control periods whenever the robot is read or commanded, so a control loop that blocks on
the network loses those periods exactly as a real arm would: the target keeps moving while the
arm holds its last command. Tests pass a `ManualClock` to step it deterministically.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from policylink.sim.arm import (
    HOME_POINT,
    JOINT_NAMES,
    inverse_kinematics,
    joint_points,
    step_toward,
)
from policylink.sim.camera import Camera, CameraConfig
from policylink.sim.task import EpisodeResult, ReachTrackConfig, ReachTrackEpisode

ACTION_NAMES = tuple(f"{joint}.pos" for joint in JOINT_NAMES)
STATE_NAMES = (*ACTION_NAMES, "target.x", "target.y", "target.vx", "target.vy")
JOINT_LIMIT_RAD = math.pi


class SimArm:
    """A position-controlled three-joint arm whose camera sees a target to reach and track.

    Each observation holds the joint angles (radians), the target's position and velocity as a
    tracker would report them, and one image per camera. An action is a joint position target;
    the servos move toward it at `joint_speed` and hold it until the next one arrives.
    """

    name = "sim_arm"

    def __init__(
        self,
        task: ReachTrackConfig | None = None,
        cameras: tuple[CameraConfig, ...] = (CameraConfig("top"),),
        seed: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.task = task or ReachTrackConfig()
        names = [camera.name for camera in cameras]
        if len(set(names)) != len(names):
            raise ValueError(f"camera names must be unique, got {names}")
        if set(names) & set(STATE_NAMES):
            raise ValueError(f"camera names must differ from state names {STATE_NAMES}")
        self.cameras = tuple(Camera(config) for config in cameras)
        self.seed = seed
        self.results: list[EpisodeResult] = []
        self._clock = clock
        self._connected = False
        self._home = inverse_kinematics(self.task.geometry, HOME_POINT)
        self._max_step = self.task.geometry.joint_speed / self.task.fps
        self._episode: ReachTrackEpisode | None = None
        self._next_index = 0
        self._start_s = 0.0
        self._q = self._home.copy()
        self._command = self._home.copy()
        self._fresh_command = False
        self._steps_without_action = 0

    @property
    def observation_features(self) -> dict[str, Any]:
        features: dict[str, Any] = dict.fromkeys(STATE_NAMES, float)
        for camera in self.cameras:
            features[camera.config.name] = (camera.config.height, camera.config.width, 3)
        return features

    @property
    def action_features(self) -> dict[str, type]:
        return dict.fromkeys(ACTION_NAMES, float)

    @property
    def is_connected(self) -> bool:
        return self._connected

    def connect(self, calibrate: bool = True) -> None:
        self._connected = True

    def disconnect(self) -> None:
        self._connected = False

    def reset(self) -> None:
        """Start the next episode from the home pose; an unfinished episode counts as failed."""
        if self._episode is not None and not self._episode.done and self._episode.steps:
            self.results.append(self._episode.result(self._steps_without_action))
        self._episode = ReachTrackEpisode(self.task, self._next_index, self._episode_seed())
        self._next_index += 1
        self._start_s = self._clock()
        self._q = self._home.copy()
        self._command = self._home.copy()
        self._fresh_command = False
        self._steps_without_action = 0

    def _episode_seed(self) -> int:
        return int(np.random.SeedSequence([self.seed, self._next_index]).generate_state(1)[0])

    @property
    def episode(self) -> ReachTrackEpisode:
        if self._episode is None:
            self.reset()
        assert self._episode is not None
        return self._episode

    @property
    def episode_done(self) -> bool:
        self._advance()
        return self.episode.done

    def get_observation(self) -> dict[str, Any]:
        self._advance()
        target, velocity = self.episode.target()
        observation: dict[str, Any] = dict(zip(ACTION_NAMES, self._q.tolist(), strict=True))
        observation |= {
            "target.x": float(target[0]),
            "target.y": float(target[1]),
            "target.vx": float(velocity[0]),
            "target.vy": float(velocity[1]),
        }
        points = joint_points(self.task.geometry, self._q)
        for camera in self.cameras:
            observation[camera.config.name] = camera.render(points, target)
        return observation

    def send_action(self, action: dict[str, Any]) -> dict[str, float]:
        """Command joint targets; returns what was sent after clipping to the joint limits."""
        missing = [name for name in ACTION_NAMES if name not in action]
        if missing:
            raise ValueError(f"action lacks {missing}; a SimArm action needs {list(ACTION_NAMES)}")
        command = np.array([float(action[name]) for name in ACTION_NAMES])
        if not np.all(np.isfinite(command)):
            raise ValueError(f"action has non-finite joint targets: {dict(action)}")
        self._advance()
        self._command = np.clip(command, -JOINT_LIMIT_RAD, JOINT_LIMIT_RAD)
        self._fresh_command = True
        return dict(zip(ACTION_NAMES, self._command.tolist(), strict=True))

    def _advance(self) -> None:
        """Run every control period that has ended on the clock since the last call."""
        episode = self.episode
        due = math.floor((self._clock() - self._start_s) * self.task.fps + 1e-9)
        while episode.steps < due and not episode.done:
            if not self._fresh_command:
                self._steps_without_action += 1
            self._fresh_command = False
            self._q = step_toward(self._q, self._command, self._max_step)
            episode.step(joint_points(self.task.geometry, self._q)[-1])
            if episode.done:
                self.results.append(episode.result(self._steps_without_action))
