"""Images are uint8 HWC RGB on both sides; JPEG never swaps colours; bad input is named."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest

from policylink import wire

COLOURS = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255)}


def solid(rgb: tuple[int, int, int], height: int = 48, width: int = 64) -> np.ndarray:
    return np.broadcast_to(np.array(rgb, dtype=np.uint8), (height, width, 3)).copy()


def smooth(height: int = 96, width: int = 128) -> np.ndarray:
    """Gradients compress like a camera frame; noise would not."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 255 // width, y * 255 // height, (x + y) % 256], axis=-1).astype(np.uint8)


def through_msgpack(image_map: dict) -> dict:
    return msgpack.unpackb(msgpack.packb(image_map, use_bin_type=True), raw=False)


def round_trip(image: np.ndarray, quality: int) -> np.ndarray:
    return wire.decode_image(through_msgpack(wire.encode_image(image, quality)))


@pytest.mark.parametrize("colour", sorted(COLOURS))
def test_jpeg_keeps_each_primary_colour_in_its_channel(colour: str) -> None:
    expected = np.array(COLOURS[colour])
    decoded = round_trip(solid(COLOURS[colour]), 90)
    mean = decoded.reshape(-1, 3).mean(axis=0)
    assert np.all(np.abs(mean - expected) < 8), f"{colour} decoded as mean RGB {mean}"


def test_jpeg_of_a_smooth_image_decodes_close_to_the_original() -> None:
    image = smooth()
    decoded = round_trip(image, 90)
    assert decoded.shape == image.shape
    assert decoded.dtype == np.uint8
    assert np.abs(decoded.astype(int) - image).mean() < 3


def test_quality_zero_sends_raw_bytes_that_round_trip_exactly() -> None:
    image = smooth()
    encoded = wire.encode_image(image, 0)
    assert encoded["format"] == "raw"
    assert len(encoded["data"]) == image.nbytes
    assert np.array_equal(wire.decode_image(through_msgpack(encoded)), image)


def test_non_contiguous_image_is_sent_in_logical_order() -> None:
    bgr = smooth()
    rgb_view = bgr[..., ::-1]
    assert np.array_equal(round_trip(rgb_view, 0), rgb_view)


def test_jpeg_declares_its_shape_and_format() -> None:
    encoded = wire.encode_image(smooth(96, 128), 75)
    assert encoded["format"] == "jpeg"
    assert encoded["shape"] == [96, 128, 3]
    assert encoded["data"][:2] == b"\xff\xd8"


def test_float_images_are_refused_with_the_scaling_fix() -> None:
    with pytest.raises(wire.ImageError, match=r"must be uint8 RGB, got float32; scale floats"):
        wire.encode_image(np.zeros((4, 4, 3), dtype=np.float32), 90)


def test_channel_first_images_are_refused_with_the_transpose_fix() -> None:
    with pytest.raises(
        wire.ImageError, match=r"looks CHW: transpose with img.transpose\(1, 2, 0\)"
    ):
        wire.encode_image(np.zeros((3, 48, 64), dtype=np.uint8), 90)


@pytest.mark.parametrize("shape", [(48, 64), (48, 64, 4), (48, 64, 1), (2, 48, 64, 3)])
def test_images_without_three_channels_last_are_refused(shape: tuple[int, ...]) -> None:
    with pytest.raises(wire.ImageError, match=r"must be HxWx3 RGB, got shape"):
        wire.encode_image(np.zeros(shape, dtype=np.uint8), 90)


@pytest.mark.parametrize("quality", [0, 90])
def test_empty_images_are_refused(quality: int) -> None:
    with pytest.raises(wire.ImageError, match="height and width must be >= 1"):
        wire.encode_image(np.zeros((0, 64, 3), dtype=np.uint8), quality)


@pytest.mark.parametrize("quality", [-1, 101])
def test_quality_outside_zero_to_hundred_is_refused(quality: int) -> None:
    with pytest.raises(wire.ImageError, match=r"jpeg quality must be 0 \(raw\) or 1..100"):
        wire.encode_image(solid((1, 2, 3)), quality)


def test_encode_errors_name_the_camera() -> None:
    with pytest.raises(wire.ImageError, match=r"^images\.wrist: "):
        wire.encode_image(np.zeros((4, 4), dtype=np.uint8), 90, "images.wrist")


@pytest.mark.parametrize(
    ("image_map", "match"),
    [
        (b"\xff\xd8", "expected an image map, got bytes"),
        ({"format": "png", "shape": [1, 1, 3], "data": b"\x00" * 3}, "format must be 'jpeg'"),
        ({"format": "raw", "shape": [1, 1, 3], "data": "abc"}, "data must be bytes, got str"),
        ({"format": "raw", "shape": [1, 3], "data": b"\x00" * 3}, r"shape must be \[height"),
        ({"format": "raw", "shape": [1, 1, 4], "data": b"\x00" * 4}, r"shape must be \[height"),
        ({"format": "raw", "shape": [0, 1, 3], "data": b""}, r"shape must be \[height"),
        ({"format": "raw", "shape": [-1, -1, 3], "data": b"\x00" * 3}, r"shape must be \[height"),
        ({"format": "raw", "shape": [True, 1, 3], "data": b"\x00" * 3}, r"shape must be \[height"),
        ({"format": "raw", "shape": "1x1x3", "data": b"\x00" * 3}, r"shape must be \[height"),
        ({"format": "raw", "shape": [2, 2, 3], "data": b"\x00" * 11}, "needs 12 bytes"),
        ({"format": "jpeg", "shape": [2, 2, 3], "data": b"not a jpeg"}, "not a JPEG stream"),
    ],
    ids=[
        "not-a-map",
        "unknown-format",
        "data-not-bytes",
        "two-axes",
        "four-channels",
        "zero-height",
        "negative",
        "bool-axis",
        "shape-string",
        "raw-length",
        "not-jpeg",
    ],
)
def test_decoding_refuses_malformed_images(image_map: object, match: str) -> None:
    with pytest.raises(wire.ImageError, match=match):
        wire.decode_image(image_map, field="observation.images.top")


def test_decoding_refuses_a_jpeg_whose_size_differs_from_the_declared_shape() -> None:
    encoded = wire.encode_image(smooth(96, 128), 90)
    encoded["shape"] = [128, 96, 3]
    with pytest.raises(wire.ImageError, match="JPEG is 96x128 but the message declares 128x96"):
        wire.decode_image(encoded)


def test_decoding_refuses_a_truncated_jpeg() -> None:
    encoded = wire.encode_image(smooth(96, 128), 90)
    encoded["data"] = encoded["data"][: len(encoded["data"]) // 3]
    with pytest.raises(wire.ImageError):
        wire.decode_image(encoded)


@pytest.mark.parametrize("fmt", ["raw", "jpeg"])
def test_an_image_over_the_pixel_cap_is_refused_before_decoding(fmt: str) -> None:
    limits = wire.DecodeLimits(max_image_pixels=64 * 64)
    encoded = wire.encode_image(smooth(65, 64), 0 if fmt == "raw" else 90)
    with pytest.raises(wire.TooLargeError, match="65x64 exceeds the cap of 4096 pixels"):
        wire.decode_image(encoded, limits=limits)


def test_decode_errors_name_the_field_and_carry_the_image_code() -> None:
    with pytest.raises(wire.ImageError, match=r"^observation\.images\.top: ") as caught:
        wire.decode_image({}, field="observation.images.top")
    assert caught.value.code is wire.ErrorCode.BAD_IMAGE
