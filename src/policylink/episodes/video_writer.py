"""One camera of one episode as an H.264 MP4, written frame by frame as the episode runs.

The MP4 is fragmented (`frag_keyframe+empty_moov+default_base_moof`): its index is written up
front and every keyframe starts a fragment that is complete in itself, so a process killed
mid-episode leaves a file that plays up to its last complete fragment. A keyframe every
`fragment_s` bounds what a crash loses; `flush_packets` hands each fragment to the OS as soon
as it is muxed. x264 runs `ultrafast`/`zerolatency`: no frame is held back for lookahead,
and a 480x640 frame costs about 2 ms of one core.

Timestamps are the control loop's schedule (`pts = tick`, time base `1/fps`): a dropped or
overrun tick leaves a gap in which players hold the previous frame, so a video's time is the
episode's time.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from policylink.episodes.dependencies import require

MOVFLAGS = "frag_keyframe+empty_moov+default_base_moof"


class VideoWriter:
    """Owned by the recorder's writer thread; `close()` flushes the encoder and the file."""

    def __init__(
        self, path: Path, *, height: int, width: int, fps: float, fragment_s: float = 1.0
    ) -> None:
        av = require("av")
        # 4:2:0 chroma (the only layout browsers decode) needs even dimensions: an odd row or
        # column is cropped rather than the frame rescaled.
        self.height, self.width = height - height % 2, width - width % 2
        self.frames = 0
        self._container = av.open(
            str(path),
            mode="w",
            format="mp4",
            options={"movflags": MOVFLAGS, "flush_packets": "1"},
        )
        rate = Fraction(fps).limit_denominator(1000)
        self._stream = self._container.add_stream("libx264", rate=rate)
        self._stream.width, self._stream.height = self.width, self.height
        self._stream.pix_fmt = "yuv420p"
        self._stream.time_base = 1 / rate
        self._stream.codec_context.time_base = 1 / rate
        self._stream.options = {
            "preset": "ultrafast",
            "tune": "zerolatency",
            "g": str(max(1, round(fps * fragment_s))),
        }
        self._frame_type = av.VideoFrame
        self._last_pts = -1

    def write(self, image: np.ndarray, tick: int) -> None:
        """Encode one RGB frame shown from schedule tick `tick` on (ticks must increase)."""
        if tick <= self._last_pts:
            raise ValueError(f"frame ticks must increase: {tick} after {self._last_pts}")
        view = image[: self.height, : self.width]
        if view.strides[1:] != (3, 1):
            view = np.ascontiguousarray(view)
        # The frame wraps the robot's array: no copy under the interpreter lock. PyAV's
        # `from_ndarray` copies each frame twice while holding it, which kept the control thread
        # waiting for the lock for up to a switch interval (5 ms). The RGB to YUV conversion
        # and the encoding below run with the lock released.
        frame = self._frame_type.from_numpy_buffer(view, format="rgb24")
        frame.pts = tick
        self._last_pts = tick
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        for packet in self._stream.encode(None):
            self._container.mux(packet)
        self._container.close()
