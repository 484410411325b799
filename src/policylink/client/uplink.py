"""What a robot puts on its uplink per request: frames at the policy's resolution, JPEG at the
quality the link can carry, and a count of the bytes.

A link encodes each observation through its `Uplink` and reports each reply to it:

- **Resize to the policy.** The session ack names, per camera, the resolution the policy reads
  (`CameraSpec.input_size`). A frame larger than that is shrunk here, before encoding: a 480x640
  camera feeding a 224x224 policy sends ~6x fewer bytes and the server decodes ~8x fewer pixels,
  and the policy sees the same pixels as when the server resizes (`wire.image.resize_image` on
  both sides), up to JPEG noise. Without Pillow the robot sends full frames (the server resizes
  them) and says so once.
- **Quality that follows the link** (`jpeg_quality.QualityController`), fed with each chunk's
  network time: its round trip less the server's queue wait and forward.
- **Bytes per request**, for the engine's stats.

Threads: `encode` runs on the thread that sends, `answered` on the transport's; `_lock` guards
everything they share.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from dataclasses import dataclass

import numpy as np

from policylink.client.config import ClientConfig
from policylink.client.jpeg_quality import QualityBounds, QualityController
from policylink.wire.codec import encode_observation
from policylink.wire.errors import ImageError
from policylink.wire.header import Header
from policylink.wire.image import resize_image
from policylink.wire.messages import ActionChunk, CameraSpec, ErrorReply, Observation

logger = logging.getLogger(__name__)

# Sends remembered while their reply is awaited; one is in flight at a time, so a few are plenty.
MAX_PENDING = 64


@dataclass(frozen=True)
class UplinkStats:
    """Requests encoded, their bytes (total and the last), the quality in use and how often it
    moved, and the cameras sent at the policy's resolution rather than their own."""

    requests: int = 0
    bytes_sent: int = 0
    last_request_bytes: int = 0
    jpeg_quality: int = 0
    quality_decreases: int = 0
    quality_increases: int = 0
    resized_cameras: tuple[str, ...] = ()

    @property
    def mean_request_bytes(self) -> float:
        return self.bytes_sent / self.requests if self.requests else 0.0


class Uplink:
    def __init__(
        self, bounds: QualityBounds, *, resize_to_policy: bool = True, raw: bool = False
    ) -> None:
        self._resize = resize_to_policy
        # Raw images (jpeg_quality 0) have no quality to lower.
        self._raw = raw
        self._lock = threading.Lock()
        # Guarded by _lock: the controller, the per-camera target sizes, the send times of
        # requests awaiting a reply (seq_id → monotonic ns) and the counters.
        self._controller = QualityController(bounds)
        self._targets: dict[str, tuple[int, int]] = {}
        self._sent_ns: dict[int, int] = {}
        self._requests = 0
        self._bytes = 0
        self._last_bytes = 0
        self._warned_no_resize = False

    @classmethod
    def from_config(cls, config: ClientConfig) -> Uplink:
        quality = max(config.jpeg_quality, 1)
        bounds = QualityBounds(
            maximum=quality,
            minimum=min(config.jpeg_quality_min, quality),
            rise_factor=config.uplink_rise_factor,
        )
        return cls(bounds, resize_to_policy=config.resize_to_policy, raw=config.jpeg_quality == 0)

    def adopt(self, cameras: list[CameraSpec]) -> None:
        """The session's cameras: those with an input resolution are resized to it."""
        targets = {c.name: size for c in cameras if (size := c.input_size) is not None}
        with self._lock:
            self._targets = targets if self._resize else {}

    @property
    def quality(self) -> int:
        with self._lock:
            return 0 if self._raw else self._controller.quality

    def encode(self, header: Header, obs: Observation) -> bytes:
        """The observation's wire body, at the policy's resolution and the current quality."""
        with self._lock:
            targets = dict(self._targets)
            quality = 0 if self._raw else self._controller.quality
        images = {name: self._fit(name, image, targets) for name, image in obs.images.items()}
        body = encode_observation(dataclasses.replace(obs, images=images), quality)
        with self._lock:
            self._requests += 1
            self._bytes += len(body)
            self._last_bytes = len(body)
            if len(self._sent_ns) >= MAX_PENDING:
                self._sent_ns.clear()
            self._sent_ns[header.seq_id] = time.monotonic_ns()
        return body

    def _fit(self, name: str, image: np.ndarray, targets: dict[str, tuple[int, int]]) -> np.ndarray:
        target = targets.get(name)
        shape = np.shape(image)
        if target is None or len(shape) != 3 or shape[0] < target[0] or shape[1] < target[1]:
            return image  # nothing to gain; the codec checks the frame
        try:
            return resize_image(image, *target, f"images.{name}")
        except ImageError as exc:
            with self._lock:
                warn, self._warned_no_resize = not self._warned_no_resize, True
            if warn:
                logger.warning("sending full frames, the server will resize them: %s", exc)
            return image

    def answered(self, header: Header, reply: ActionChunk | ErrorReply) -> None:
        """A reply arrived: its network time steers the quality of the next requests."""
        now = time.monotonic_ns()
        with self._lock:
            sent = self._sent_ns.pop(header.seq_id, None)
            if sent is None or not isinstance(reply, ActionChunk):
                return
            server_ms = reply.queue_wait_ms + reply.inference_ms
            self._controller.observe((now - sent) / 1e6 - server_ms)

    def stats(self) -> UplinkStats:
        with self._lock:
            controller = self._controller
            return UplinkStats(
                requests=self._requests,
                bytes_sent=self._bytes,
                last_request_bytes=self._last_bytes,
                jpeg_quality=0 if self._raw else controller.quality,
                quality_decreases=controller.decreases,
                quality_increases=controller.increases,
                resized_cameras=tuple(sorted(self._targets)),
            )
