"""The robot-side recorder: `run_loop` hands it each tick; one thread writes the files.

`record_tick` runs on the control thread, so it only builds a small row and puts it on a
`SimpleQueue` (no lock a writer can hold, no I/O). Camera frames are the heavy part: at most
`max_pending_frames` of them wait for the writer. When that many wait (a slow disk, a busy
CPU), the tick's frames are dropped and counted, while its row is still written, with a null
`frame`. With `lossless=True` nothing is dropped: `record_tick` waits for room instead, so
frame N is always tick N — at the price that a writer slower than the loop then slows the loop.

Threads: the caller's control thread (`record_tick`, `episode`), and one writer thread per
`Recorder`, named, stopped by `close()`. The writer owns every file; the two sides share the
queue, two counters each written by one side only, and (lossless only) `_room`.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from queue import SimpleQueue
from types import TracebackType
from typing import Any

import numpy as np

from policylink.client.loop import TickRecord
from policylink.client.robot import RobotLayout
from policylink.episodes.tick_table import TickParts, TickRow
from policylink.episodes.video_writer import VideoWriter

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
RECORDING_FILE = "recording.json"
META_FILE = "meta.json"
EPISODE_PREFIX = "episode-"
# How many nice levels the writer thread sits below the rest of the robot process (Linux).
WRITER_NICENESS = 10


def camera_file(name: str) -> str:
    return f"camera-{name}.mp4"


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write whole or not at all: a reader never sees half a file."""
    scratch = path.with_suffix(".tmp")
    scratch.write_text(json.dumps(data, indent=1, default=str))
    os.replace(scratch, path)


class EpisodeFiles:
    """One episode's files, written by the writer thread only.

    The recorder's one seam to the disk: a test passes a subclass (a slow disk) as `files=`.
    """

    def __init__(
        self, episode_dir: Path, layout: RobotLayout, *, fps: float, fragment_s: float
    ) -> None:
        episode_dir.mkdir(parents=True, exist_ok=False)
        self.dir = episode_dir
        self.table = TickParts(episode_dir)
        self.videos = {
            camera.name: VideoWriter(
                episode_dir / camera_file(camera.name),
                height=camera.height,
                width=camera.width,
                fps=fps,
                fragment_s=fragment_s,
            )
            for camera in layout.cameras
        }

    def write_frames(self, tick: int, images: dict[str, np.ndarray]) -> None:
        for name, writer in self.videos.items():
            writer.write(images[name], tick)

    def write_row(self, row: TickRow) -> None:
        self.table.append(row)

    def flush(self) -> None:
        self.table.flush()

    def close(self) -> None:
        for writer in self.videos.values():
            writer.close()
        self.table.compact()


@dataclass
class _Begin:
    recording: EpisodeRecording


@dataclass
class _Tick:
    record: TickRecord
    frame: int | None


@dataclass
class _End:
    recording: EpisodeRecording


class _Stop:
    pass


@dataclass
class EpisodeRecording:
    """An episode being recorded; pass it to `run_loop(recorder=...)`.

    Set `outcome` (anything JSON can hold) and `server` (the engine's `server_identity()`)
    before the `with` block ends; both go into the episode's `meta.json`.
    """

    recorder: Recorder
    index: int
    dir: Path
    info: dict[str, Any]
    server: dict[str, Any] = field(default_factory=dict)
    outcome: dict[str, Any] = field(default_factory=dict)
    status: str = "recording"
    frames: int = 0
    frames_dropped: int = 0
    ticks: int = 0
    started_unix_s: float = field(default_factory=time.time)

    def record_tick(self, record: TickRecord) -> None:
        self.recorder._enqueue(self, record)

    def __enter__(self) -> EpisodeRecording:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.status = "complete" if exc is None else "failed"
        if exc is not None:
            self.outcome.setdefault("error", f"{type(exc).__name__}: {exc}")
        self.recorder._end(self)

    def meta(self) -> dict[str, Any]:
        return {
            "format": "policylink-episode",
            "version": FORMAT_VERSION,
            "episode_index": self.index,
            "status": self.status,
            "started_unix_s": self.started_unix_s,
            "ticks": self.ticks,
            "frames": self.frames,
            "frames_dropped": self.frames_dropped,
            "server": self.server,
            "outcome": self.outcome,
            "info": self.info,
        }


