"""Tensors cross the wire as little-endian bytes + dtype + shape, exactly and within caps."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest

from policylink import wire

MULTI_BYTE = sorted(name for name in wire.ALLOWED_DTYPES if np.dtype(name).itemsize > 1)


def through_msgpack(array: np.ndarray, **kwargs: object) -> np.ndarray:
    packed = msgpack.packb(wire.encode_tensor(array), use_bin_type=True)
    return wire.decode_tensor(msgpack.unpackb(packed, raw=False), **kwargs)


def extreme_values(name: str) -> np.ndarray:
    dtype = np.dtype(name)
    if dtype.kind == "b":
        return np.array([[True, False], [False, True]])
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return np.array([info.min, info.max, 0, 1, info.max // 3], dtype=dtype)
    info = np.finfo(dtype)
    return np.array(
        [info.min, info.max, info.tiny, info.smallest_subnormal, -0.0, np.inf, -np.inf, np.nan],
        dtype=dtype,
    )


@pytest.mark.parametrize("name", sorted(wire.ALLOWED_DTYPES))
def test_every_allowed_dtype_round_trips_bit_exactly(name: str) -> None:
    array = extreme_values(name)
    decoded = through_msgpack(array)
    assert decoded.dtype == array.dtype
    assert decoded.shape == array.shape
    assert decoded.tobytes() == array.tobytes()


@pytest.mark.parametrize("name", MULTI_BYTE)
def test_big_endian_input_round_trips_to_the_same_values(name: str) -> None:
    native = extreme_values(name)
    big = native.astype(native.dtype.newbyteorder(">"))
    decoded = through_msgpack(big)
    assert decoded.dtype == native.dtype
    assert decoded.tobytes() == native.tobytes()


@pytest.mark.parametrize("byte_order", ["<", ">"])
def test_wire_bytes_are_little_endian_whatever_the_input_order(byte_order: str) -> None:
    encoded = wire.encode_tensor(np.array([1, 258], dtype=f"{byte_order}u2"))
    assert encoded == {"dtype": "uint16", "shape": [2], "data": b"\x01\x00\x02\x01"}


def test_zero_dimensional_tensor_round_trips() -> None:
    decoded = through_msgpack(np.array(3.5, dtype=np.float64))
    assert decoded.shape == ()
    assert decoded.item() == 3.5


@pytest.mark.parametrize("shape", [(0,), (0, 14), (3, 0, 2)])
def test_empty_tensor_round_trips_with_its_shape(shape: tuple[int, ...]) -> None:
    decoded = through_msgpack(np.zeros(shape, dtype=np.float32))
    assert decoded.shape == shape
    assert decoded.dtype == np.float32


def test_non_contiguous_input_round_trips_in_logical_order() -> None:
    base = np.arange(24, dtype=np.int32).reshape(4, 6)
    view = base.T[::2]
    assert not view.flags.c_contiguous
    decoded = through_msgpack(view)
    assert np.array_equal(decoded, view)


def test_decoded_tensor_is_a_read_only_view_of_the_payload() -> None:
    decoded = through_msgpack(np.ones(4, dtype=np.float32))
    assert not decoded.flags.writeable


@pytest.mark.parametrize(
    "array",
    [
        np.array([object()], dtype=object),
        np.array([1 + 2j], dtype=np.complex64),
        np.zeros(2, dtype=[("a", "<f4"), ("b", "<i4")]),
        np.array(["text"]),
        np.array(["2024-01-01"], dtype="datetime64[D]"),
    ],
    ids=["object", "complex", "structured", "unicode", "datetime"],
)
def test_encoding_refuses_dtypes_outside_the_allowlist(array: np.ndarray) -> None:
    with pytest.raises(wire.TensorError, match="cannot be sent; use one of"):
        wire.encode_tensor(array)


@pytest.mark.parametrize("name", ["object", "complex128", "<f4", "V8", "float128", 7, None])
def test_decoding_refuses_dtypes_outside_the_allowlist(name: object) -> None:
    with pytest.raises(wire.TensorError, match="is not one of"):
        wire.decode_tensor({"dtype": name, "shape": [1], "data": b"\x00" * 4})


def test_decoding_can_pin_the_dtype_of_a_field() -> None:
    encoded = wire.encode_tensor(np.zeros(2, dtype=np.float64))
    with pytest.raises(wire.TensorError, match="state: dtype must be float32, got float64"):
        wire.decode_tensor(encoded, field="state", dtype="float32")


@pytest.mark.parametrize(
    ("shape", "match"),
    [
        ("14", "shape must be a list"),
        ([1, 1, 1, 1, 1], "at most 4 sizes"),
        ([-1], "non-negative integers"),
        ([2.0], "non-negative integers"),
        ([True], "non-negative integers"),
    ],
)
def test_decoding_refuses_malformed_shapes(shape: object, match: str) -> None:
    with pytest.raises(wire.TensorError, match=match):
        wire.decode_tensor({"dtype": "uint8", "shape": shape, "data": b"\x00"})


def test_decoding_refuses_a_payload_whose_length_does_not_match_the_shape() -> None:
    with pytest.raises(wire.TensorError, match=r"shape \[2, 3\] of float32 needs 24 bytes, got 20"):
        wire.decode_tensor({"dtype": "float32", "shape": [2, 3], "data": b"\x00" * 20})


def test_decoding_refuses_a_payload_that_is_not_bytes() -> None:
    with pytest.raises(wire.TensorError, match="data must be bytes, got list"):
        wire.decode_tensor({"dtype": "uint8", "shape": [2], "data": [1, 2]})


def test_decoding_refuses_something_that_is_not_a_tensor_map() -> None:
    with pytest.raises(wire.TensorError, match="expected a tensor map, got list"):
        wire.decode_tensor([1, 2, 3])


def test_bool_payload_bytes_other_than_zero_and_one_are_refused() -> None:
    with pytest.raises(wire.TensorError, match="bool tensor bytes must be 0 or 1"):
        wire.decode_tensor({"dtype": "bool", "shape": [3], "data": b"\x01\x00\x02"})


def test_a_shape_over_the_byte_cap_is_refused_as_too_large() -> None:
    limits = wire.DecodeLimits(max_tensor_bytes=1024)
    with pytest.raises(wire.TooLargeError, match="over the cap of 1024"):
        wire.decode_tensor(
            {"dtype": "float32", "shape": [16, 17], "data": b"\x00" * 1088}, limits=limits
        )


@pytest.mark.parametrize("shape", [[0, 2**63], [0, 2**64 - 1], [0, 2**24, 2**24, 2**24]])
def test_an_empty_shape_with_absurd_axes_is_refused_as_too_large(shape: list[int]) -> None:
    with pytest.raises(wire.TooLargeError):
        wire.decode_tensor({"dtype": "float32", "shape": shape, "data": b""})


def test_errors_name_the_field_they_concern() -> None:
    with pytest.raises(wire.TensorError, match=r"^observation\.prefix_model: "):
        wire.decode_tensor({"dtype": "uint8"}, field="observation.prefix_model")
