"""Episodes recorded on the robot: what every camera saw, what every tick did, and why.

On-disk format (version 1). A recording is one robot's folder:

    DIR/
      recording.json               robot, fps, action/state names, cameras, client config
      episode-000000/
        meta.json                  status, counts, server identity, outcome
        ticks.parquet              one row per control tick (see `tick_table.SCHEMA`)
        camera-<name>.mp4          H.264, fragmented MP4, one per camera

A fleet run (`policylink demo --record DIR`) writes one such folder per robot under DIR
(`DIR/robot-0/...`); `open_recordings(DIR)` finds them either way.

Ticks and frames. Row i of `ticks.parquet` is the i-th tick the loop ran in that episode;
`tick` is its index in the loop's schedule (overrun ticks leave gaps) and `mono_ns` the
robot's monotonic clock when it began. `frame` is the row's frame in every camera's MP4, or
null when the writer fell behind and dropped it (counted in `meta.json`). A recording made
with `lossless=True` never drops: frame N is tick row N. Video timestamps are the schedule's
(`pts = tick`, time base `1/fps`), so a video's time is the episode's time.

Provenance. A row whose action came from a chunk names the request that produced it:
`session_id` and `seq_id` (the key of the server's audit line), `episode_id`, `chunk_row`,
and the timings `queue_wait_ms`, `inference_ms` (the server's), `obs_wait_ms` (observation
offered to request sent) and `rtt_ms` (request sent to chunk received), both the robot's.
A row with no provenance played the engine's fallback, named in `fallback`.

Crashes. While an episode records, its rows go to `ticks.parts/part-NNNNNN.parquet` about once
a second and its MP4s are cut into one-second fragments, each flushed when complete; the
episode's end compacts the parts into `ticks.parquet` and marks `meta.json` complete. A killed
process leaves `status: "recording"`, the parts written so far, and MP4s playable up to their
last complete fragment: `Recording.open` reads such an episode as far as it goes.

PyAV and pyarrow come with the `record` extra; nothing here imports torch.
"""

from policylink.episodes.reader import Episode, Recording, open_recordings
from policylink.episodes.recorder import EpisodeFiles, Recorder

__all__ = ["Episode", "EpisodeFiles", "Recorder", "Recording", "open_recordings"]
