"""Limits that follow a policy: what it does not read is refused before a pixel is decoded."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest

from policylink import wire
from policylink.wire.limits import CameraLimit, DecodeLimits

from .allocation import decode_measured
from .test_hostile_sizes import SMALL, jpeg_claiming

CAMERAS = [wire.CameraSpec("front", 48, 64), wire.CameraSpec("wrist", 24, 32)]
LIMITS = DecodeLimits.for_policy(CAMERAS, state_dim=6, action_dim=6, chunk_size=10)


def noise(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def observation(**fields: object) -> wire.Observation:
    obs = wire.Observation(
        state=np.zeros(6, np.float32),
        images={"front": noise(48, 64), "wrist": noise(24, 32, seed=1)},
    )
    for name, value in fields.items():
        setattr(obs, name, value)
    return obs


def body(obs: wire.Observation, quality: int = 90) -> dict:
    return msgpack.unpackb(wire.encode_observation(obs, quality), raw=False)


def pack(message: dict) -> bytes:
    return msgpack.packb(message, use_bin_type=True)


def refused_cheaply(data: bytes, limits: DecodeLimits = LIMITS) -> wire.WireError:
    outcome, peak = decode_measured(lambda: wire.decode_observation(data, limits))
    assert isinstance(outcome, wire.WireError), f"expected a refusal, got {outcome!r}"
    assert peak < SMALL, f"refusing cost {peak} bytes"
    return outcome


@pytest.mark.parametrize("quality", [0, 90, 100])
def test_an_observation_of_the_policys_cameras_decodes_under_its_limits(quality: int) -> None:
    obs = observation(prefix_model=np.zeros((10, 6), np.float32), inference_delay_steps=10)
    decoded = wire.decode_observation(wire.encode_observation(obs, quality), LIMITS)
    assert {name: image.shape for name, image in decoded.images.items()} == {
        "front": (48, 64, 3),
        "wrist": (24, 32, 3),
    }


def test_the_message_cap_fits_incompressible_jpegs_at_quality_100() -> None:
    """Noise at quality 100 without chroma subsampling is larger than the raw image."""
    import simplejpeg

    frames = {"front": noise(48, 64), "wrist": noise(24, 32, seed=1)}
    message = body(observation())
    for name, frame in frames.items():
        message["images"][name]["data"] = simplejpeg.encode_jpeg(
            frame, quality=100, colorspace="RGB", colorsubsampling="444"
        )
    decoded = wire.decode_observation(pack(message), LIMITS)
    assert decoded.images["front"].shape == (48, 64, 3)


def test_limits_for_a_policy_hold_its_cameras_and_bound_the_message_by_them() -> None:
    assert LIMITS.cameras == (CameraLimit("front", 48, 64), CameraLimit("wrist", 24, 32))
    assert LIMITS.max_images == 2
    assert LIMITS.max_image_pixels == 48 * 64
    assert LIMITS.max_message_bytes < 512 * 1024


def test_an_unknown_camera_is_refused_before_any_image_is_decoded() -> None:
    message = body(observation())
    message["images"] = {"side": message["images"]["front"], **message["images"]}
    error = refused_cheaply(pack(message))
    assert error.code is wire.ErrorCode.CAMERA_MISMATCH
    assert "'side'" in error.message and "['front', 'wrist']" in error.message


@pytest.mark.parametrize("fmt", ["raw", "jpeg"])
def test_an_image_declared_at_another_size_is_a_camera_mismatch(fmt: str) -> None:
    message = body(observation(images={"front": noise(64, 48)}), 0 if fmt == "raw" else 90)
    error = refused_cheaply(pack(message))
    assert error.code is wire.ErrorCode.CAMERA_MISMATCH
    assert "observation.images.front is 64x48" in error.message


def test_a_jpeg_whose_header_claims_another_size_is_refused_before_decoding() -> None:
    message = body(observation())
    message["images"]["front"]["data"] = jpeg_claiming(4096, 4096)
    error = refused_cheaply(pack(message))
    assert error.code is wire.ErrorCode.BAD_IMAGE
    assert "JPEG is 4096x4096 but the message declares 48x64" in error.message


def test_a_raw_image_claiming_a_huge_shape_is_refused_before_its_bytes_are_read() -> None:
    message = body(observation(), 0)
    message["images"]["front"] = {"format": "raw", "shape": [4096, 4096, 3], "data": b"\0" * 64}
    assert refused_cheaply(pack(message)).code is wire.ErrorCode.CAMERA_MISMATCH


def test_a_message_longer_than_the_policy_needs_is_refused_before_it_is_parsed() -> None:
    message = body(observation())
    message["padding"] = b"\0" * LIMITS.max_message_bytes
    error = refused_cheaply(pack(message))
    assert isinstance(error, wire.TooLargeError)


def test_a_jpeg_stream_longer_than_its_size_needs_is_refused() -> None:
    message = body(observation())
    message["images"]["front"]["data"] += b"\0" * (100 * 1024)
    error = refused_cheaply(pack(message))
    assert isinstance(error, wire.TooLargeError)
    assert "too long for 48x64" in error.message


def test_a_progressive_jpeg_is_refused_before_decoding() -> None:
    """Repeated progressive scans can make a small image cost a tenth of a second to decode."""
    message = body(observation())
    baseline = message["images"]["front"]["data"]
    message["images"]["front"]["data"] = baseline.replace(b"\xff\xc0", b"\xff\xc2", 1)
    error = refused_cheaply(pack(message))
    assert error.code is wire.ErrorCode.BAD_IMAGE
    assert "0xC2" in error.message and "baseline" in error.message


def test_jpeg_frame_marker_reads_the_frame_type_from_segment_headers() -> None:
    from policylink.wire.image import jpeg_frame_marker

    baseline = wire.encode_image(noise(16, 16), 90)["data"]
    assert jpeg_frame_marker(baseline) == 0xC0
    assert jpeg_frame_marker(b"not a jpeg") is None
    assert jpeg_frame_marker(b"\xff\xd8\xff\xda\x00\x02") is None  # a scan before any frame
    assert jpeg_frame_marker(b"\xff\xd8\xff\xe0\xff\xff") is None  # a length past the end


def test_a_prefix_is_bounded_by_the_policys_tensor_cap() -> None:
    """Two chunks of float32 fit (a robot may hold more than one); more is refused unread."""
    fits = wire.encode_observation(observation(prefix_model=np.zeros((20, 6), np.float32)))
    assert wire.decode_observation(fits, LIMITS).prefix_model.shape == (20, 6)
    too_long = wire.encode_observation(observation(prefix_model=np.zeros((21, 6), np.float32)))
    with pytest.raises(wire.TooLargeError, match="prefix_model"):
        wire.decode_observation(too_long, LIMITS)


def test_a_task_over_the_text_cap_is_refused() -> None:
    data = wire.encode_observation(observation(task="x" * (LIMITS.max_text_bytes + 1)))
    with pytest.raises(wire.DecodeError, match="field 'task' is longer than"):
        wire.decode_observation(data, LIMITS)


def session_open(**fields: object) -> bytes:
    message = wire.SessionOpen("arm", ["a"], 1)
    for name, value in fields.items():
        setattr(message, name, value)
    return wire.encode_message(message)


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"tags": {f"k{i}": "v" for i in range(33)}}, "33 tags exceed the cap of 32"),
        ({"tags": {"k": "v" * 257}}, r"tags\['k'\] is longer than 256 bytes"),
        ({"tags": {"k" * 257: "v"}}, "a key of 'tags' is longer than 256 bytes"),
        ({"task": "é" * 2049}, "field 'task' is longer than 4096 bytes"),
    ],
)
def test_session_open_tags_and_task_are_bounded(fields: dict, match: str) -> None:
    with pytest.raises(wire.DecodeError, match=match):
        wire.decode_message(wire.MsgType.SESSION_OPEN, session_open(**fields))


def test_a_close_reason_is_bounded() -> None:
    data = wire.encode_message(wire.SessionClose("s", reason="r" * 5000))
    with pytest.raises(wire.DecodeError, match="field 'reason' is longer than"):
        wire.decode_message(wire.MsgType.SESSION_CLOSE, data)


def test_array_frame_limits_leave_room_for_float_images_in_either_layout() -> None:
    frames = LIMITS.for_array_frames()
    assert frames.max_ndim == 4
    assert frames.max_tensor_bytes >= 8 * 3 * 48 * 64
    assert frames.max_message_bytes >= 8 * 3 * (48 * 64 + 24 * 32)
    assert LIMITS.for_array_frames(4096).max_message_bytes == 4096
    assert DecodeLimits().for_array_frames() == DecodeLimits()
