"""Every message round-trips; bad bodies fail with a `WireError` naming the field."""

from __future__ import annotations

import dataclasses

import msgpack
import numpy as np
import pytest

from policylink import wire

from .golden_messages import GOLDEN
from .message_compare import assert_same


def pack(body: object) -> bytes:
    return msgpack.packb(body, use_bin_type=True)


def body_of(name: str) -> dict:
    return msgpack.unpackb(wire.encode_message(GOLDEN[name], jpeg_quality=0), raw=False)


def smooth_frame() -> np.ndarray:
    y, x = np.mgrid[0:120, 0:160]
    return np.stack([x, y, x + y], axis=-1).astype(np.uint8)


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_every_message_round_trips(name: str) -> None:
    message = GOLDEN[name]
    decoded = wire.decode_message(message.MSG_TYPE, wire.encode_message(message, jpeg_quality=0))
    assert_same(decoded, message)


def test_observation_images_default_to_jpeg() -> None:
    obs = wire.Observation(state=np.zeros(2, np.float32), images={"top": smooth_frame()})
    assert msgpack.unpackb(wire.encode_observation(obs))["images"]["top"]["format"] == "jpeg"


def test_observation_with_jpeg_cameras_keeps_names_and_content() -> None:
    frames = {"top": smooth_frame(), "wrist": smooth_frame()[::-1].copy()}
    obs = wire.Observation(state=np.ones(14, np.float32), images=frames, task="fold")
    decoded = wire.decode_observation(wire.encode_observation(obs, jpeg_quality=90))
    assert list(decoded.images) == ["top", "wrist"]
    for name, frame in frames.items():
        assert np.abs(decoded.images[name].astype(int) - frame).mean() < 3
    assert decoded.task == "fold"


@pytest.mark.parametrize("wrap", [bytes, bytearray, memoryview])
def test_decoders_accept_any_bytes_like_body(wrap: type) -> None:
    data = wire.encode_message(GOLDEN["action_chunk"])
    assert_same(wire.decode_message(wire.MsgType.ACTION_CHUNK, wrap(data)), GOLDEN["action_chunk"])


def test_decode_message_accepts_the_raw_type_number_from_a_header() -> None:
    data = wire.encode_message(GOLDEN["reset"])
    assert_same(wire.decode_message(int(wire.MsgType.RESET), data), GOLDEN["reset"])


def test_decode_message_refuses_an_unknown_type_number() -> None:
    with pytest.raises(wire.HeaderError, match="unknown message type 99"):
        wire.decode_message(99, pack({}))


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_unknown_keys_from_a_newer_peer_are_ignored(name: str) -> None:
    body = {**body_of(name), "added_in_a_later_version": [1, 2, 3]}
    message = GOLDEN[name]
    assert_same(wire.decode_message(message.MSG_TYPE, pack(body)), message)


def test_decode_expected_returns_the_expected_reply() -> None:
    data = wire.encode_message(GOLDEN["session_ack"])
    reply = wire.decode_expected(wire.SessionAck, wire.MsgType.SESSION_ACK, data)
    assert isinstance(reply, wire.SessionAck)


def test_decode_expected_returns_an_error_reply_instead_of_raising() -> None:
    data = wire.encode_message(GOLDEN["error"])
    reply = wire.decode_expected(wire.SessionAck, wire.MsgType.ERROR, data)
    assert isinstance(reply, wire.ErrorReply)
    assert reply.code is wire.ErrorCode.CAPACITY


def test_decode_expected_refuses_any_other_reply() -> None:
    data = wire.encode_message(GOLDEN["reset_ack"])
    with pytest.raises(wire.WireError, match="expected SessionAck, got ResetAck"):
        wire.decode_expected(wire.SessionAck, wire.MsgType.RESET_ACK, data)


def test_an_error_code_from_a_newer_peer_decodes_as_internal_keeping_the_message() -> None:
    body = {"code": "quota_exceeded", "message": "too many requests today"}
    reply = wire.decode_message(wire.MsgType.ERROR, pack(body))
    assert isinstance(reply, wire.ErrorReply)
    assert reply.code is wire.ErrorCode.INTERNAL
    assert reply.message == "too many requests today"


def test_status_reports_load_as_a_fraction_of_capacity() -> None:
    status = GOLDEN["status"]
    assert isinstance(status, wire.Status)
    assert status.load == 3 / 8
    assert dataclasses.replace(status, max_sessions=0).load == 0.0


@pytest.mark.parametrize(
    ("name", "field"),
    [
        ("observation", "state"),
        ("action_chunk", "chunk_model"),
        ("session_open", "client_id"),
        ("session_open", "action_names"),
        ("session_ack", "capabilities"),
        ("session_close", "session_id"),
        ("reset", "episode_id"),
        ("error", "message"),
    ],
)
def test_a_missing_required_field_is_named(name: str, field: str) -> None:
    body = body_of(name)
    del body[field]
    with pytest.raises(wire.DecodeError, match=f"{name}: missing field '{field}'"):
        wire.decode_message(GOLDEN[name].MSG_TYPE, pack(body))


