"""Kinematics of the simulated arm: a three-link planar arm seen from above.

The wrist always points along the ray from the base to the target. That removes the redundancy
of three joints for a two-dimensional goal, so inverse kinematics is closed-form, vectorised
over a whole chunk, and never jumps between solutions from one step to the next.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

JOINT_NAMES = ("shoulder", "elbow", "wrist")


@dataclass(frozen=True)
class ArmGeometry:
    """Link lengths (metres) and the joint speed limit that makes latency matter.

    A servo cannot jump: each control step moves a joint at most `joint_speed / fps`. A plan that
    starts late therefore cannot make up for the lost time instantly.
    """

    links: tuple[float, float, float] = (0.35, 0.30, 0.10)
    joint_speed: float = 1.5

    @property
    def min_reach(self) -> float:
        return abs(self.links[0] - self.links[1]) + self.links[2]

    @property
    def max_reach(self) -> float:
        return sum(self.links)


def joint_points(geometry: ArmGeometry, q: np.ndarray) -> np.ndarray:
    """`[4, 2]`: base, elbow, wrist and end-effector positions for joint angles `q`."""
    angles = np.cumsum(q)
    steps = (
        np.stack([np.cos(angles), np.sin(angles)], axis=-1) * np.asarray(geometry.links)[:, None]
    )
    return np.vstack([np.zeros(2), np.cumsum(steps, axis=0)])


def end_effector(geometry: ArmGeometry, q: np.ndarray) -> np.ndarray:
    return joint_points(geometry, q)[-1]


def clip_to_workspace(
    geometry: ArmGeometry, points: np.ndarray, margin: float = 1e-3
) -> np.ndarray:
    """Project points onto the reachable annulus so inverse kinematics always has a solution."""
    radius = np.linalg.norm(points, axis=-1, keepdims=True)
    clipped = np.clip(radius, geometry.min_reach + margin, geometry.max_reach - margin)
    return points * clipped / np.maximum(radius, 1e-9)


def inverse_kinematics(geometry: ArmGeometry, points: np.ndarray) -> np.ndarray:
    """`[..., 2]` end-effector positions → `[..., 3]` joint angles (elbow on the positive side)."""
    points = clip_to_workspace(geometry, np.asarray(points, dtype=np.float64))
    l1, l2, l3 = geometry.links
    heading = np.arctan2(points[..., 1], points[..., 0])
    wrist_radius = np.linalg.norm(points, axis=-1) - l3
    cos_elbow = (wrist_radius**2 - l1**2 - l2**2) / (2 * l1 * l2)
    elbow = np.arccos(np.clip(cos_elbow, -1.0, 1.0))
    offset = np.arctan2(l2 * np.sin(elbow), l1 + l2 * np.cos(elbow))
    return np.stack([heading - offset, elbow, offset - elbow], axis=-1)


# Where each episode starts: folded close to the base, short of every target.
HOME_POINT = np.array([0.22, 0.0])


def step_toward(current: np.ndarray, target: np.ndarray, max_step: float) -> np.ndarray:
    """One servo update: move each joint toward its target by at most `max_step` radians."""
    return current + np.clip(target - current, -max_step, max_step)
