"""The expert's plan: a chunk of future joint targets for the reach-then-track task.

The plan is time-indexed from the observation: step k is where the joints should be k+1 control
periods after the observation was taken. It extrapolates the target at its current velocity
(all a single observation tells) and moves each joint toward the matching inverse-kinematics
solution no faster than the servos can follow. Executed on time, the early steps track the
target closely and the late ones drift off the curve; executed late, every step is behind.

Given the robot's unexecuted prefix and the inference delay (real-time chunking), the steps the
robot will run before the chunk arrives are kept verbatim and planning continues from where
they leave the arm, so consecutive chunks join without a jump.
"""

from __future__ import annotations

import numpy as np

from policylink.sim.arm import ArmGeometry, inverse_kinematics, step_toward


def plan_chunk(
    state: np.ndarray,
    geometry: ArmGeometry,
    fps: float,
    chunk_size: int,
    *,
    prefix: np.ndarray | None = None,
    delay: int = 0,
) -> np.ndarray:
    """`state` in `SimArm` order (joints, target position, target velocity) → `[T, 3]` float32."""
    joints, position, velocity = state[:3], state[3:5], state[5:7]
    horizon = np.arange(1, chunk_size + 1)[:, None] / fps
    goals = inverse_kinematics(geometry, position + velocity * horizon)
    max_step = geometry.joint_speed / fps
    plan = np.empty((chunk_size, 3), dtype=np.float32)
    current = np.asarray(joints, dtype=np.float64)
    kept = 0
    if prefix is not None and prefix.shape[0] and delay > 0:
        kept = min(delay, prefix.shape[0], chunk_size)
        plan[:kept] = prefix[:kept]
        current = np.asarray(prefix[kept - 1], dtype=np.float64)
    for step in range(kept, chunk_size):
        current = step_toward(current, goals[step], max_step)
        plan[step] = current
    return plan
