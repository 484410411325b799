"""The numpy-in-msgpack format of the OpenPI protocol, decoded with bounds.

Wire-compatible with openpi-client's `msgpack_numpy`: an array travels as a map with *bytes*
keys `__ndarray__`, `data` (raw bytes), `dtype` (numpy's dtype string such as `<f4`) and
`shape`; a numpy scalar as `__npgeneric__`, `data`, `dtype`. What openpi-client leaves open is
closed here, because these bytes come from any socket: the dtype must be a plain bool, integer
or float (no objects, structured or complex types, so nothing can smuggle code or odd layouts),
the rank and byte count are checked against `DecodeLimits` before an array is built, and the
byte count must match the shape exactly. There is no pickle fallback.
"""

from __future__ import annotations

import math
import re

import msgpack
import numpy as np

from policylink.wire.errors import DecodeError, TensorError, TooLargeError, WireError
from policylink.wire.limits import DEFAULT_LIMITS, DecodeLimits
from policylink.wire.tensor import ALLOWED_DTYPES, array_from_bytes

_NDARRAY, _NPGENERIC = b"__ndarray__", b"__npgeneric__"
_DATA, _DTYPE, _SHAPE = b"data", b"dtype", b"shape"
# Byte order, kind and item size only: anything richer never reaches np.dtype().
_DTYPE_STR = re.compile(r"[<>|=]?[biuf][1248]")


def _pack_numpy(obj: object) -> object:
    if isinstance(obj, np.ndarray):
        _check_packable(obj.dtype)
        return {_NDARRAY: True, _DATA: obj.tobytes(), _DTYPE: obj.dtype.str, _SHAPE: obj.shape}
    if isinstance(obj, np.generic):
        if obj.dtype.kind == "U":
            return str(obj)
        _check_packable(obj.dtype)
        return {_NPGENERIC: True, _DATA: obj.item(), _DTYPE: obj.dtype.str}
    raise TypeError(f"cannot send {type(obj).__name__} over OpenPI; use numpy arrays or lists")


def _check_packable(dtype: np.dtype) -> None:
    if dtype.name not in ALLOWED_DTYPES:
        raise TensorError(f"dtype {dtype} cannot be sent; use one of {sorted(ALLOWED_DTYPES)}")


def packb(obj: object) -> bytes:
    """msgpack bytes that openpi-client's `unpackb` reads back into numpy arrays."""
    return msgpack.packb(obj, default=_pack_numpy, use_bin_type=True)


def _dtype_text(raw: object) -> str | None:
    text = raw.decode("ascii", "replace") if isinstance(raw, bytes) else raw
    return text if isinstance(text, str) else None


def _allowed_dtype(raw: object, field: str) -> np.dtype:
    text = _dtype_text(raw)
    if text is None or not _DTYPE_STR.fullmatch(text):
        raise TensorError(
            f"{field}: dtype {raw!r} is not allowed; send one of {sorted(ALLOWED_DTYPES)}"
        )
    dtype = np.dtype(text)
    if dtype.name not in ALLOWED_DTYPES:
        raise TensorError(f"{field}: dtype {dtype} is not one of {sorted(ALLOWED_DTYPES)}")
    return dtype


def _get(obj: dict, key: bytes) -> object:
    """Marker maps carry bytes keys (openpi-client); str keys are accepted from other clients."""
    return obj[key] if key in obj else obj.get(key.decode())


def _unpack_array(obj: dict, limits: DecodeLimits) -> np.ndarray:
    field = "ndarray"
    dtype = _allowed_dtype(_get(obj, _DTYPE), field)
    return array_from_bytes(_get(obj, _SHAPE), _get(obj, _DATA), dtype, field=field, limits=limits)


def _unpack_generic(obj: dict) -> object:
    raw, value = _get(obj, _DTYPE), _get(obj, _DATA)
    text = _dtype_text(raw)
    if text is not None and re.fullmatch(r"[<>|=]?U\d+", text):
        # A numpy string scalar (a prompt read from a dataset) arrives as its text.
        if not isinstance(value, str):
            raise TensorError("npgeneric: a string scalar must carry a string")
        return value
    dtype = _allowed_dtype(raw, "npgeneric")
    if not isinstance(value, bool | int | float) or isinstance(value, bool) != (dtype.kind == "b"):
        raise TensorError(f"npgeneric: a {dtype} scalar must carry a number, got {value!r}")
    try:
        with np.errstate(over="ignore"):
            scalar = dtype.type(value)
    except OverflowError:
        raise TensorError(f"npgeneric: {value!r} does not fit in {dtype}") from None
    # A finite number too large for a narrow float becomes inf without an error: refuse it as
    # an integer that does not fit is refused, rather than hand an inf on as if it were sent.
    if dtype.kind == "f" and math.isfinite(value) and not np.isfinite(scalar):
        raise TensorError(f"npgeneric: {value!r} does not fit in {dtype}")
    return scalar


def unpackb(data: bytes | bytearray | memoryview, limits: DecodeLimits = DEFAULT_LIMITS) -> object:
    """Decode one frame; every failure is a `WireError` saying what was wrong.

    Arrays are read-only views of the frame's bytes (no copy), like openpi-client's.
    """
    if len(data) > limits.max_message_bytes:
        raise TooLargeError(
            f"frame of {len(data)} bytes exceeds the cap of {limits.max_message_bytes}"
        )

    def hook(obj: dict) -> object:
        if _NDARRAY in obj or "__ndarray__" in obj:
            return _unpack_array(obj, limits)
        if _NPGENERIC in obj or "__npgeneric__" in obj:
            return _unpack_generic(obj)
        return obj

    try:
        return msgpack.unpackb(
            data, raw=False, object_hook=hook, strict_map_key=True, **limits.msgpack_caps()
        )
    except WireError:
        raise
    except Exception as exc:  # msgpack raises a zoo of types for bad bytes
        raise DecodeError(f"frame is not valid msgpack ({type(exc).__name__}: {exc})") from None
