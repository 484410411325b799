"""Random, truncated and mutated bytes into every decoder: a `WireError` or a valid value.

Any other exception fails the test, and so does a decode that allocates more than the tight
limits below allow for its input. Examples are derandomised so a run is reproducible.
"""

from __future__ import annotations

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from policylink import wire

from .allocation import decode_measured
from .golden_messages import GOLDEN, encode_golden

FUZZ = settings(
    max_examples=150,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

LIMITS = wire.DecodeLimits(
    max_message_bytes=64 * 1024,
    max_tensor_bytes=16 * 1024,
    max_ndim=4,
    max_images=2,
    max_image_pixels=32 * 32,
    max_string_bytes=1024,
    max_items=64,
)


def allowance(data_len: int) -> int:
    """Peak bytes a decode may trace: Python objects for every input byte, plus decoded images."""
    return 64 * 1024 + 256 * data_len + LIMITS.max_images * LIMITS.max_image_pixels * 3


def small_jpeg() -> bytes:
    y, x = np.mgrid[0:24, 0:32]
    frame = np.stack([x * 8, y * 10, x + y], axis=-1).astype(np.uint8)
    return wire.encode_image(frame, 80)["data"]


JPEG_OBSERVATION = wire.encode_observation(
    wire.Observation(
        state=np.arange(6, dtype=np.float32),
        images={"top": np.full((24, 32, 3), 90, np.uint8)},
        task="stack",
    ),
    jpeg_quality=80,
)
SAMPLES = [(m.MSG_TYPE, encode_golden(m)) for m in GOLDEN.values()] + [
    (wire.MsgType.OBSERVATION, JPEG_OBSERVATION)
]

msgpack_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=16)
    | st.binary(max_size=64),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=16,
)
boundary_sizes = st.sampled_from([0, 1, 3, 2**31, 2**63, 2**64 - 1])
sizes = boundary_sizes | st.integers(-2, 40) | st.integers(0, 2**64 - 1)
shapes = st.lists(boundary_sizes, max_size=5) | st.lists(sizes, max_size=6) | msgpack_values
positions = st.floats(0, 1, exclude_max=True)
dtypes = st.sampled_from([*sorted(wire.ALLOWED_DTYPES), "object", "complex64", "<f4", "V4", ""])


def check_decode(msg_type: wire.MsgType, data: bytes) -> object:
    outcome, peak = decode_measured(lambda: wire.decode_message(msg_type, data, LIMITS))
    assert peak <= allowance(len(data)), f"decoding {len(data)} bytes traced {peak} bytes"
    return outcome


@pytest.mark.parametrize("msg_type", list(wire.MsgType), ids=lambda t: t.name.lower())
@FUZZ
@given(data=st.binary(max_size=512))
def test_random_bytes_decode_or_raise_wire_error(msg_type: wire.MsgType, data: bytes) -> None:
    check_decode(msg_type, data)


@FUZZ
@given(sample=st.sampled_from(SAMPLES), cut=positions)
def test_truncated_messages_raise_wire_error(
    sample: tuple[wire.MsgType, bytes], cut: float
) -> None:
    msg_type, data = sample
    assert isinstance(check_decode(msg_type, data[: int(len(data) * cut)]), wire.WireError)


@FUZZ
@given(
    sample=st.sampled_from(SAMPLES),
    edits=st.lists(st.tuples(positions, st.integers(0, 255)), min_size=1),
)
def test_byte_mutated_messages_decode_or_raise_wire_error(
    sample: tuple[wire.MsgType, bytes], edits: list[tuple[float, int]]
) -> None:
    msg_type, data = sample
    mutated = bytearray(data)
    for position, value in edits:
        mutated[int(position * len(mutated))] = value
    check_decode(msg_type, bytes(mutated))


@FUZZ
@given(
    sample=st.sampled_from(SAMPLES),
    position=st.floats(0, 1),
    inserted=st.binary(min_size=1, max_size=8),
    deleted=st.integers(0, 8),
)
def test_spliced_messages_decode_or_raise_wire_error(
    sample: tuple[wire.MsgType, bytes], position: float, inserted: bytes, deleted: int
) -> None:
    msg_type, data = sample
    at = int(position * len(data))
    check_decode(msg_type, data[:at] + inserted + data[at + deleted :])


@FUZZ
@given(sample=st.sampled_from(SAMPLES), field=st.integers(0, 31), value=msgpack_values)
def test_any_value_in_any_field_decodes_or_raises_wire_error(
    sample: tuple[wire.MsgType, bytes], field: int, value: object
) -> None:
    msg_type, data = sample
    body = msgpack.unpackb(data, raw=False)
    keys = sorted(body) or ["state"]
    body[keys[field % len(keys)]] = value
    check_decode(msg_type, msgpack.packb(body, use_bin_type=True))


