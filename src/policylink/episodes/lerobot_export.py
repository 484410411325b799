"""A recording as a LeRobot dataset, written by the installed `lerobot` itself.

The dataset is whatever on-disk format that LeRobot writes (codebase v3.0 for 0.6):
`LeRobotDataset.create`, one `add_frame` per exported tick, one `save_episode` per recorded
episode, `finalize`. Writing through LeRobot rather than beside it keeps the format exactly the
one its `LeRobotDataset` loads, stats included. LeRobot needs Python >= 3.12 and its own torch,
so it lives in its own environment (`make setup-lerobot`); it is imported only when called.

Features: `observation.state` and `action` (float32, named by the recording's state and action
names), `observation.images.<camera>` (video, decoded from the recorded H.264 and re-encoded
with LeRobot's default codec: two generations of lossy coding), and the task. LeRobot adds
`timestamp`, `frame_index`, `episode_index`, `index` and `task_index`.

Which ticks become frames. A LeRobot frame pairs what the robot observed with the action it
was sent, at a fixed rate. A recorded tick is exported when

- it has its video frame (a tick whose frames the recorder dropped under backpressure, or
  past the last complete fragment of a crashed episode's video, is skipped);
- it has an action. A tick without one played the `hold` fallback: the buffer ran dry and the
  robot was sent nothing. `no_action="skip"` (the default) leaves it out, so the dataset holds
  only what was commanded and never teaches idling; `"hold"` labels it with the episode's last
  executed action (what a position-controlled robot keeps tracking when sent nothing) and
  still skips the ticks before the first action. Ticks played by the `repeat_last` or `zero`
  fallback carry the action the robot was sent and are kept as they are;
- it lies on the dataset's grid when `fps` is an integer fraction of the recording's rate.

LeRobot stamps frame i of an episode at i / fps, so skipped ticks close up: the dataset's time
runs evenly where the loop's schedule had gaps, and each frame carries its recorded tick
(`policylink.tick`): the way back to the tick table's provenance (session, request, chunk row,
latency) and through it to the server's audit. Episodes are the recorded ones, in order (robot
by robot for a fleet run); one that keeps no frame is left out and counted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from policylink.episodes.reader import Episode, Recording

NoAction = Literal["skip", "hold"]
NO_ACTION_CHOICES: tuple[NoAction, ...] = ("skip", "hold")
DEFAULT_TASK = "unspecified"
TICK_FEATURE = "policylink.tick"

LEROBOT_MISSING = (
    "writing a LeRobot dataset needs the `lerobot` package (Python >= 3.12, its own torch), "
    "which this environment lacks: build its environment with `make setup-lerobot` and run "
    "`.venv-lerobot/bin/policylink export lerobot ...`"
)


@dataclass
class LeRobotExport:
    """What an export wrote, and what it left out and why."""

    root: Path
    repo_id: str
    fps: int
    episodes: int = 0
    frames: int = 0
    skipped_no_action: int = 0
    skipped_no_frame: int = 0
    skipped_off_grid: int = 0
    empty_episodes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        text = (
            f"{self.episodes} episodes, {self.frames} frames at {self.fps} fps; skipped ticks: "
            f"{self.skipped_no_action} without an action, {self.skipped_no_frame} without a "
            f"video frame, {self.skipped_off_grid} off the {self.fps} fps grid"
        )
        if self.empty_episodes:
            text += f"; left out (no frame to export): {', '.join(self.empty_episodes)}"
        return text


def export_lerobot(
    recordings: list[Recording],
    root: Path,
    *,
    repo_id: str,
    fps: int | None = None,
    task: str | None = None,
    no_action: NoAction = "skip",
    robot_type: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> LeRobotExport:
    """Write `recordings` as one LeRobot dataset at `root` (which must not exist yet).
    `robot_type` (LeRobot's name for the hardware, e.g. `so101_follower`) goes into the
    dataset's metadata: a recording knows its robot's id, not its type."""
    if no_action not in NO_ACTION_CHOICES:
        raise ValueError(f"no_action must be one of {NO_ACTION_CHOICES}, got {no_action!r}")
    if root.exists():
        raise ValueError(f"{root} already exists; LeRobot writes a dataset into a new folder")
    dataset_type = _lerobot_dataset()
    first = _same_layout(recordings)
    rate, step = _dataset_rate(first.fps, fps)
    shapes = _camera_shapes(recordings)
    dataset = dataset_type.create(
        repo_id=repo_id,
        fps=rate,
        features=_features(first, shapes),
        root=root,
        robot_type=robot_type,
        use_videos=True,
    )
    summary = LeRobotExport(root, repo_id, rate)
    try:
        for recording in recordings:
            episode_task = task or _recorded_task(recording)
            for episode in recording.episodes:
                frames = 0
                for frame in _frames(episode, summary, step=step, no_action=no_action):
                    dataset.add_frame(frame | {"task": episode_task})
                    frames += 1
                name = f"{recording.name}/episode-{episode.index}"
                if frames == 0:
                    summary.empty_episodes.append(name)
                    continue
                dataset.save_episode()
                summary.episodes += 1
                summary.frames += frames
                if progress is not None:
                    progress(f"{name}: {frames} frames")
    finally:
        dataset.finalize()
    return summary


def _lerobot_dataset() -> Any:
    try:
        from lerobot.datasets.lerobot_dataset import LeRobotDataset
    except ImportError as exc:
        raise ImportError(LEROBOT_MISSING) from exc
    return LeRobotDataset


def _same_layout(recordings: list[Recording]) -> Recording:
    """One dataset has one feature set: every robot of a fleet run must share its layout."""
    if not recordings:
        raise ValueError("no recording to export")
    first = recordings[0]
    keys = ("action_names", "state_names", "cameras", "fps")
    for other in recordings[1:]:
        differs = [key for key in keys if other.info.get(key) != first.info.get(key)]
        if differs:
            raise ValueError(
                f"{other.dir} differs from {first.dir} in {', '.join(differs)}; one LeRobot "
                "dataset holds one layout: export each robot's folder on its own"
            )
    return first


def _dataset_rate(recorded_fps: float, fps: int | None) -> tuple[int, int]:
    """The dataset's integer rate, and every how many schedule ticks a frame is taken."""
    target = float(fps if fps is not None else recorded_fps)
    step = recorded_fps / target if target > 0 else 0.0
    if target <= 0 or target != round(target) or step < 1 or abs(step - round(step)) > 1e-9:
        raise ValueError(
            f"--fps {target:g} does not fit a recording at {recorded_fps:g} fps: LeRobot needs "
            "an integer rate that divides the recorded one (pass --fps with such a rate)"
        )
    return round(target), round(step)


def _camera_shapes(recordings: list[Recording]) -> dict[str, tuple[int, int, int]]:
    """Each camera's decoded frame shape: the recorder crops odd sizes to even (4:2:0 video)."""
    return {
        camera["name"]: (
            camera["height"] - camera["height"] % 2,
            camera["width"] - camera["width"] % 2,
            3,
        )
        for camera in recordings[0].info["cameras"]
    }


def _features(recording: Recording, shapes: dict[str, tuple[int, int, int]]) -> dict[str, Any]:
    state_names = list(recording.info["state_names"])
    action_names = list(recording.info["action_names"])
    features: dict[str, Any] = {
        "observation.state": {
            "dtype": "float32",
            "shape": (len(state_names),),
            "names": state_names,
        },
        "action": {"dtype": "float32", "shape": (len(action_names),), "names": action_names},
        TICK_FEATURE: {"dtype": "int64", "shape": (1,), "names": None},
    }
    for name, shape in shapes.items():
        features[f"observation.images.{name}"] = {
            "dtype": "video",
            "shape": shape,
            "names": ["height", "width", "channels"],
        }
    return features


def _recorded_task(recording: Recording) -> str:
    client = recording.info.get("client") or {}
    return str(client.get("task") or client.get("task_slug") or DEFAULT_TASK)


def _frames(
    episode: Episode, summary: LeRobotExport, *, step: int, no_action: NoAction
) -> Iterator[dict[str, Any]]:
    """The episode's exported frames, in order, without the task; counts what it skips."""
    videos = {camera: _FrameCursor(episode.frames(camera)) for camera in episode.cameras}
    last_action: list[float] | None = None
    for row in episode.ticks().to_pylist():
        action = row["action"]
        if action is not None:
            last_action = action
        if row["tick"] % step:
            summary.skipped_off_grid += 1
            continue
        if action is None and (no_action == "skip" or last_action is None):
            summary.skipped_no_action += 1
            continue
        images = {camera: video.at(row["frame"]) for camera, video in videos.items()}
        if any(image is None for image in images.values()):
            summary.skipped_no_frame += 1
            continue
        frame: dict[str, Any] = {
            "observation.state": np.asarray(row["state"], dtype=np.float32),
            "action": np.asarray(action if action is not None else last_action, dtype=np.float32),
            TICK_FEATURE: np.asarray([row["tick"]], dtype=np.int64),
        }
        for camera, image in images.items():
            frame[f"observation.images.{camera}"] = image
        yield frame


class _FrameCursor:
    """Walks one camera's decoded frames forward to the frame number a row asks for."""

    def __init__(self, frames: Iterator[tuple[int, np.ndarray]]) -> None:
        self._frames = frames
        self._index = -1
        self._image: np.ndarray | None = None

    def at(self, index: int | None) -> np.ndarray | None:
        """Frame `index` of the video; None for no frame (dropped) or past the video's end."""
        if index is None or index < self._index:
            return None
        while self._index < index:
            decoded = next(self._frames, None)
            if decoded is None:
                return None
            self._index += 1
            self._image = decoded[1]
        return self._image
