"""Camera images on the wire: JPEG via libjpeg-turbo (simplejpeg) or raw bytes.

The codec owns the colour convention: images are uint8 HWC RGB on both sides. simplejpeg is RGB
by default; OpenCV and PyTurboJPEG default to BGR, a silent colour swap that this module exists
to rule out. Chroma subsampling is always set explicitly because library defaults differ.

simplejpeg is imported only where JPEG is used, so a robot sending raw images needs nothing but
numpy and msgpack.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

from policylink.wire.errors import ImageError, TooLargeError
from policylink.wire.limits import DEFAULT_LIMITS, DecodeLimits

JPEG = "jpeg"
RAW = "raw"
JPEG_SUBSAMPLING = "420"


def _simplejpeg(field: str) -> ModuleType:
    try:
        import simplejpeg
    except ImportError:
        raise ImageError(
            f"{field}: JPEG needs the simplejpeg package; `pip install simplejpeg`, "
            "or send raw images with jpeg_quality=0"
        ) from None
    return simplejpeg


def check_rgb_image(image: np.ndarray, field: str = "image") -> np.ndarray:
    """Refuse anything but uint8 HWC with 3 channels, naming the likely fix."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ImageError(
            f"{field}: images must be uint8 RGB, got {image.dtype}; scale floats with "
            "(img * 255).clip(0, 255).astype(np.uint8)"
        )
    if image.ndim != 3 or image.shape[2] != 3:
        hint = (
            " (it looks CHW: transpose with img.transpose(1, 2, 0))"
            if (image.ndim == 3 and image.shape[0] == 3)
            else ""
        )
        raise ImageError(f"{field}: images must be HxWx3 RGB, got shape {image.shape}{hint}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ImageError(
            f"{field}: image shape {image.shape} is empty; height and width must be >= 1"
        )
    return image


def encode_image(image: np.ndarray, quality: int, field: str = "image") -> dict[str, Any]:
    """`quality` 1..100 encodes JPEG; 0 sends raw bytes."""
    image = check_rgb_image(image, field)
    if not 0 <= quality <= 100:
        raise ImageError(f"{field}: jpeg quality must be 0 (raw) or 1..100, got {quality}")
    height, width, _ = image.shape
    if quality == 0:
        data = np.ascontiguousarray(image).tobytes()
        return {"format": RAW, "shape": [height, width, 3], "data": data}
    data = _simplejpeg(field).encode_jpeg(
        np.ascontiguousarray(image),
        quality=quality,
        colorspace="RGB",
        colorsubsampling=JPEG_SUBSAMPLING,
        fastdct=True,
    )
    return {"format": JPEG, "shape": [height, width, 3], "data": data}


def decode_image(
    obj: object, *, field: str = "image", limits: DecodeLimits = DEFAULT_LIMITS
) -> np.ndarray:
    """HxWx3 uint8 RGB; the declared shape is checked against the cap before decoding."""
    if not isinstance(obj, dict):
        raise ImageError(f"{field}: expected an image map, got {type(obj).__name__}")
    fmt, shape, data = obj.get("format"), obj.get("shape"), obj.get("data")
    if fmt not in (JPEG, RAW):
        raise ImageError(f"{field}: format must be 'jpeg' or 'raw', got {fmt!r}")
    if not isinstance(data, bytes):
        raise ImageError(f"{field}: data must be bytes, got {type(data).__name__}")
    if (
        not isinstance(shape, list)
        or len(shape) != 3
        or not all(isinstance(s, int) and not isinstance(s, bool) for s in shape)
        or shape[2] != 3
        or shape[0] <= 0
        or shape[1] <= 0
    ):
        raise ImageError(f"{field}: shape must be [height, width, 3], got {shape!r}")
    height, width, _ = shape
    if height * width > limits.max_image_pixels:
        raise TooLargeError(
            f"{field}: {height}x{width} exceeds the cap of {limits.max_image_pixels} pixels"
        )
    if fmt == RAW:
        if len(data) != height * width * 3:
            raise ImageError(f"{field}: raw {height}x{width}x3 needs {height * width * 3} bytes")
        return np.frombuffer(data, dtype=np.uint8).reshape(height, width, 3)
    simplejpeg = _simplejpeg(field)
    try:
        jpeg_height, jpeg_width, _, _ = simplejpeg.decode_jpeg_header(data)
    except ValueError as exc:
        raise ImageError(f"{field}: not a JPEG stream ({exc})") from None
    if (jpeg_height, jpeg_width) != (height, width):
        raise ImageError(
            f"{field}: JPEG is {jpeg_height}x{jpeg_width} but the message declares {height}x{width}"
        )
    try:
        return simplejpeg.decode_jpeg(data, colorspace="RGB", fastdct=True, fastupsample=True)
    except ValueError as exc:
        raise ImageError(f"{field}: corrupt JPEG ({exc})") from None
