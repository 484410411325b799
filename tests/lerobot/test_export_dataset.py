"""`policylink export lerobot DIR` writes a dataset that LeRobot's own `LeRobotDataset` loads,
offline, with the recorded frames, features and episode boundaries."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from policylink.client import RobotLayout
from policylink.episodes import Recorder, Recording
from tests.demo.conftest import policylink
from tests.episodes.conftest import CAMERAS, local_engine, record_episodes, require, sim_arm

pytest.importorskip("lerobot", reason="LeRobot lives in its own environment: make test-lerobot")

REPO_ID = "policylink/sim-arm"
ROBOT_TYPE = "policylink_sim_arm"
# LeRobot re-encodes the recorded H.264 (AV1 by default): two lossy generations of a small
# synthetic image. Mean absolute error per pixel, on a 0..255 scale: about 2 measured, while
# the first frame differs from later ones by 3 to 11.
CODEC_TOLERANCE = 4.0


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Recording:
    """Two short episodes of the sim arm, lossless: frame N of each video is tick row N."""
    require("av")
    require("pyarrow")
    require("datasets")
    folder = tmp_path_factory.mktemp("run")
    robot = sim_arm()
    recorder = Recorder(
        folder, RobotLayout.of(robot), fps=robot.task.fps, robot="arm", lossless=True
    )
    record_episodes(robot, local_engine(robot), recorder, episodes=2)
    return Recording.open(folder)


def export(recording: Recording, out: Path, *flags: str) -> Path:
    result = policylink(
        "export", "lerobot", str(recording.dir), "--out", str(out), "--repo-id", REPO_ID, *flags
    )
    assert result.returncode == 0, result.stderr
    assert "lerobot dataset:" in result.stdout
    return out


@pytest.fixture(scope="module")
def exported(recording: Recording, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The recording exported with the defaults (ticks without an action skipped)."""
    return export(
        recording, tmp_path_factory.mktemp("export") / "dataset", "--robot-type", ROBOT_TYPE
    )


def load(root: Path) -> Any:
    import huggingface_hub.constants
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    # Set by the conftest before the hub library loaded: any hub access raises.
    assert huggingface_hub.constants.HF_HUB_OFFLINE
    return LeRobotDataset(REPO_ID, root=root, video_backend="pyav")


def played_rows(recording: Recording) -> list[list[dict[str, Any]]]:
    """Per episode, the rows whose tick sent the robot an action: what `skip` exports."""
    return [
        [row for row in episode.ticks().to_pylist() if row["action"] is not None]
        for episode in recording.episodes
    ]


def test_every_played_tick_is_a_frame_of_its_recorded_episode(recording: Recording, exported: Path):
    dataset = load(exported)
    expected = played_rows(recording)

    assert dataset.num_episodes == 2
    assert dataset.num_frames == sum(len(rows) for rows in expected)
    assert dataset.meta.episodes["length"] == [len(rows) for rows in expected]
    data = dataset.hf_dataset
    assert data["episode_index"][:] == [i for i, rows in enumerate(expected) for _ in rows]
    assert data["frame_index"][:] == [i for rows in expected for i in range(len(rows))]
    states = np.stack([row["state"] for rows in expected for row in rows])
    actions = np.stack([row["action"] for rows in expected for row in rows])
    np.testing.assert_array_equal(np.stack(data["observation.state"][:]), states)
    np.testing.assert_array_equal(np.stack(data["action"][:]), actions)
    ticks = [row["tick"] for rows in expected for row in rows]
    assert np.ravel(data["policylink.tick"][:]).tolist() == ticks
    assert dataset.meta.tasks.index.tolist() == ["unspecified"]
    assert dataset.meta.robot_type == ROBOT_TYPE


def test_features_name_the_robots_state_actions_and_cameras(recording: Recording, exported: Path):
    features = load(exported).features

    assert features["observation.state"]["names"] == recording.info["state_names"]
    assert features["action"]["names"] == recording.info["action_names"]
    for camera in CAMERAS:
        video = features[f"observation.images.{camera.name}"]
        assert video["dtype"] == "video"
        assert tuple(video["shape"]) == (camera.height, camera.width, 3)


def test_camera_frames_are_the_recorded_ones_within_codec_tolerance(
    recording: Recording, exported: Path
):
    dataset = load(exported)
    rows = [row for rows in played_rows(recording) for row in rows]
    episode_of = [i for i, rows in enumerate(played_rows(recording)) for _ in rows]
    recorded = {
        camera.name: [
            dict(enumerate(image for _, image in episode.frames(camera.name)))
            for episode in recording.episodes
        ]
        for camera in CAMERAS
    }
    for index in (0, len(rows) // 2, len(rows) - 1):
        item = dataset[index]
        for camera in CAMERAS:
            image = item[f"observation.images.{camera.name}"]
            assert tuple(image.shape) == (3, camera.height, camera.width)
            pixels = image.permute(1, 2, 0).numpy() * 255.0
            truth = recorded[camera.name][episode_of[index]][rows[index]["frame"]]
            error = np.abs(pixels - truth.astype(np.float32)).mean()
            assert error < CODEC_TOLERANCE, f"{camera.name} frame {index}: mean error {error:.1f}"


def test_hold_labels_fallback_ticks_with_the_last_action(recording: Recording, tmp_path):
    export(recording, tmp_path / "dataset", "--no-action", "hold", "--task", "reach the target")
    dataset = load(tmp_path / "dataset")

    # Every tick from an episode's first action on is a frame; the ticks before it are not.
    lengths = []
    for episode in recording.episodes:
        actions = episode.ticks().column("action").to_pylist()
        first = next(i for i, action in enumerate(actions) if action is not None)
        lengths.append(len(actions) - first)
    assert dataset.meta.episodes["length"] == lengths
    assert dataset.meta.tasks.index.tolist() == ["reach the target"]
