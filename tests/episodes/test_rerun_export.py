"""`policylink export rerun DIR` writes a `.rrd` that Rerun reads back."""

from __future__ import annotations

from pathlib import Path

from policylink.client import RobotLayout
from policylink.episodes import Recorder, Recording
from tests.demo.conftest import policylink

from .conftest import CAMERAS, local_engine, record_episodes, require, sim_arm


def test_the_rrd_holds_cameras_state_actions_and_engine_state(tmp_path: Path):
    require("av")
    require("pyarrow")
    require("rerun")
    from rerun.chunk import RrdReader

    robot = sim_arm()
    recorder = Recorder(
        tmp_path, RobotLayout.of(robot), fps=robot.task.fps, robot="arm", lossless=True
    )
    [ticks] = record_episodes(robot, local_engine(robot), recorder, episodes=1)
    result = policylink("export", "rerun", str(tmp_path))
    assert result.returncode == 0, result.stderr

    store = RrdReader(tmp_path / "run.rrd").store()
    summary = str(store.summary())
    played = sum(
        a is not None for a in Recording.open(tmp_path).episodes[0].ticks()["action"].to_pylist()
    )
    assert f"/arm/episode-0/state rows={ticks} " in summary
    assert f"/arm/episode-0/action rows={played} " in summary
    for camera in CAMERAS:
        assert f"/arm/episode-0/camera/{camera.name} rows={ticks} " in summary
    assert "/arm/episode-0/engine_state rows=" in summary
    assert "Index(timeline:time)" in str(store.schema())
