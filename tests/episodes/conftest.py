"""Recorded runs for the episode tests: a sim arm, an engine, a recorder, a few episodes."""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from policylink.client import ClientConfig, Engine, LocalEngine, RobotLayout, run_loop
from policylink.episodes import Recorder
from policylink.policy.registry import PolicyConfig
from policylink.sim import CameraConfig, SimArm
from policylink.sim.expert import build
from policylink.sim.task import ReachTrackConfig

CAMERAS = (CameraConfig("top", 96, 128), CameraConfig("wrist", 64, 96, view="wrist"))
TRACK_S = 0.5


def require(module: str) -> None:
    """Skip without the `record`/`rerun` extras, except under CI, where they must be there."""
    if os.environ.get("CI") == "true":
        __import__(module)
    else:
        pytest.importorskip(module)


def sim_arm(seed: int = 0) -> SimArm:
    return SimArm(ReachTrackConfig(track_s=TRACK_S), cameras=CAMERAS, seed=seed)


def local_engine(robot: SimArm) -> LocalEngine:
    cameras = [{"name": c.name, "height": c.height, "width": c.width} for c in CAMERAS]
    policy = build(PolicyConfig(kind="sim_expert", params={"cameras": cameras}))
    return LocalEngine(policy, ClientConfig(fps=robot.task.fps), RobotLayout.of(robot))


def record_episodes(
    robot: SimArm, engine: Engine, recorder: Recorder, episodes: int, limit_s: float = 20.0
) -> list[int]:
    """Run `episodes` episodes to their end, each recorded; returns each one's tick count."""
    ticks = []
    robot.connect()
    engine.start()
    try:
        for _ in range(episodes):
            robot.reset()
            engine.reset()
            stop = threading.Event()
            end = functools.partial(_end_with_episode, robot, stop)
            with recorder.episode(server=engine.server_identity()) as recording:
                stats = run_loop(
                    robot,
                    engine,
                    robot.task.fps,
                    duration_s=limit_s,
                    stop=stop,
                    manage_lifecycle=False,
                    on_tick=end,
                    recorder=recording,
                )
                recording.outcome = {"success": robot.results[-1].success}
            ticks.append(stats.ticks)
    finally:
        engine.stop()
        robot.disconnect()
        recorder.close()
    return ticks


def _end_with_episode(robot: SimArm, stop: threading.Event, *_: object) -> None:
    if robot.episode_done:
        stop.set()


@pytest.fixture
def audit_file(tmp_path: Path) -> Iterator[Path]:
    """The server's audit lines, written as `policylink serve` writes them, into a file."""
    path = tmp_path / "server-audit.jsonl"
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(message)s"))
    audit = logging.getLogger("policylink.audit")
    level = audit.level
    audit.addHandler(handler)
    audit.setLevel(logging.INFO)
    try:
        yield path
    finally:
        audit.removeHandler(handler)
        audit.setLevel(level)
        handler.close()
