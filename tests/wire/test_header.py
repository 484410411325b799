"""The fixed little-endian header: readable without the body, refused when out of range."""

from __future__ import annotations

import dataclasses

import pytest

from policylink import wire

LARGEST = wire.Header(
    schema_version=2**16 - 1,
    msg_type=wire.MsgType.ERROR,
    seq_id=2**64 - 1,
    episode_id=2**32 - 1,
    client_mono_ns=2**63 - 1,
    session_epoch=2**32 - 1,
)


def test_header_is_27_packed_bytes() -> None:
    assert wire.HEADER_SIZE == 27
    assert len(wire.pack_header(wire.Header(1, wire.MsgType.OBSERVATION))) == 27


@pytest.mark.parametrize(
    "header",
    [
        wire.Header(1, wire.MsgType.OBSERVATION),
        LARGEST,
        dataclasses.replace(LARGEST, client_mono_ns=-(2**63)),
    ],
    ids=["zeros", "largest", "most-negative-clock"],
)
def test_header_round_trips(header: wire.Header) -> None:
    assert wire.unpack_header(wire.pack_header(header)) == header


def test_fields_are_little_endian_in_declared_order() -> None:
    header = wire.Header(
        schema_version=0x0102,
        msg_type=wire.MsgType.ACTION_CHUNK,
        seq_id=0x03,
        episode_id=0x04,
        client_mono_ns=-1,
        session_epoch=0x05,
    )
    assert (
        wire.pack_header(header)
        == (b"\x02\x01" + b"\x02" + b"\x03" + b"\x00" * 7 + b"\x04\x00\x00\x00" + b"\xff" * 8)
        + b"\x05\x00\x00\x00"
    )


@pytest.mark.parametrize("msg_type", list(wire.MsgType))
def test_every_message_type_survives_the_header(msg_type: wire.MsgType) -> None:
    assert wire.unpack_header(wire.pack_header(wire.Header(1, msg_type))).msg_type is msg_type


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("schema_version", 2**16),
        ("schema_version", -1),
        ("seq_id", 2**64),
        ("seq_id", -1),
        ("episode_id", 2**32),
        ("client_mono_ns", 2**63),
        ("client_mono_ns", -(2**63) - 1),
        ("session_epoch", 2**32),
    ],
)
def test_packing_refuses_out_of_range_fields_by_name(field: str, value: int) -> None:
    header = dataclasses.replace(wire.Header(1, wire.MsgType.OBSERVATION), **{field: value})
    with pytest.raises(wire.HeaderError, match=f"header field {field}={value} is outside"):
        wire.pack_header(header)


@pytest.mark.parametrize("value", [1.5, "7", None, True])
def test_packing_refuses_non_integer_fields_by_name(value: object) -> None:
    header = wire.Header(1, wire.MsgType.OBSERVATION, seq_id=value)  # type: ignore[arg-type]
    with pytest.raises(wire.HeaderError, match="header field seq_id must be an integer"):
        wire.pack_header(header)


@pytest.mark.parametrize("length", [0, 1, 26, 28, 64])
def test_unpacking_refuses_the_wrong_length(length: int) -> None:
    with pytest.raises(wire.HeaderError, match=f"header must be 27 bytes, got {length}"):
        wire.unpack_header(b"\x01" * length)


def test_unpacking_a_missing_attachment_says_so() -> None:
    with pytest.raises(wire.HeaderError, match="no header attachment"):
        wire.unpack_header(None)


@pytest.mark.parametrize("raw_type", [0, 11, 255])
def test_unpacking_refuses_unknown_message_types(raw_type: int) -> None:
    data = bytearray(wire.pack_header(wire.Header(1, wire.MsgType.OBSERVATION)))
    data[2] = raw_type
    with pytest.raises(wire.HeaderError, match=f"unknown message type {raw_type}"):
        wire.unpack_header(bytes(data))


@pytest.mark.parametrize("wrap", [bytes, bytearray, memoryview])
def test_unpacking_accepts_any_bytes_like_attachment(wrap: type) -> None:
    assert wire.unpack_header(wrap(wire.pack_header(LARGEST))) == LARGEST


def test_header_errors_carry_the_bad_header_code() -> None:
    with pytest.raises(wire.HeaderError) as caught:
        wire.unpack_header(b"")
    assert caught.value.code is wire.ErrorCode.BAD_HEADER
