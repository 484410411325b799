"""Size caps every decoder checks before allocating."""

from __future__ import annotations

from dataclasses import dataclass

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class DecodeLimits:
    """Upper bounds on what one message may make a decoder allocate.

    The defaults fit several 1080p raw cameras; a server may tighten them per deployment.
    """

    max_message_bytes: int = 64 * MiB
    max_tensor_bytes: int = 32 * MiB
    max_ndim: int = 4
    max_images: int = 16
    max_image_pixels: int = 4096 * 4096
    max_string_bytes: int = 64 * 1024
    max_items: int = 4096

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
