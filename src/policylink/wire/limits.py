"""Size caps every decoder checks before allocating.

`DEFAULT_LIMITS` is generic: it bounds what any message may cost, whatever it carries, and is
what a robot decodes the server's replies with. A server serves one policy, so it knows much
more — which cameras exist and how large each one is, how long a state vector, a prefix and a
chunk are — and `DecodeLimits.for_policy` turns that into limits no larger than the policy
needs: an observation that names another camera, or whose image header claims another size, is
refused before a pixel is decoded, and a message longer than the policy could ever need is
refused before it is copied.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from policylink.wire.messages import CameraSpec

MiB = 1024 * 1024
KiB = 1024
# Room beside the payload of a message: msgpack framing, field names, the task string, tags.
MESSAGE_SLACK_BYTES = 64 * KiB
# A camera frame's JPEG is far smaller than the raw image, but noise at quality 100 without
# chroma subsampling comes out ~1.4x raw: a JPEG may hold twice the raw bytes plus headers.
JPEG_RAW_FACTOR = 2
JPEG_SLACK_BYTES = 64 * KiB
# Pixels allowed for a camera whose policy leaves its size open (height or width 0).
ANY_SIZE_PIXELS = 1920 * 1080
# Bytes per value of the widest dtype an array may arrive in (float64).
WIDEST_ITEM = 8


@dataclass(frozen=True, slots=True)
class CameraLimit:
    """One camera the served policy reads; 0 for a height or width means any size. A camera
    with an input resolution (`input_height` x `input_width`) also accepts frames at that
    size: robots resize to it before encoding (`CameraSpec`)."""

    name: str
    height: int = 0
    width: int = 0
    input_height: int = 0
    input_width: int = 0

    @property
    def max_pixels(self) -> int:
        if self.height and self.width:
            return self.height * self.width
        return ANY_SIZE_PIXELS

    def size_error(self, height: int, width: int) -> str:
        """Why an image of `height`x`width` does not fit this camera, or ''."""
        if self.input_height and (height, width) == (self.input_height, self.input_width):
            return ""
        if (self.height and height != self.height) or (self.width and width != self.width):
            return (
                f"is {height}x{width}; the policy's camera {self.name!r} is "
                f"{self.height or 'any'}x{self.width or 'any'}: resize on the robot"
            )
        if height * width > self.max_pixels:
            return f"is {height}x{width}, over the {self.max_pixels} pixels allowed"
        return ""


def max_jpeg_bytes(height: int, width: int) -> int:
    """The longest JPEG stream accepted for an image of `height`x`width`."""
    return JPEG_RAW_FACTOR * 3 * height * width + JPEG_SLACK_BYTES


@dataclass(frozen=True, slots=True)
class DecodeLimits:
    """Upper bounds on what one message may make a decoder allocate.

    The defaults fit several 1080p raw cameras. `cameras`, when set, are the only image names
    accepted, each with its size, checked from the image's header before it is decoded.
    `max_text_bytes` bounds free text (an observation's or a session's task, a close reason);
    `max_tags` and `max_tag_bytes` bound a session's tags.
    """

    max_message_bytes: int = 64 * MiB
    max_tensor_bytes: int = 32 * MiB
    max_ndim: int = 4
    max_images: int = 16
    max_image_pixels: int = 4096 * 4096
    max_string_bytes: int = 64 * 1024
    max_items: int = 4096
    cameras: tuple[CameraLimit, ...] | None = None
    max_text_bytes: int = 4 * KiB
    max_tags: int = 32
    max_tag_bytes: int = 256

    @classmethod
    def for_policy(
        cls,
        cameras: Iterable[CameraSpec],
        state_dim: int,
        action_dim: int,
        chunk_size: int,
    ) -> DecodeLimits:
        """Limits no larger than one policy needs: its cameras at their sizes, at most its
        number of images, tensors no longer than its state or chunk (in the widest dtype), and a
        message cap that fits exactly that. (A delay or prefix longer than the chunk is not a
        decoding matter: the server bounds both to the chunk, see `server.validation`.)"""
        slots = tuple(
            CameraLimit(c.name, c.height, c.width, c.input_height, c.input_width) for c in cameras
        )
        tensor_values = max(state_dim, chunk_size * action_dim, 1)
        max_tensor_bytes = WIDEST_ITEM * tensor_values
        # state + two prefixes, every image as its longest JPEG, and the framing.
        image_bytes = sum(max_jpeg_bytes(slot.max_pixels, 1) for slot in slots)
        return cls(
            max_message_bytes=image_bytes + 3 * max_tensor_bytes + MESSAGE_SLACK_BYTES,
            max_tensor_bytes=max_tensor_bytes,
            max_ndim=2,
            max_images=len(slots),
            max_image_pixels=max((slot.max_pixels for slot in slots), default=1),
            max_items=max(256, 2 * (state_dim + action_dim + len(slots))),
            cameras=slots,
        )

    def camera(self, name: str) -> CameraLimit | None:
        """The camera `name` when these limits name cameras; None when they name none."""
        if self.cameras is None:
            return None
        return next((slot for slot in self.cameras if slot.name == name), None)

    def for_array_frames(self, max_frame_bytes: int | None = None) -> DecodeLimits:
        """These limits for frames that carry images as arrays (OpenPI's msgpack-numpy): an
        image may arrive as float64, in HWC or CHW, so an array may hold eight times a raw
        image's bytes and have up to 4 axes. `max_frame_bytes` None: derived from the cameras
        (every image as float64, beside the tensors and 1 MiB for keys a client adds)."""
        if self.cameras is None:
            if max_frame_bytes is None:
                return self
            return replace(self, max_message_bytes=max_frame_bytes)
        image_values = 3 * self.max_image_pixels
        frame_bytes = (
            sum(3 * WIDEST_ITEM * slot.max_pixels for slot in self.cameras)
            + 3 * self.max_tensor_bytes
            + MiB
        )
        return replace(
            self,
            max_message_bytes=frame_bytes if max_frame_bytes is None else max_frame_bytes,
            max_tensor_bytes=max(self.max_tensor_bytes, WIDEST_ITEM * image_values),
            max_ndim=max(self.max_ndim, 4),
        )

    def msgpack_caps(self) -> dict[str, int]:
        """msgpack's own length caps, for `msgpack.unpackb`: a hostile length prefix is refused
        before the unpacker allocates for it, and ext types, which no protocol here uses, are
        refused outright."""
        return {
            "max_str_len": self.max_string_bytes,
            "max_bin_len": self.max_message_bytes,
            "max_array_len": self.max_items,
            "max_map_len": self.max_items,
            "max_ext_len": 0,
        }


DEFAULT_LIMITS = DecodeLimits()
