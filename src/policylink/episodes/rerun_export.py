"""A recording as a Rerun `.rrd`: cameras, state, actions and engine state on one timeline.

Entities are `<robot>/episode-<n>/...`; two timelines index them: `tick` (the loop's schedule)
and `time` (seconds since the episode began, the robot's monotonic clock). Camera frames are
decoded from the MP4s and stored as JPEG, which every Rerun viewer shows; the state and action
vectors are scalars, the engine state a text log entry at each change.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from policylink.episodes.dependencies import require
from policylink.episodes.reader import Episode, Recording

APPLICATION_ID = "policylink"
JPEG_QUALITY = 85


def export_rerun(recordings: list[Recording], path: Path) -> Path:
    rr = require("rerun")
    stream = rr.RecordingStream(APPLICATION_ID)
    path.parent.mkdir(parents=True, exist_ok=True)
    stream.save(str(path))
    for recording in recordings:
        for episode in recording.episodes:
            _episode(rr, stream, recording, episode)
    stream.flush()
    stream.disconnect()
    return path


def _episode(rr: Any, stream: Any, recording: Recording, episode: Episode) -> None:
    root = f"{recording.name}/episode-{episode.index}"
    table = episode.ticks().to_pydict()
    start = table["mono_ns"][0] if table["mono_ns"] else 0
    state_of = dict(zip(table["tick"], table["mono_ns"], strict=True))
    names = {
        "state": recording.info.get("state_names", []),
        "action": recording.info.get("action_names", []),
    }
    for part, labels in names.items():
        stream.log(f"{root}/{part}", rr.SeriesLines(names=labels), static=True)
    last_state = None
    for i, tick in enumerate(table["tick"]):
        stream.set_time("tick", sequence=tick)
        stream.set_time("time", duration=(table["mono_ns"][i] - start) / 1e9)
        stream.log(f"{root}/state", rr.Scalars(table["state"][i]))
        if table["action"][i] is not None:
            stream.log(f"{root}/action", rr.Scalars(table["action"][i]))
        stream.log(f"{root}/queue_depth", rr.Scalars([table["queue_depth"][i]]))
        if table["rtt_ms"][i] is not None:
            stream.log(f"{root}/rtt_ms", rr.Scalars([table["rtt_ms"][i]]))
        if table["engine_state"][i] != last_state:
            last_state = table["engine_state"][i]
            stream.log(f"{root}/engine_state", rr.TextLog(last_state))
    for camera in recording.cameras:
        for tick, image in episode.frames(camera):
            stream.set_time("tick", sequence=tick)
            stream.set_time("time", duration=(state_of.get(tick, start) - start) / 1e9)
            stream.log(
                f"{root}/camera/{camera}", rr.Image(image).compress(jpeg_quality=JPEG_QUALITY)
            )