@st.composite
def tensor_maps(draw: st.DrawFn) -> dict[str, object]:
    """Mostly payloads of exactly the claimed length, so checks after the length check are hit."""
    dtype = draw(dtypes)
    shape = draw(shapes)
    data = draw(st.binary(max_size=256))
    if dtype in wire.ALLOWED_DTYPES and isinstance(shape, list) and draw(st.booleans()):
        claimed = np.dtype(dtype).itemsize
        for size in shape:
            claimed *= size if isinstance(size, int) else 1
        if 0 <= claimed <= 4096:
            data = draw(st.binary(min_size=claimed, max_size=claimed))
    return {"dtype": dtype, "shape": shape, "data": data}


@settings(FUZZ, max_examples=400)
@given(obj=tensor_maps())
@example(obj={"dtype": "float32", "shape": [0, 2**63], "data": b""})
@example(obj={"dtype": "bool", "shape": [2], "data": b"\x01\x02"})
def test_tensor_maps_decode_within_caps_or_raise_wire_error(obj: dict[str, object]) -> None:
    data = obj["data"]
    assert isinstance(data, bytes)
    outcome, peak = decode_measured(lambda: wire.decode_tensor(obj, limits=LIMITS))
    if isinstance(outcome, np.ndarray):
        assert outcome.nbytes == len(data) <= LIMITS.max_tensor_bytes
        assert list(outcome.shape) == obj["shape"]
        assert outcome.dtype != np.bool_ or outcome.view(np.uint8).max(initial=0) <= 1
    assert peak <= allowance(len(data))


@st.composite
def image_maps(draw: st.DrawFn) -> dict[str, object]:
    """Shapes near the pixel cap, raw payloads of the claimed length, and mutated JPEG streams."""
    fmt = draw(st.sampled_from(["raw", "jpeg", "png", b"raw"]))
    sides = st.lists(st.integers(1, 48), min_size=2, max_size=2)
    shape = draw(sides.map(lambda hw: [*hw, 3]) | shapes)
    data = draw(st.binary(max_size=256))
    if fmt == "jpeg" and draw(st.booleans()):
        stream = bytearray(small_jpeg())
        for position, value in draw(st.lists(st.tuples(positions, st.integers(0, 255)))):
            stream[int(position * len(stream))] = value
        data = bytes(stream)
    elif isinstance(shape, list) and shape and draw(st.booleans()):
        claimed = 1
        for size in shape:
            claimed *= size if isinstance(size, int) else 1
        if 0 <= claimed <= 3 * 48 * 48:
            data = draw(st.binary(min_size=claimed, max_size=claimed))
    return {"format": fmt, "shape": shape, "data": data}


@FUZZ
@given(obj=image_maps())
def test_image_maps_decode_within_caps_or_raise_wire_error(obj: dict[str, object]) -> None:
    data = obj["data"]
    assert isinstance(data, bytes)
    outcome, peak = decode_measured(lambda: wire.decode_image(obj, limits=LIMITS))
    if isinstance(outcome, np.ndarray):
        assert outcome.dtype == np.uint8
        assert list(outcome.shape) == obj["shape"]
        assert outcome.shape[0] * outcome.shape[1] <= LIMITS.max_image_pixels
    assert peak <= allowance(len(data))


@FUZZ
@given(shape=st.sampled_from([[24, 32, 3], [32, 24, 3], [1, 1, 3]]), cut=st.floats(0, 1))
def test_jpeg_streams_that_do_not_match_their_shape_raise_image_error(
    shape: list[int], cut: float
) -> None:
    data = small_jpeg()
    data = data[: max(1, int(len(data) * cut))]
    obj = {"format": "jpeg", "shape": shape, "data": data}
    outcome, _ = decode_measured(lambda: wire.decode_image(obj, limits=LIMITS))
    if shape != [24, 32, 3]:
        assert isinstance(outcome, wire.ImageError)


@FUZZ
@given(data=st.binary(max_size=64))
def test_random_headers_unpack_or_raise_header_error(data: bytes) -> None:
    try:
        header = wire.unpack_header(data)
    except wire.HeaderError:
        return
    assert len(data) == wire.HEADER_SIZE
    assert wire.pack_header(header) == data


@FUZZ
@given(data=st.binary(min_size=wire.HEADER_SIZE, max_size=wire.HEADER_SIZE))
def test_every_27_byte_attachment_is_a_header_unless_its_type_is_unknown(data: bytes) -> None:
    try:
        header = wire.unpack_header(data)
    except wire.HeaderError as exc:
        assert data[2] not in {t.value for t in wire.MsgType}, exc
        return
    assert header.msg_type.value == data[2]
