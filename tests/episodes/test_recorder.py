"""The recorder on the robot: videos, one row per tick, provenance, never in the loop's way."""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path

import numpy as np
import pytest

from policylink.client import ClientConfig, RemoteEngine, RobotLayout, run_loop
from policylink.episodes import EpisodeFiles, Recorder, Recording
from policylink.episodes.audit_join import join_recordings, read_audit
from tests.demo.conftest import endpoint_of, expert_manifest, policylink
from tests.support.servers import in_process_servers

from .conftest import CAMERAS, local_engine, record_episodes, require, sim_arm


@pytest.fixture(autouse=True)
def _extras() -> None:
    require("av")
    require("pyarrow")


def test_each_episode_has_a_row_per_tick_and_a_video_frame_per_row(tmp_path: Path):
    robot = sim_arm()
    recorder = Recorder(tmp_path, RobotLayout.of(robot), fps=robot.task.fps, lossless=True)
    ticks = record_episodes(robot, local_engine(robot), recorder, episodes=2)

    recording = Recording.open(tmp_path)
    assert [e.index for e in recording.episodes] == [0, 1]
    for episode, count in zip(recording.episodes, ticks, strict=True):
        table = episode.ticks()
        assert episode.complete and episode.meta["outcome"] == {"success": True}
        assert table.num_rows == count == episode.meta["ticks"]
        assert table.column("frame").to_pylist() == list(range(count))
        for camera in CAMERAS:
            frames = list(episode.frames(camera.name))
            assert len(frames) == count
            assert frames[0][1].shape == (camera.height, camera.width, 3)
            assert [tick for tick, _ in frames] == table.column("tick").to_pylist()


def test_a_played_action_names_its_chunk_row_and_a_fallback_tick_names_the_fallback(
    tmp_path: Path,
):
    robot = sim_arm()
    recorder = Recorder(tmp_path, RobotLayout.of(robot), fps=robot.task.fps)
    record_episodes(robot, local_engine(robot), recorder, episodes=1)
    rows = Recording.open(tmp_path).episodes[0].ticks().to_pylist()

    played = [row for row in rows if row["action"] is not None]
    assert played and all(row["seq_id"] is not None and row["fallback"] is None for row in played)
    # Consecutive actions of one chunk are consecutive rows of it.
    for before, after in itertools.pairwise(played):
        if before["seq_id"] == after["seq_id"]:
            assert after["chunk_row"] - before["chunk_row"] == after["tick"] - before["tick"]
    # The first tick of an episode has nothing to play yet: it holds.
    assert rows[0]["action"] is None and rows[0]["fallback"] == "hold"


def test_provenance_matches_the_servers_audit_lines(tmp_path: Path, audit_file: Path):
    robot = sim_arm()
    with in_process_servers() as start:
        cameras = [{"name": c.name, "height": c.height, "width": c.width} for c in CAMERAS]
        data = expert_manifest().model_dump(mode="json")
        data["policy"]["params"]["cameras"] = cameras
        app = start(data)
        config = ClientConfig(endpoint=endpoint_of(app), fps=robot.task.fps)
        engine = RemoteEngine(config, RobotLayout.of(robot))
        recorder = Recorder(tmp_path, RobotLayout.of(robot), fps=robot.task.fps)
        record_episodes(robot, engine, recorder, episodes=2)

    recording = Recording.open(tmp_path)
    identity = recording.episodes[0].meta["server"]
    assert identity["model_id"] == app.manifest.model_id and identity["replica"]
    audit = read_audit(audit_file)
    joins = join_recordings([recording], audit)
    for join in joins:
        assert join.executed > 0 and join.matched == join.executed and not join.unmatched
    for row in recording.episodes[1].ticks().to_pylist():
        if row["seq_id"] is None:
            continue
        line = audit[(row["session_id"], row["seq_id"])]
        assert line["episode_id"] == row["episode_id"]
        assert line["inference_ms"] == pytest.approx(row["inference_ms"], abs=1e-3)
        assert line["queue_wait_ms"] == pytest.approx(row["queue_wait_ms"], abs=1e-3)
        assert row["rtt_ms"] >= row["inference_ms"]

    result = policylink(
        "audit", "join", "--run", str(tmp_path), "--audit", str(audit_file), "--json"
    )
    assert result.returncode == 0, result.stderr
    [_, second] = json.loads(result.stdout)
    assert second["matched"] == second["executed"] == joins[1].executed
    assert second["mean_ms"]["forward_ms"] > 0


class SlowDisk(EpisodeFiles):
    """A disk that takes 150 ms per frame: five times slower than the loop produces them."""

    def write_frames(self, tick: int, images: dict[str, np.ndarray]) -> None:
        time.sleep(0.15)
        super().write_frames(tick, images)


def test_a_slow_disk_drops_frames_but_never_delays_a_tick(tmp_path: Path):
    robot = sim_arm()
    recorder = Recorder(
        tmp_path, RobotLayout.of(robot), fps=robot.task.fps, max_pending_frames=5, files=SlowDisk
    )
    engine = local_engine(robot)
    with recorder, recorder.episode() as recording:
        stats = run_loop(robot, engine, robot.task.fps, duration_s=1.5, recorder=recording)
    meta = Recording.open(tmp_path).episodes[0].meta
    # Backpressure did happen: most frames were dropped ...
    assert meta["frames_dropped"] > stats.ticks / 2
    # ... yet no tick waited for the disk (a tick at 30 Hz has 33 ms), and every tick has a row.
    assert stats.max_tick_s < 0.03
    table = Recording.open(tmp_path).episodes[0].ticks()
    assert table.num_rows == stats.ticks
    assert table.column("frame").null_count == meta["frames_dropped"]


def test_lossless_recording_waits_for_the_disk_and_keeps_every_frame(tmp_path: Path):
    robot = sim_arm()
    recorder = Recorder(
        tmp_path,
        RobotLayout.of(robot),
        fps=robot.task.fps,
        lossless=True,
        max_pending_frames=2,
        files=SlowDisk,
    )
    with recorder, recorder.episode() as recording:
        stats = run_loop(
            robot, local_engine(robot), robot.task.fps, duration_s=1.0, recorder=recording
        )
    episode = Recording.open(tmp_path).episodes[0]
    assert episode.meta["frames_dropped"] == 0
    assert episode.ticks().column("frame").to_pylist() == list(range(stats.ticks))
    assert len(list(episode.frames("top"))) == stats.ticks
