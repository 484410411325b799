"""Size claims are checked before allocation: a few hostile bytes never cost more than a few KiB."""

from __future__ import annotations

import struct
from collections.abc import Callable

import msgpack
import numpy as np
import pytest

from policylink import wire

from .allocation import decode_measured

SMALL = 256 * 1024
"""A generous ceiling for refusing a message of a few hundred bytes."""


def pack(body: object) -> bytes:
    return msgpack.packb(body, use_bin_type=True)


def jpeg_claiming(height: int, width: int) -> bytes:
    """A real JPEG stream whose frame header is rewritten to claim another size."""
    data = bytearray(wire.encode_image(np.zeros((16, 16, 3), np.uint8), 90)["data"])
    sof = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


def assert_refused_cheaply(decode: Callable[[], object], error: type[wire.WireError]) -> None:
    outcome, peak = decode_measured(decode)
    assert isinstance(outcome, error), f"expected {error.__name__}, got {outcome!r}"
    assert peak < SMALL, f"refusing cost {peak} bytes"


def test_a_tensor_claiming_a_huge_shape_is_refused_before_allocation() -> None:
    tensor = {"dtype": "float32", "shape": [100_000, 100_000], "data": b"\x00" * 16}
    assert_refused_cheaply(lambda: wire.decode_tensor(tensor), wire.TooLargeError)


def test_an_observation_whose_state_claims_a_huge_shape_is_refused_cheaply() -> None:
    body = pack({"state": {"dtype": "float64", "shape": [2**20, 2**20, 2**20], "data": b""}})
    assert_refused_cheaply(lambda: wire.decode_observation(body), wire.TooLargeError)


@pytest.mark.parametrize("fmt", ["raw", "jpeg"])
def test_an_image_claiming_100000_by_100000_is_refused_before_decoding(fmt: str) -> None:
    image = {"format": fmt, "shape": [100_000, 100_000, 3], "data": jpeg_claiming(16, 16)}
    assert_refused_cheaply(lambda: wire.decode_image(image), wire.TooLargeError)


def test_a_jpeg_stream_claiming_60000_by_60000_is_refused_before_decoding() -> None:
    image = {"format": "jpeg", "shape": [60_000, 60_000, 3], "data": jpeg_claiming(60_000, 60_000)}
    assert_refused_cheaply(lambda: wire.decode_image(image), wire.TooLargeError)


def test_a_jpeg_stream_larger_than_its_declared_shape_is_refused_before_decoding() -> None:
    image = {"format": "jpeg", "shape": [16, 16, 3], "data": jpeg_claiming(60_000, 60_000)}
    assert_refused_cheaply(lambda: wire.decode_image(image), wire.ImageError)


@pytest.mark.parametrize(
    "prefix",
    [
        b"\xc6" + struct.pack(">I", 2**31),  # bin 32
        b"\xdb" + struct.pack(">I", 2**31),  # str 32
        b"\xdd" + struct.pack(">I", 2**31),  # array 32
        b"\xdf" + struct.pack(">I", 2**31),  # map 32
        b"\xc9" + struct.pack(">I", 2**31) + b"\x01",  # ext 32
        b"\xc6" + struct.pack(">I", 2**25),  # bin 32 under the message cap
    ],
    ids=["bin32", "str32", "array32", "map32", "ext32", "bin32-under-cap"],
)
@pytest.mark.parametrize("msg_type", [wire.MsgType.OBSERVATION, wire.MsgType.SESSION_OPEN])
def test_msgpack_length_prefixes_of_2_31_are_refused_cheaply(
    prefix: bytes, msg_type: wire.MsgType
) -> None:
    body = prefix + b"\xab" * 64
    assert_refused_cheaply(lambda: wire.decode_message(msg_type, body), wire.DecodeError)


def test_a_length_prefix_inside_a_valid_observation_is_refused_cheaply() -> None:
    marker = b"\xab" * 8
    body = pack({"state": {"dtype": "uint8", "shape": [8], "data": marker}, "task": "x" * 100})
    hostile = body.replace(b"\xc4\x08" + marker, b"\xc6" + struct.pack(">I", 2**31 - 1) + marker)
    assert hostile != body
    assert_refused_cheaply(lambda: wire.decode_observation(hostile), wire.DecodeError)


def test_a_string_over_the_string_cap_is_refused() -> None:
    limits = wire.DecodeLimits(max_string_bytes=1024)
    body = pack({"session_id": "s" * 2048})
    assert_refused_cheaply(
        lambda: wire.decode_message(wire.MsgType.SESSION_CLOSE, body, limits), wire.DecodeError
    )


def test_deeply_nested_containers_are_refused_without_recursion_errors() -> None:
    body = b"\x81\xa1k" * 5000 + b"\xc0"
    assert_refused_cheaply(lambda: wire.decode_message(wire.MsgType.STATUS, body), wire.DecodeError)
