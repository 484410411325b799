"""`policylink export lerobot` outside the LeRobot environment says how to run it there."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from policylink.client import RobotLayout
from policylink.episodes import Recorder
from tests.demo.conftest import policylink

from .conftest import require, sim_arm


@pytest.mark.skipif(
    importlib.util.find_spec("lerobot") is not None,
    reason="LeRobot is installed here: tests/lerobot/test_export_dataset.py exports",
)
def test_without_lerobot_the_export_names_the_environment_that_has_it(tmp_path: Path):
    require("av")
    require("pyarrow")
    robot = sim_arm()
    Recorder(tmp_path / "run", RobotLayout.of(robot), fps=robot.task.fps).close()

    result = policylink("export", "lerobot", str(tmp_path / "run"), "--out", str(tmp_path / "ds"))
    assert result.returncode == 2
    # Typer wraps the message in a box: read it without the frame and line breaks.
    message = " ".join(re.sub(r"[│╭╮╰╯─]", " ", result.stderr).split())
    assert "make setup-lerobot" in message
    assert ".venv-lerobot/bin/policylink export lerobot" in message
    assert not (tmp_path / "ds").exists()
