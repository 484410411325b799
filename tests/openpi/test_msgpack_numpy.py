"""The OpenPI numpy-in-msgpack codec: byte-compatible with openpi-client, bounded, no pickle."""

import msgpack
import numpy as np
import pytest
from openpi_client import msgpack_numpy as openpi_msgpack

from policylink.wire import DecodeError, DecodeLimits, TensorError, TooLargeError
from policylink.wire.openpi.msgpack_numpy import packb, unpackb


def _array_map(dtype: object, shape: list[int], data: bytes) -> bytes:
    return msgpack.packb(
        {b"__ndarray__": True, b"data": data, b"dtype": dtype, b"shape": shape},
        use_bin_type=True,
    )


def test_frames_from_openpi_client_decode_to_equal_arrays():
    obs = {
        "observation/state": np.linspace(-1, 1, 8),
        "observation/image": np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3),
        "flag": np.bool_(True),
        "scale": np.float32(0.5),
        "prompt": "pick up the cup",
    }
    decoded = unpackb(openpi_msgpack.packb(obs))
    np.testing.assert_array_equal(decoded["observation/state"], obs["observation/state"])
    assert decoded["observation/state"].dtype == np.float64
    np.testing.assert_array_equal(decoded["observation/image"], obs["observation/image"])
    assert decoded["flag"] is np.True_
    assert decoded["scale"] == np.float32(0.5) and decoded["scale"].dtype == np.float32
    assert decoded["prompt"] == "pick up the cup"


def test_openpi_client_reads_our_frames_back_into_arrays():
    reply = {"actions": np.ones((10, 7), dtype=np.float32), "nested": {"t": np.int64(3)}}
    decoded = openpi_msgpack.unpackb(packb(reply))
    np.testing.assert_array_equal(decoded["actions"], reply["actions"])
    assert decoded["actions"].dtype == np.float32
    assert decoded["nested"]["t"] == 3


def test_numpy_string_scalar_prompt_arrives_as_text():
    decoded = unpackb(openpi_msgpack.packb({"prompt": np.str_("open the drawer")}))
    assert decoded["prompt"] == "open the drawer"


def test_big_endian_arrays_arrive_in_native_order():
    decoded = unpackb(openpi_msgpack.packb({"x": np.arange(4, dtype=">f8")}))
    assert decoded["x"].dtype.isnative
    np.testing.assert_array_equal(decoded["x"], [0, 1, 2, 3])


@pytest.mark.parametrize("dtype", ["|O", "<c16", "|V8", "<U4", "<M8[s]", "f4; import os"])
def test_dtypes_outside_the_allowlist_are_refused(dtype: str):
    with pytest.raises(TensorError, match="dtype"):
        unpackb(_array_map(dtype, [1], b"\0" * 8))


def test_object_arrays_cannot_be_sent():
    with pytest.raises(TensorError, match="cannot be sent"):
        packb({"x": np.array([object()])})


def test_declared_size_over_the_cap_is_refused_before_allocation():
    with pytest.raises(TooLargeError, match="over the cap"):
        unpackb(_array_map("<f4", [1 << 20, 1 << 20], b"\0" * 16))


def test_byte_count_must_match_the_shape():
    with pytest.raises(TensorError, match="needs 24 bytes, got 8"):
        unpackb(_array_map("<f4", [2, 3], b"\0" * 8))


@pytest.mark.parametrize("shape", [[0, 2**63], [0, 2**24, 2**24, 2**24]])
def test_an_empty_shape_with_absurd_axes_is_refused_as_too_large(shape: list[int]):
    with pytest.raises(TooLargeError, match="over the cap"):
        unpackb(_array_map("<f4", shape, b""))


def test_bool_bytes_other_than_zero_and_one_are_refused():
    with pytest.raises(TensorError, match="bool tensor bytes must be 0 or 1"):
        unpackb(_array_map("|b1", [3], b"\x01\x00\x02"))


def test_rank_over_the_cap_is_refused():
    with pytest.raises(TensorError, match="at most 4 sizes"):
        unpackb(_array_map("|u1", [1, 1, 1, 1, 1], b"\0"))


def test_negative_shape_is_refused():
    with pytest.raises(TensorError, match="non-negative"):
        unpackb(_array_map("|u1", [-1], b""))


def test_frame_over_the_message_cap_is_refused():
    limits = DecodeLimits(max_message_bytes=1024)
    with pytest.raises(TooLargeError, match="exceeds the cap of 1024"):
        unpackb(openpi_msgpack.packb({"x": np.zeros(512, np.float32)}), limits)


@pytest.mark.parametrize("frame", [b"\xc1", b"\x92\x01", b"\x91" * 100_000, b"\xd4\x01\x00"])
def test_malformed_bytes_raise_a_decode_error(frame: bytes):
    with pytest.raises(DecodeError, match="not valid msgpack"):
        unpackb(frame)


def test_decoded_arrays_are_read_only_views():
    decoded = unpackb(openpi_msgpack.packb({"x": np.zeros(3, np.float32)}))
    assert not decoded["x"].flags.writeable


def test_a_float_scalar_too_large_for_its_dtype_is_refused_not_made_infinite():
    frame = msgpack.packb(
        {b"__npgeneric__": True, b"data": 1e10, b"dtype": "<f2"}, use_bin_type=True
    )
    with pytest.raises(TensorError, match="does not fit in float16"):
        unpackb(frame)


def test_an_infinite_float_scalar_sent_as_such_stays_infinite():
    frame = msgpack.packb(
        {b"__npgeneric__": True, b"data": float("inf"), b"dtype": "<f2"}, use_bin_type=True
    )
    assert np.isinf(unpackb(frame))