class Recorder:
    """Records one robot's episodes under `root`; `close()` finishes the files.

    `client` is the client config as JSON-ready data; `fallback` names what the engine plays
    when it has no action (a row with an action but no provenance played it). Test injection
    point: `files`, the class that writes one episode's files.
    """

    def __init__(
        self,
        root: Path,
        layout: RobotLayout,
        *,
        fps: float,
        robot: str = "robot",
        client: dict[str, Any] | None = None,
        fallback: str = "hold",
        lossless: bool = False,
        max_pending_frames: int | None = None,
        fragment_s: float = 1.0,
        files: type[EpisodeFiles] = EpisodeFiles,
    ) -> None:
        if not fps > 0:
            raise ValueError(f"fps must be positive, got {fps}")
        if not fragment_s > 0:
            raise ValueError(f"fragment_s must be positive, got {fragment_s}")
        self.root = Path(root)
        self.layout = layout
        self.fps = fps
        self.lossless = lossless
        self.fallback = fallback
        # Two seconds of frames by default: enough to ride out a hiccup of the disk.
        self.max_pending_frames = max_pending_frames or max(1, round(2 * fps))
        self._fragment_s = fragment_s
        self._rows_per_part = max(1, round(fps * fragment_s))
        self._files_type = files
        self.root.mkdir(parents=True, exist_ok=True)
        self._write_recording_file(robot, client or {})
        self._next_index = _next_episode_index(self.root)
        self._queue: SimpleQueue[_Begin | _Tick | _End | _Stop] = SimpleQueue()
        # Frames handed over (written by the control thread only) and frames written or given
        # up on (by the writer thread only); their difference is what waits.
        self._frames_in = 0
        self._frames_out = 0
        # Lossless only: the control thread waits on it for room, the writer notifies it.
        self._room = threading.Condition()
        # Set by the writer thread when a write failed; every later frame is dropped.
        self.error: str | None = None
        self._thread = threading.Thread(
            target=self._write_loop, name=f"policylink-recorder-{robot}", daemon=True
        )
        self._thread.start()
        self._closed = False

    def _write_recording_file(self, robot: str, client: dict[str, Any]) -> None:
        layout = self.layout
        data = {
            "format": "policylink-recording",
            "version": FORMAT_VERSION,
            "robot": robot,
            "fps": self.fps,
            "action_names": list(layout.action_names),
            "state_names": list(layout.state_names),
            "cameras": [
                {"name": c.name, "height": c.height, "width": c.width} for c in layout.cameras
            ],
            "lossless": self.lossless,
            "fallback": self.fallback,
            "client": client,
        }
        path = self.root / RECORDING_FILE
        if path.exists():
            existing = json.loads(path.read_text())
            keys = ("action_names", "state_names", "cameras", "fps")
            if any(existing.get(key) != data[key] for key in keys):
                raise ValueError(
                    f"{self.root} holds a recording of another robot layout or rate; "
                    "record into a new folder"
                )
        write_json(path, data)

    def episode(self, *, server: dict[str, Any] | None = None, **info: Any) -> EpisodeRecording:
        """Start the next episode; use it as a context manager around `run_loop`."""
        if self._closed:
            raise RuntimeError("the recorder is closed")
        index = self._next_index
        self._next_index += 1
        recording = EpisodeRecording(
            self, index, self.root / f"{EPISODE_PREFIX}{index:06d}", info, dict(server or {})
        )
        self._queue.put(_Begin(recording))
        return recording

    def _enqueue(self, episode: EpisodeRecording, record: TickRecord) -> None:
        """Control thread: hand the tick over; drop its frames if too many wait (or, lossless,
        wait for room)."""
        episode.ticks += 1
        frame = None
        if record.observation.images or not self.layout.cameras:
            if self.lossless:
                self._wait_for_room()
            if self._frames_in - self._frames_out < self.max_pending_frames and not self.error:
                frame = episode.frames
                episode.frames += 1
                self._frames_in += 1
            else:
                episode.frames_dropped += 1
        self._queue.put(_Tick(record, frame))

    def _wait_for_room(self) -> None:
        with self._room:
            self._room.wait_for(
                lambda: (
                    self._frames_in - self._frames_out < self.max_pending_frames
                    or self.error is not None
                )
            )

    def _end(self, episode: EpisodeRecording) -> None:
        self._queue.put(_End(episode))

    @property
    def frames_pending(self) -> int:
        return self._frames_in - self._frames_out

    def close(self, timeout_s: float | None = None) -> bool:
        """Write everything handed over, close the files, stop the thread; False if it was
        still writing after `timeout_s`."""
        if not self._closed:
            self._closed = True
            self._queue.put(_Stop())
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write_loop(self) -> None:
        _defer_to_the_control_loop()
        files: EpisodeFiles | None = None
        episode: EpisodeRecording | None = None
        rows_since_flush = 0
        while True:
            item = self._queue.get()
            if isinstance(item, _Stop):
                if files is not None and episode is not None:
                    episode.status = "aborted"
                    self._finish(files, episode)
                return
            if isinstance(item, _Begin):
                episode = item.recording
                files = self._open(episode)
            elif isinstance(item, _End):
                if files is not None:
                    self._finish(files, item.recording)
                files, episode = None, None
            elif files is not None:
                self._write_tick(files, item)
                rows_since_flush += 1
                if rows_since_flush >= self._rows_per_part:
                    rows_since_flush = 0
                    self._guarded(files.flush)
            elif item.frame is not None:
                self._frame_done()

    def _open(self, episode: EpisodeRecording) -> EpisodeFiles | None:
        try:
            files = self._files_type(
                episode.dir, self.layout, fps=self.fps, fragment_s=self._fragment_s
            )
            write_json(episode.dir / META_FILE, episode.meta())
        except Exception as exc:  # the writer thread's boundary: record, never raise
            self._fail(f"cannot start {episode.dir}: {exc}")
            return None
        return files

    def _write_tick(self, files: EpisodeFiles, item: _Tick) -> None:
        record = item.record
        if item.frame is not None:
            if self.error is None:
                self._guarded(files.write_frames, record.tick, record.observation.images)
            self._frame_done()
        self._guarded(files.write_row, self._row(record, item.frame))

    def _row(self, record: TickRecord, frame: int | None) -> TickRow:
        provenance = record.provenance
        fallback = None
        if provenance is None:
            fallback = "hold" if record.action is None else self.fallback
        row = TickRow(
            tick=record.tick,
            mono_ns=record.mono_ns,
            frame=frame,
            state=record.observation.state,
            action=record.action,
            fallback=fallback,
            engine_state=record.engine_state.value,
            queue_depth=record.queue_depth,
        )
        if provenance is None:
            return row
        origin = provenance.origin
        return replace(
            row,
            session_id=origin.session_id,
            seq_id=origin.seq_id,
            episode_id=origin.episode_id,
            chunk_row=provenance.row,
            queue_wait_ms=origin.queue_wait_ms,
            inference_ms=origin.inference_ms,
            rtt_ms=origin.rtt_ms,
            obs_wait_ms=origin.obs_wait_ms,
        )

    def _frame_done(self) -> None:
        self._frames_out += 1
        if self.lossless:
            with self._room:
                self._room.notify()

    def _finish(self, files: EpisodeFiles, episode: EpisodeRecording) -> None:
        self._guarded(files.close)
        if self.error is not None and episode.status == "complete":
            episode.status = "failed"
            episode.outcome.setdefault("recording_error", self.error)
        self._guarded(write_json, episode.dir / META_FILE, episode.meta())

    def _guarded(self, write: Any, *args: Any) -> None:
        try:
            write(*args)
        except Exception as exc:  # the writer thread's boundary: record, never raise
            self._fail(str(exc))

    def _fail(self, message: str) -> None:
        if self.error is None:
            logger.error("recording failed, frames are dropped from now on: %s", message)
            self.error = message
        with self._room:
            self._room.notify_all()


def _defer_to_the_control_loop() -> None:
    """Lower the calling thread's CPU priority, so that on a busy robot the control loop runs
    before the encoding: x264's own threads, started from this thread, inherit it. Linux sets
    niceness per thread; elsewhere the call would reach the whole process, so nothing is done."""
    if sys.platform != "linux":
        return
    thread = threading.get_native_id()
    try:
        nice = os.getpriority(os.PRIO_PROCESS, thread)
        os.setpriority(os.PRIO_PROCESS, thread, min(19, nice + WRITER_NICENESS))
    except OSError as exc:
        logger.debug("recorder thread keeps its priority: %s", exc)


def _next_episode_index(root: Path) -> int:
    """Recording into a folder that holds episodes continues their numbering."""
    indices = [
        int(path.name.removeprefix(EPISODE_PREFIX))
        for path in root.glob(f"{EPISODE_PREFIX}*")
        if path.name.removeprefix(EPISODE_PREFIX).isdigit()
    ]
    return max(indices, default=-1) + 1
