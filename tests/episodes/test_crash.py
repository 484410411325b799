"""A control loop killed mid-episode leaves a recording readable up to its last flush."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from policylink.episodes import Recording
from tests.support.waiting import wait_for

from .conftest import CAMERAS, require

LOOP = """
import sys
from pathlib import Path
from policylink.client import RobotLayout, run_loop
from policylink.episodes import Recorder
from tests.episodes.conftest import local_engine, sim_arm

robot = sim_arm()
recorder = Recorder(Path(sys.argv[1]), RobotLayout.of(robot), fps=robot.task.fps)
with recorder.episode() as recording:
    run_loop(robot, local_engine(robot), robot.task.fps, duration_s=60, recorder=recording)
"""


@pytest.fixture(autouse=True)
def _extras() -> None:
    require("av")
    require("pyarrow")


def test_a_killed_loop_leaves_videos_and_ticks_up_to_the_last_flush(tmp_path: Path):
    root = tmp_path / "recording"
    parts = root / "episode-000000" / "ticks.parts"
    # The repository root is the child's working directory, so it imports these tests.
    child = subprocess.Popen([sys.executable, "-c", LOOP, str(root)], cwd=Path.cwd())
    try:
        wait_for(lambda: len(list(parts.glob("part-*.parquet"))) >= 2, 60, "two flushed parts")
    finally:
        child.kill()
        child.wait()

    [episode] = Recording.open(root).episodes
    assert episode.meta["status"] == "recording"
    table = episode.ticks()
    fps = Recording.open(root).fps
    assert table.num_rows >= 2 * fps
    for camera in CAMERAS:
        frames = list(episode.frames(camera.name))
        # A fragment per second: at least the first one is complete and decodes whole.
        assert len(frames) >= fps
        assert frames[0][1].shape == (camera.height, camera.width, 3)
        ticks = [tick for tick, _ in frames]
        assert ticks == sorted(set(ticks))
