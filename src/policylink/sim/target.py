"""The moving target: where it is, how fast it moves, and why a stale plan misses it.

Each axis is a sum of two sinusoids with random frequencies and phases drawn per episode. The
path is smooth but curves all the time, so a plan that extrapolates the target's current
velocity is good for a fraction of a second and drifts after that: an old chunk, or one
executed late, steers the arm to where the target used to be heading.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TargetMotion:
    """Ranges the per-episode path is drawn from."""

    amplitude_m: float = 0.1
    frequency_rad_s: tuple[float, float] = (1.2, 2.2)
    centre_radius_m: tuple[float, float] = (0.42, 0.52)
    centre_bearing_rad: tuple[float, float] = (-1.0, 1.0)


class TargetPath:
    """One episode's path; `t` is seconds since the target started moving."""

    def __init__(self, motion: TargetMotion, rng: np.random.Generator) -> None:
        radius = rng.uniform(*motion.centre_radius_m)
        bearing = rng.uniform(*motion.centre_bearing_rad)
        self.centre = radius * np.array([np.cos(bearing), np.sin(bearing)])
        self._amplitude = motion.amplitude_m / 2 * rng.uniform(0.7, 1.0, size=(2, 2))
        self._frequency = rng.uniform(*motion.frequency_rad_s, size=(2, 2))
        self._phase = rng.uniform(0.0, 2 * np.pi, size=(2, 2))

    def position(self, t: float) -> np.ndarray:
        angle = self._frequency * t + self._phase
        return self.centre + (self._amplitude * np.sin(angle)).sum(axis=1)

    def velocity(self, t: float) -> np.ndarray:
        angle = self._frequency * t + self._phase
        return (self._amplitude * self._frequency * np.cos(angle)).sum(axis=1)
