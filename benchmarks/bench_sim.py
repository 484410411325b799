"""What one simulated robot costs per control tick, next to the 33 ms period of a 30 Hz loop.

Four arms at 30 Hz share two cores with the server in the demo, so a frame must cost well
under a millisecond or two. Measured: a 480x640 top-camera frame, a wrist-camera frame, a
whole `get_observation` with each camera set, and one expert chunk (30 steps, no backbone).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from policylink.policy.base import ChunkBatch
from policylink.policy.registry import PolicyConfig, build_policy
from policylink.sim import STATE_NAMES, CameraConfig, ManualClock, SimArm
from policylink.sim.arm import joint_points
from policylink.sim.camera import Camera
from policylink.wire import Observation

PERIOD_MS = 1000 / 30


def _median_ms(action: Callable[[], object], repeats: int) -> float:
    action()
    samples = []
    for _ in range(repeats):
        began = time.perf_counter()
        action()
        samples.append((time.perf_counter() - began) * 1e3)
    return statistics.median(samples)


def run(quick: bool = False) -> dict[str, Any]:
    repeats = 20 if quick else 300
    clock = ManualClock()
    top = Camera(CameraConfig("top"))
    wrist = Camera(CameraConfig("wrist", view="wrist"))
    robot = SimArm(clock=clock)
    points = joint_points(robot.task.geometry, np.array([0.3, 1.2, -0.4]))
    target = np.array([0.45, 0.1])
    both = SimArm(cameras=(CameraConfig("top"), CameraConfig("wrist", view="wrist")), clock=clock)
    expert = build_policy(PolicyConfig(kind="sim_expert"))
    observation = robot.get_observation()
    sample = expert.make_processor().preprocess(
        Observation(state=np.array([observation[n] for n in STATE_NAMES], dtype=np.float32))
    )

    def tick(arm: SimArm) -> Callable[[], object]:
        def step() -> object:
            clock.advance(1 / 30)
            return arm.get_observation()

        return step

    results = {
        "top_frame_480x640_ms": _median_ms(lambda: top.render(points, target), repeats),
        "wrist_frame_480x640_ms": _median_ms(lambda: wrist.render(points, target), repeats),
        "observation_one_camera_ms": _median_ms(tick(robot), repeats),
        "observation_two_cameras_ms": _median_ms(tick(both), repeats),
        "expert_chunk_ms": _median_ms(lambda: expert.predict_chunk(ChunkBatch([sample])), repeats),
    }
    print(f"{'per tick':<28} {'median':>9} {'of a 30 Hz period':>18}")
    for name, value in results.items():
        print(f"{name:<28} {value:>7.3f}ms {value / PERIOD_MS:>17.1%}")
    return results