@pytest.mark.parametrize(
    ("name", "field", "value", "match"),
    [
        ("observation", "task", 7, "field 'task' must be a string, got int"),
        ("observation", "episode_start", 1, "field 'episode_start' must be a boolean, got int"),
        ("observation", "inference_delay_steps", True, "must be an integer, got bool"),
        ("observation", "inference_delay_steps", -1, r"=-1 is outside \[0, 4294967296\)"),
        ("observation", "images", [], "field 'images' must be a map, got list"),
        ("action_chunk", "inference_ms", "fast", "must be a number, got str"),
        ("action_chunk", "queue_wait_ms", float("inf"), "must be finite, got inf"),
        ("session_open", "action_names", ["a", 1], "must hold only strings"),
        ("session_open", "tags", {"site": 3}, "must map strings to strings"),
        ("session_open", "cameras", [3], r"cameras\[0\] must be a map"),
        ("session_open", "schema_max", 2**16, "outside"),
        ("error", "details", {"load": [1]}, "details must map strings to numbers or strings"),
    ],
)
def test_a_field_of_the_wrong_type_or_range_is_named(
    name: str, field: str, value: object, match: str
) -> None:
    body = {**body_of(name), field: value}
    with pytest.raises(wire.DecodeError, match=match):
        wire.decode_message(GOLDEN[name].MSG_TYPE, pack(body))


def test_a_nested_field_error_names_its_path() -> None:
    body = body_of("status")
    body["capabilities"]["chunk_size"] = "fifty"
    with pytest.raises(wire.DecodeError, match=r"status\.capabilities: field 'chunk_size'"):
        wire.decode_message(wire.MsgType.STATUS, pack(body))


def test_binary_tag_names_are_refused() -> None:
    body = {**body_of("session_open"), "tags": {b"site": "lab"}}
    with pytest.raises(wire.DecodeError, match="field 'tags' must map strings to strings"):
        wire.decode_message(wire.MsgType.SESSION_OPEN, pack(body))


def test_binary_error_detail_names_are_refused() -> None:
    body = {**body_of("error"), "details": {b"load": 1.0}}
    with pytest.raises(wire.DecodeError, match="details must map strings to numbers or strings"):
        wire.decode_message(wire.MsgType.ERROR, pack(body))


def test_a_binary_image_name_is_refused() -> None:
    body = body_of("observation")
    body["images"] = {b"top": body["images"]["top"]}
    with pytest.raises(wire.DecodeError, match="image names must be strings"):
        wire.decode_observation(pack(body))


def test_an_observation_with_a_null_state_is_refused() -> None:
    with pytest.raises(wire.DecodeError, match="'state' must be a tensor, got null"):
        wire.decode_observation(pack({**body_of("observation"), "state": None}))


@pytest.mark.parametrize("key", ["chunk_model", "chunk_robot"])
def test_an_action_chunk_must_be_two_dimensional(key: str) -> None:
    body = {**body_of("action_chunk"), key: wire.encode_tensor(np.zeros(6, np.float32))}
    with pytest.raises(wire.DecodeError, match=rf"{key} must be a \[T, A\] tensor, got \(6,\)"):
        wire.decode_action_chunk(pack(body))


def test_an_observation_with_too_many_cameras_is_refused() -> None:
    limits = wire.DecodeLimits(max_images=2)
    image = wire.encode_image(np.zeros((2, 2, 3), np.uint8), 0)
    body = {**body_of("observation"), "images": {f"cam{i}": image for i in range(3)}}
    with pytest.raises(wire.TooLargeError, match="3 images exceed 2"):
        wire.decode_observation(pack(body), limits)


def test_a_body_over_the_message_cap_is_refused_before_unpacking() -> None:
    limits = wire.DecodeLimits(max_message_bytes=100)
    with pytest.raises(wire.TooLargeError, match="observation: 492 bytes exceeds the cap of 100"):
        wire.decode_observation(wire.encode_message(GOLDEN["observation"], 0), limits)


@pytest.mark.parametrize("body", [pack([1, 2]), pack("text"), pack(None)])
def test_a_body_that_is_not_a_map_is_refused(body: bytes) -> None:
    with pytest.raises(wire.DecodeError, match="body must be a map"):
        wire.decode_message(wire.MsgType.SESSION_CLOSE, body)


@pytest.mark.parametrize("body", [b"", b"\xc1", pack({}) + b"\x00", b"\x92\x01"])
def test_bytes_that_are_not_one_msgpack_value_are_refused(body: bytes) -> None:
    with pytest.raises(wire.DecodeError, match="not a valid msgpack body"):
        wire.decode_message(wire.MsgType.STATUS, body)


def test_encoding_a_camera_with_a_bad_image_names_the_camera() -> None:
    obs = wire.Observation(
        state=np.zeros(2, np.float32), images={"wrist": np.zeros((4, 4), np.uint8)}
    )
    with pytest.raises(wire.ImageError, match=r"^images\.wrist: "):
        wire.encode_observation(obs)


def test_errors_carry_a_machine_readable_code() -> None:
    with pytest.raises(wire.WireError) as caught:
        wire.decode_message(wire.MsgType.STATUS, b"\xc1")
    assert caught.value.code is wire.ErrorCode.BAD_MESSAGE
    assert caught.value.message.startswith("status: ")
