"""Drives `SimArm` with the expert policy in-process, with latency counted in control ticks.

It stands in for the network so the task's behaviour under delay can be specified without one:
a request made at tick n is answered at tick n + delay, with the delay's stale steps trimmed
(`trim=True`, what a latency-aware client does) or executed anyway (`trim=False`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from policylink.policy.base import ChunkBatch, Policy
from policylink.sim import ACTION_NAMES, STATE_NAMES, ManualClock, SimArm
from policylink.sim.task import EpisodeResult
from policylink.wire import Observation


def to_wire(robot: SimArm, observation: dict) -> Observation:
    return Observation(
        state=np.array([observation[name] for name in STATE_NAMES], dtype=np.float32),
        images={camera.config.name: observation[camera.config.name] for camera in robot.cameras},
    )


@dataclass
class Rollout:
    delay: int = 0
    request_below: int = 29
    trim: bool = True
    blocking: bool = False

    def episode(self, robot: SimArm, clock: ManualClock, policy: Policy) -> EpisodeResult:
        """One episode; `blocking` executes each whole chunk, then waits `delay` ticks idle."""
        processor = policy.make_processor()
        dt = 1.0 / robot.task.fps
        robot.reset()
        queue: list[np.ndarray] = []
        pending: np.ndarray | None = None
        ticks_to_arrival = 0
        while not robot.episode_done:
            observation = robot.get_observation()
            if self.blocking and not queue:
                clock.advance(self.delay * dt)
                sample = processor.preprocess(to_wire(robot, robot.get_observation()))
                queue = list(policy.predict_chunk(ChunkBatch([sample]))[0])
            if not self.blocking and pending is None and len(queue) <= self.request_below:
                sample = processor.preprocess(to_wire(robot, observation))
                pending = policy.predict_chunk(ChunkBatch([sample], [self.delay]))[0]
                ticks_to_arrival = self.delay
            if pending is not None and ticks_to_arrival == 0:
                queue = list(pending[self.delay if self.trim else 0 :])
                pending = None
            ticks_to_arrival -= 1
            if queue:
                robot.send_action(dict(zip(ACTION_NAMES, queue.pop(0).tolist(), strict=True)))
            clock.advance(dt)
        return robot.results[-1]

    def episodes(self, policy: Policy, count: int, seed: int = 0) -> list[EpisodeResult]:
        clock = ManualClock()
        robot = SimArm(cameras=(), seed=seed, clock=clock)
        return [self.episode(robot, clock, policy) for _ in range(count)]
