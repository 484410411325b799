"""Reading a recording back: `Recording.open(dir)` → its episodes → table, videos, meta.

The API an exporter builds on (LeRobot, Rerun, the report): nothing here knows about them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from policylink.episodes.dependencies import require
from policylink.episodes.recorder import (
    EPISODE_PREFIX,
    FORMAT_VERSION,
    META_FILE,
    RECORDING_FILE,
    camera_file,
)
from policylink.episodes.tick_table import read_table

if TYPE_CHECKING:
    import pyarrow as pa


class RecordingError(ValueError):
    """A folder that is not a recording, or one of a newer format."""


@dataclass(frozen=True)
class Episode:
    """One recorded episode; `meta["status"]` is "complete", or "recording" if the process
    died while it ran (its table and videos then end at the last flushed part/fragment)."""

    dir: Path
    meta: dict[str, Any]
    cameras: tuple[str, ...]
    fps: float

    @property
    def index(self) -> int:
        return int(self.meta["episode_index"])

    @property
    def complete(self) -> bool:
        return self.meta.get("status") == "complete"

    def ticks(self) -> pa.Table:
        """One row per tick (see `policylink.episodes.tick_table.COLUMNS`)."""
        return read_table(self.dir)

    def video_path(self, camera: str) -> Path:
        if camera not in self.cameras:
            raise KeyError(f"no camera {camera!r}; this recording has {list(self.cameras)}")
        return self.dir / camera_file(camera)

    def frames(self, camera: str) -> Iterator[tuple[int, np.ndarray]]:
        """Decoded `(tick, RGB image)` pairs of one camera, in order; a crashed episode's
        video ends at its last complete fragment."""
        av = require("av")
        path = self.video_path(camera)
        if not path.exists() or path.stat().st_size == 0:
            return
        with av.open(str(path)) as container:
            try:
                for frame in container.decode(video=0):
                    # The muxer picks its own time base: back to schedule ticks.
                    tick = round(float(frame.pts * frame.time_base) * self.fps)
                    yield tick, frame.to_ndarray(format="rgb24")
            except av.error.InvalidDataError:
                return


@dataclass(frozen=True)
class Recording:
    """One robot's recording folder (see `policylink.episodes` for the layout).

    `label` tells it apart from the other recordings of one run when they share a robot id (a
    demo records the same robots once per engine); `name` is what reports and exports call it.
    """

    dir: Path
    info: dict[str, Any]
    label: str | None = None

    @classmethod
    def open(cls, path: str | Path) -> Recording:
        folder = Path(path)
        info_path = folder / RECORDING_FILE
        if not info_path.is_file():
            raise RecordingError(
                f"{folder} is not a recording: it has no {RECORDING_FILE} "
                "(record one with `policylink run --record DIR`)"
            )
        info = json.loads(info_path.read_text())
        if int(info.get("version", 0)) > FORMAT_VERSION:
            raise RecordingError(
                f"{folder} is a version {info['version']} recording; this policylink reads "
                f"up to version {FORMAT_VERSION}: upgrade policylink"
            )
        return cls(folder, info)

    @property
    def robot(self) -> str:
        return str(self.info.get("robot", self.dir.name))

    @property
    def name(self) -> str:
        return self.label or self.robot

    @property
    def fps(self) -> float:
        return float(self.info["fps"])

    @property
    def cameras(self) -> tuple[str, ...]:
        return tuple(camera["name"] for camera in self.info["cameras"])

    @cached_property
    def episodes(self) -> list[Episode]:
        found = []
        for folder in sorted(self.dir.glob(f"{EPISODE_PREFIX}*")):
            meta_path = folder / META_FILE
            if folder.is_dir() and meta_path.is_file():
                meta = json.loads(meta_path.read_text())
                found.append(Episode(folder, meta, self.cameras, self.fps))
        return found


def open_recordings(path: str | Path) -> list[Recording]:
    """The recording at `path`, or every recording below it (a fleet's run: one per robot).

    Recordings below `path` that share a robot id are labelled with their folder relative to
    `path` (`async/robot-0`, `sync/robot-0`), so no report or export merges two of them.
    """
    folder = Path(path)
    if (folder / RECORDING_FILE).is_file():
        return [Recording.open(folder)]
    found = sorted(folder.rglob(RECORDING_FILE)) if folder.is_dir() else []
    if not found:
        raise RecordingError(
            f"{folder} holds no recording (no {RECORDING_FILE} in it or below it); "
            "record one with `policylink run --record DIR`"
        )
    recordings = [Recording.open(info.parent) for info in found]
    robots = [recording.robot for recording in recordings]
    return [
        replace(recording, label=recording.dir.relative_to(folder).as_posix())
        if robots.count(recording.robot) > 1
        else recording
        for recording in recordings
    ]
