"""Tensors on the wire: raw little-endian bytes plus dtype name and shape.

No pickle and no object arrays: a dtype allowlist, a rank cap and a byte cap are checked before
any buffer is touched, and the byte count must match the shape exactly.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from policylink.wire.errors import TensorError, TooLargeError
from policylink.wire.limits import DEFAULT_LIMITS, DecodeLimits

ALLOWED_DTYPES: frozenset[str] = frozenset(
    {
        "bool",
        "uint8",
        "int8",
        "uint16",
        "int16",
        "uint32",
        "int32",
        "uint64",
        "int64",
        "float16",
        "float32",
        "float64",
    }
)
_WIRE_DTYPES = {name: np.dtype(name).newbyteorder("<") for name in ALLOWED_DTYPES}
# Looked up by (kind, itemsize) because `dtype.name` costs microseconds per call in numpy 2,
# which made naming the dtype the dearest step of encoding an action chunk.
_NAME_OF = {(dtype.kind, dtype.itemsize): name for name, dtype in _WIRE_DTYPES.items()}


def encode_tensor(array: np.ndarray) -> dict[str, Any]:
    """Little-endian bytes whatever the input byte order, so every host reads the same layout."""
    array = np.asarray(array)
    name = _NAME_OF.get((array.dtype.kind, array.dtype.itemsize))
    if name is None:
        raise TensorError(
            f"dtype {array.dtype} cannot be sent; use one of {sorted(ALLOWED_DTYPES)}"
        )
    little = np.ascontiguousarray(array, dtype=_WIRE_DTYPES[name])
    return {"dtype": name, "shape": list(array.shape), "data": little.tobytes()}


def decode_tensor(
    obj: object,
    *,
    field: str = "tensor",
    limits: DecodeLimits = DEFAULT_LIMITS,
    dtype: str | None = None,
) -> np.ndarray:
    """Zero-copy, read-only view of the payload in native byte order.

    `dtype`, when given, is the only dtype accepted for this field.
    """
    if not isinstance(obj, dict):
        raise TensorError(f"{field}: expected a tensor map, got {type(obj).__name__}")
    name, shape, data = obj.get("dtype"), obj.get("shape"), obj.get("data")
    if not isinstance(name, str) or name not in ALLOWED_DTYPES:
        raise TensorError(f"{field}: dtype {name!r} is not one of {sorted(ALLOWED_DTYPES)}")
    if dtype is not None and name != dtype:
        raise TensorError(f"{field}: dtype must be {dtype}, got {name}")
    return array_from_bytes(shape, data, _WIRE_DTYPES[name], field=field, limits=limits)


def array_from_bytes(
    shape: object, data: object, dtype: np.dtype, *, field: str, limits: DecodeLimits
) -> np.ndarray:
    """Zero-copy, read-only view of `data` as `shape`, in native byte order.

    Every tensor decoder comes through here, the native format above and OpenPI's
    msgpack-numpy in the transport package, so whichever protocol carried the bytes, rank,
    sizes and byte count are checked before numpy sees them. `dtype` is already allowed.
    """
    if not isinstance(shape, list) or len(shape) > limits.max_ndim:
        raise TensorError(f"{field}: shape must be a list of at most {limits.max_ndim} sizes")
    if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape):
        raise TensorError(f"{field}: shape {shape!r} must hold non-negative integers")
    # A zero-sized axis makes the byte count 0 whatever the other axes claim; bounding them too
    # keeps a shape like [0, 2**63] from reaching numpy, which refuses it with a ValueError.
    if math.prod(max(s, 1) for s in shape) > limits.max_tensor_bytes:
        raise TooLargeError(
            f"{field}: shape {shape} is over the cap of {limits.max_tensor_bytes} elements"
        )
    if not isinstance(data, bytes):
        raise TensorError(f"{field}: data must be bytes, got {type(data).__name__}")
    expected = math.prod(shape) * dtype.itemsize
    if expected > limits.max_tensor_bytes:
        raise TooLargeError(
            f"{field}: shape {shape} of {dtype} needs {expected} bytes, over the cap of "
            f"{limits.max_tensor_bytes}"
        )
    if len(data) != expected:
        raise TensorError(
            f"{field}: shape {shape} of {dtype} needs {expected} bytes, got {len(data)}"
        )
    if dtype.kind == "b" and data.translate(None, b"\x00\x01"):
        # numpy would accept any non-zero byte as True and compare it unequal to True.
        raise TensorError(f"{field}: bool tensor bytes must be 0 or 1")
    array = np.frombuffer(data, dtype=dtype).reshape(shape)
    if not dtype.isnative:
        array = array.astype(dtype.newbyteorder("="))
    return array
