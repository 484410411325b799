"""`policylink run --record DIR`, then `report` and `audit join` on DIR, as a user runs them;
and a demo's run folder, which records each robot once per engine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from policylink.client import RobotLayout
from policylink.episodes import Recorder, open_recordings
from policylink.server.app import ServerApp
from tests.demo.conftest import endpoint_of, expert_manifest, policylink

from .conftest import require, sim_arm

SMALL_ARM = ("run", "--robot", "sim:reach_track", "-o", "height=96", "-o", "width=128")


@pytest.fixture(autouse=True)
def _extras() -> None:
    require("av")
    require("pyarrow")


def test_a_recorded_run_opens_renders_and_joins_the_servers_audit(tmp_path: Path, audit_file: Path):
    run_dir = tmp_path / "run"
    app = ServerApp(expert_manifest()).start()
    try:
        result = policylink(
            *SMALL_ARM,
            "--connect",
            endpoint_of(app),
            "--client-id",
            "arm-1",
            "--duration",
            "2",
            "--record",
            str(run_dir),
        )
    finally:
        app.stop()
    assert result.returncode == 0, result.stderr
    assert f"arm-1: recorded into {run_dir}" in result.stdout

    [recording] = open_recordings(run_dir)
    [episode] = recording.episodes
    assert recording.robot == "arm-1" and recording.info["client"]["client_id"] == "arm-1"
    assert episode.complete and episode.meta["server"]["model_id"] == app.manifest.model_id
    assert episode.ticks().num_rows == episode.meta["ticks"] > 30
    assert len(list(episode.frames("top"))) == episode.meta["frames"]

    report = policylink("report", str(run_dir))
    assert report.returncode == 0, report.stderr
    page = (run_dir / "report.html").read_text()
    assert "arm-1, episode 0" in page and "<video" in page

    joined = policylink(
        "audit", "join", "--run", str(run_dir), "--audit", str(audit_file), "--json"
    )
    assert joined.returncode == 0, joined.stderr
    [join] = json.loads(joined.stdout)
    assert join["executed"] > 0 and join["matched"] == join["executed"]


def test_recordings_of_one_robot_id_in_one_run_are_told_apart_by_their_folder(tmp_path: Path):
    robot = sim_arm()
    for phase in ("async", "sync"):
        Recorder(tmp_path / phase / "arm", RobotLayout.of(robot), fps=30.0, robot="arm").close()

    assert [r.name for r in open_recordings(tmp_path)] == ["async/arm", "sync/arm"]
    assert [r.name for r in open_recordings(tmp_path / "sync")] == ["arm"]
