"""The reach-then-track task: phases, success and time to completion of one episode.

Phase one, *reach*: the target sits still and the end effector must come within
`reach_tolerance_m` of it. Phase two, *track*: the target starts moving and the episode
succeeds once the end effector has spent `track_s` seconds (not necessarily in one stretch)
within `track_tolerance_m` of it. Reaching rewards moving at full speed without pauses;
tracking rewards fresh plans executed on time. An episode that has not succeeded after
`max_episode_s` fails.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from policylink.sim.arm import ArmGeometry
from policylink.sim.target import TargetMotion, TargetPath


@dataclass(frozen=True)
class ReachTrackConfig:
    fps: float = 30.0
    geometry: ArmGeometry = field(default_factory=ArmGeometry)
    motion: TargetMotion = field(default_factory=TargetMotion)
    reach_tolerance_m: float = 0.02
    track_tolerance_m: float = 0.02
    track_s: float = 3.0
    max_episode_s: float = 30.0

    def __post_init__(self) -> None:
        for name in ("fps", "reach_tolerance_m", "track_tolerance_m", "track_s", "max_episode_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")

    @property
    def dt(self) -> float:
        return 1.0 / self.fps


@dataclass
class EpisodeResult:
    """What one episode achieved; times are simulated seconds since the episode began."""

    episode: int
    success: bool
    completion_s: float | None
    duration_s: float
    reach_s: float | None
    mean_tracking_error_m: float | None
    steps: int
    steps_without_action: int

    def describe(self) -> str:
        if self.completion_s is not None:
            return f"succeeded in {self.completion_s:.2f} s"
        return f"failed after {self.duration_s:.2f} s"


class ReachTrackEpisode:
    """Scores one episode step by step; knows nothing of joints, cameras or clocks."""

    def __init__(self, config: ReachTrackConfig, index: int, seed: int) -> None:
        self.config = config
        self.index = index
        self.path = TargetPath(config.motion, np.random.default_rng(seed))
        self.steps = 0
        self.reach_s: float | None = None
        self.completion_s: float | None = None
        self.on_target_steps = 0
        self._steps_to_succeed = math.ceil(config.track_s * config.fps - 1e-9)
        self._tracking_error_sum = 0.0
        self._tracking_steps = 0

    @property
    def elapsed_s(self) -> float:
        return self.steps / self.config.fps

    @property
    def tracking(self) -> bool:
        return self.reach_s is not None

    @property
    def done(self) -> bool:
        return self.completion_s is not None or self.elapsed_s >= self.config.max_episode_s

    def target(self, elapsed_s: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Target position and velocity; it stands still until the arm has reached it."""
        elapsed = self.elapsed_s if elapsed_s is None else elapsed_s
        if self.reach_s is None:
            return self.path.position(0.0), np.zeros(2)
        moving_s = elapsed - self.reach_s
        return self.path.position(moving_s), self.path.velocity(moving_s)

    def step(self, end_effector: np.ndarray) -> None:
        """Advance one control period with the end effector where the arm ended it."""
        if self.done:
            return
        self.steps += 1
        error = float(np.linalg.norm(end_effector - self.target()[0]))
        if self.reach_s is None:
            if error <= self.config.reach_tolerance_m:
                self.reach_s = self.elapsed_s
            return
        self._tracking_error_sum += error
        self._tracking_steps += 1
        if error <= self.config.track_tolerance_m:
            self.on_target_steps += 1
        if self.on_target_steps >= self._steps_to_succeed:
            self.completion_s = self.elapsed_s

    def result(self, steps_without_action: int) -> EpisodeResult:
        return EpisodeResult(
            episode=self.index,
            success=self.completion_s is not None,
            completion_s=self.completion_s,
            duration_s=self.elapsed_s,
            reach_s=self.reach_s,
            mean_tracking_error_m=(
                self._tracking_error_sum / self._tracking_steps if self._tracking_steps else None
            ),
            steps=self.steps,
            steps_without_action=steps_without_action,
        )
