"""`run_loop`: a fixed-rate control loop that reads, feeds the engine, and acts — never waits on it.

Tick k is due at `start + k / fps`, computed from the start rather than by accumulating
sleeps, so the rate does not drift. A tick that overruns its period is not made up for with a
burst: the missed ticks are skipped and counted. A `None` action means hold (nothing is sent).

A `TickRecorder` sees every tick: what the robot observed, what it was sent, where that action
came from (`ActionProvenance`), the engine's state and buffer. It only takes the record over —
writing happens on its own thread — so recording adds a hand-over per tick, never disk time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from policylink.client.action_queue import ActionProvenance
from policylink.client.engine import Engine, EngineState
from policylink.client.robot import Robot, RobotLayout
from policylink.wire.messages import Observation

logger = logging.getLogger(__name__)

TickCallback = Callable[[int, dict, np.ndarray | None], None]


@dataclass(frozen=True)
class TickRecord:
    """One control tick as the loop lived it.

    `tick` is the tick's index in the loop's schedule (overrun ticks leave gaps), `mono_ns` the
    monotonic time it began. `action` is what the robot was sent (None: held), `provenance`
    where it came from (None: the engine's fallback played). The observation's arrays are the
    robot's own, handed over without a copy: a robot must not overwrite an image it returned.
    """

    tick: int
    mono_ns: int
    observation: Observation
    action: np.ndarray | None
    provenance: ActionProvenance | None
    engine_state: EngineState
    queue_depth: int


class TickRecorder(Protocol):
    def record_tick(self, record: TickRecord) -> None:
        """Runs inside the tick: take the record over and return (see `TickRecord`)."""
        ...


@dataclass
class LoopStats:
    ticks: int = 0
    actions_sent: int = 0
    held_ticks: int = 0
    skipped_ticks: int = 0
    max_tick_s: float = 0.0
    stopped_because: str = ""


def run_loop(
    robot: Robot,
    engine: Engine,
    fps: float,
    *,
    duration_s: float | None = None,
    stop: threading.Event | None = None,
    task: str = "",
    layout: RobotLayout | None = None,
    manage_lifecycle: bool = True,
    on_tick: TickCallback | None = None,
    recorder: TickRecorder | None = None,
) -> LoopStats:
    """Drive `robot` from `engine` at `fps` until `duration_s`, `stop`, or the engine dies.

    With `manage_lifecycle` the loop connects the robot, starts the engine, and always stops
    the engine and disconnects the robot on the way out; otherwise the caller owns both.
    `on_tick(tick, observation, action)` runs inside the tick (keep it short); `recorder`
    gets a `TickRecord` of every tick, after the action was sent.
    """
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if abs(fps - engine.fps) > 1e-9 * fps:
        raise ValueError(
            f"run_loop fps={fps:g} differs from the engine's fps={engine.fps:g}; set "
            "ClientConfig.fps to the loop rate so delays and buffer times are computed right"
        )
    layout = layout or RobotLayout.of(robot)
    stats = LoopStats()
    started_engine = connected_robot = False
    try:
        if manage_lifecycle:
            if not getattr(robot, "is_connected", False):
                robot.connect()
                connected_robot = True
            engine.start()
            started_engine = True
        stats.stopped_because = _tick_forever(
            robot,
            engine,
            layout=layout,
            period_s=1.0 / fps,
            duration_s=duration_s,
            stop=stop,
            task=task,
            on_tick=on_tick,
            recorder=recorder,
            stats=stats,
        )
    finally:
        if started_engine:
            engine.stop()
        if connected_robot:
            robot.disconnect()
    logger.info(
        "control loop ended (%s): %d ticks, %d actions, %d held, %d skipped",
        stats.stopped_because,
        stats.ticks,
        stats.actions_sent,
        stats.held_ticks,
        stats.skipped_ticks,
    )
    return stats


def _tick_forever(
    robot: Robot,
    engine: Engine,
    *,
    layout: RobotLayout,
    period_s: float,
    duration_s: float | None,
    stop: threading.Event | None,
    task: str,
    on_tick: TickCallback | None,
    recorder: TickRecorder | None,
    stats: LoopStats,
) -> str:
    start = time.perf_counter()
    tick = 0
    while True:
        if stop is not None and stop.is_set():
            return "stop requested"
        if engine.failed:
            return "engine failed"
        began = time.perf_counter()
        if duration_s is not None and began - start >= duration_s:
            return "duration reached"
        began_ns = time.monotonic_ns()
        raw = robot.get_observation()
        observation = layout.observation(raw, task)
        engine.notify_observation(observation)
        action = engine.get_action()
        if action is None:
            stats.held_ticks += 1
        else:
            robot.send_action(layout.action_dict(action))
            stats.actions_sent += 1
        if recorder is not None:
            recorder.record_tick(
                TickRecord(
                    tick,
                    began_ns,
                    observation,
                    action,
                    engine.last_provenance(),
                    engine.state,
                    engine.queue_depth,
                )
            )
        if on_tick is not None:
            on_tick(tick, raw, action)
        stats.ticks += 1
        tick += 1
        now = time.perf_counter()
        stats.max_tick_s = max(stats.max_tick_s, now - began)
        due = start + tick * period_s
        if now - due > period_s:
            missed = int((now - due) // period_s)
            tick += missed
            stats.skipped_ticks += missed
            due = start + tick * period_s
        if due > now:
            time.sleep(due - now)
