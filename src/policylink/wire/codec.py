"""msgpack codecs for every message of the native protocol.

Decoding is bounded twice: msgpack's own length caps stop a hostile length prefix before any
allocation, and each field is type-checked as it is read so a wrong type is a `DecodeError`
naming the field, never a silent wrong value. An observation's cheap fields are read first and
its images last, after every image's name has been checked against the cameras the limits
allow: a message that would be refused never costs a decoded pixel.
"""

from __future__ import annotations

import io
import math
from typing import Any, TypeVar

import msgpack
import numpy as np

from policylink.wire.errors import DecodeError, ErrorCode, HeaderError, TooLargeError, WireError
from policylink.wire.header import MsgType
from policylink.wire.image import decode_image, encode_image
from policylink.wire.limits import DEFAULT_LIMITS, DecodeLimits
from policylink.wire.messages import (
    ActionChunk,
    CameraSpec,
    Capabilities,
    ErrorReply,
    Message,
    Observation,
    Reset,
    ResetAck,
    SessionAck,
    SessionClose,
    SessionOpen,
    Status,
    StatusRequest,
)
from policylink.wire.tensor import decode_tensor, encode_tensor

_REQUIRED: Any = object()
_T = TypeVar("_T")
# Bytes read to find an observation's remaining playback: a map header, a key, a float64.
PEEK_BYTES = 32
_U32 = 2**32


def _pack(body: dict[str, Any]) -> bytes:
    return msgpack.packb(body, use_bin_type=True)


def _unpack(data: bytes | bytearray | memoryview, limits: DecodeLimits, what: str) -> dict:
    if len(data) > limits.max_message_bytes:
        raise TooLargeError(
            f"{what}: {len(data)} bytes exceeds the cap of {limits.max_message_bytes}"
        )
    try:
        body = msgpack.unpackb(
            data, raw=False, strict_map_key=True, use_list=True, **limits.msgpack_caps()
        )
    except Exception as exc:  # msgpack raises a zoo of types for bad bytes
        raise DecodeError(f"{what}: not a valid msgpack body ({type(exc).__name__})") from None
    if not isinstance(body, dict):
        raise DecodeError(f"{what}: body must be a map, got {type(body).__name__}")
    return body


class _Fields:
    """Typed reads from a decoded map; every failure names the message and field."""

    def __init__(self, body: dict, what: str, limits: DecodeLimits) -> None:
        self.body, self.what, self.limits = body, what, limits

    def _get(self, key: str, default: Any) -> Any:
        if key in self.body:
            return self.body[key]
        if default is _REQUIRED:
            raise DecodeError(f"{self.what}: missing field {key!r}")
        return default

    def fail(self, key: str, expected: str, value: object) -> DecodeError:
        return DecodeError(
            f"{self.what}: field {key!r} must be {expected}, got {type(value).__name__}"
        )

    def str(self, key: str, default: Any = _REQUIRED) -> str:
        value = self._get(key, default)
        if not isinstance(value, str):
            raise self.fail(key, "a string", value)
        return value

    def text(self, key: str, default: Any = _REQUIRED) -> str:
        """Free text (a task, a reason): a string of at most `max_text_bytes` UTF-8 bytes."""
        value = self.str(key, default)
        _check_text(value, f"{self.what}: field {key!r}", self.limits.max_text_bytes)
        return value

    def int(self, key: str, default: Any = _REQUIRED, lo: int = 0, hi: int = _U32) -> int:
        value = self._get(key, default)
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.fail(key, "an integer", value)
        if not lo <= value < hi:
            raise DecodeError(f"{self.what}: field {key!r}={value} is outside [{lo}, {hi})")
        return value

    def float(self, key: str, default: Any = _REQUIRED) -> float:
        value = self._get(key, default)
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise self.fail(key, "a number", value)
        if not math.isfinite(value):
            raise DecodeError(f"{self.what}: field {key!r} must be finite, got {value}")
        return float(value)

    def optional_float(self, key: str) -> float | None:
        return None if self.body.get(key) is None else self.float(key)

    def bool(self, key: str, default: Any = _REQUIRED) -> bool:
        value = self._get(key, default)
        if not isinstance(value, bool):
            raise self.fail(key, "a boolean", value)
        return value

    def list(self, key: str, default: Any = _REQUIRED) -> list:
        value = self._get(key, default)
        if not isinstance(value, list):
            raise self.fail(key, "a list", value)
        return value

    def map(self, key: str, default: Any = _REQUIRED) -> dict:
        value = self._get(key, default)
        if not isinstance(value, dict):
            raise self.fail(key, "a map", value)
        return value

    def str_list(self, key: str, default: Any = _REQUIRED) -> list[str]:
        items = self.list(key, default)
        if not all(isinstance(item, str) for item in items):
            raise DecodeError(f"{self.what}: field {key!r} must hold only strings")
        return items

    def str_map(self, key: str, default: Any = _REQUIRED) -> dict[str, str]:
        mapping = self.map(key, default)
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()):
            raise DecodeError(f"{self.what}: field {key!r} must map strings to strings")
        return mapping

    def tags(self, key: str) -> dict[str, str]:
        """At most `max_tags` string pairs of at most `max_tag_bytes` each."""
        tags = self.str_map(key, {})
        limits = self.limits
        if len(tags) > limits.max_tags:
            raise DecodeError(f"{self.what}: {len(tags)} {key} exceed the cap of {limits.max_tags}")
        for name, value in tags.items():
            _check_text(name, f"{self.what}: a key of {key!r}", limits.max_tag_bytes)
            _check_text(value, f"{self.what}: {key}[{name[:32]!r}]", limits.max_tag_bytes)
        return tags

    def tensor(self, key: str, default: Any = _REQUIRED) -> np.ndarray | None:
        value = self._get(key, default)
        if value is None:
            return None
        return decode_tensor(value, field=f"{self.what}.{key}", limits=self.limits)

    def nested(self, key: str) -> _Fields:
        return _Fields(self.map(key), f"{self.what}.{key}", self.limits)


def _check_text(value: str, what: str, cap: int) -> None:
    # Characters first: a string of more than `cap` characters is more than `cap` bytes.
    if len(value) > cap or len(value.encode("utf-8", "surrogatepass")) > cap:
        raise DecodeError(f"{what} is longer than {cap} bytes; shorten it")


def encode_observation(obs: Observation, jpeg_quality: int = 90) -> bytes:
    """`jpeg_quality=0` sends raw images (no codec loss, ~10x the bytes).

    `playback_left_ms` is written first, so a server surface reads it from the first bytes
    (`peek_playback_left_ms`) without decoding the images behind it.
    """
    playback = None if obs.playback_left_ms is None else float(obs.playback_left_ms)
    return _pack(
        {
            "playback_left_ms": playback,
            "state": encode_tensor(obs.state),
            "images": {
                name: encode_image(image, jpeg_quality, f"images.{name}")
                for name, image in obs.images.items()
            },
            "task": obs.task,
            "inference_delay_steps": obs.inference_delay_steps,
            "prefix_model": None if obs.prefix_model is None else encode_tensor(obs.prefix_model),
            "prefix_robot": None if obs.prefix_robot is None else encode_tensor(obs.prefix_robot),
            "episode_start": obs.episode_start,
        }
    )


def decode_observation(
    data: bytes | bytearray | memoryview, limits: DecodeLimits = DEFAULT_LIMITS
) -> Observation:
    """Every cap in `limits` is checked before the images are decoded (see the module doc)."""
    f = _Fields(_unpack(data, limits, "observation"), "observation", limits)
    raw_images = _image_fields(f)
    state = f.tensor("state")
    if state is None:
        raise DecodeError("observation: field 'state' must be a tensor, got null")
    obs = Observation(
        state=state,
        task=f.text("task", ""),
        inference_delay_steps=f.int("inference_delay_steps", 0),
        prefix_model=f.tensor("prefix_model", None),
        prefix_robot=f.tensor("prefix_robot", None),
        episode_start=f.bool("episode_start", False),
        playback_left_ms=_playback_left(f.optional_float("playback_left_ms")),
    )
    obs.images = {
        name: decode_image(
            image,
            field=f"observation.images.{name}",
            limits=limits,
            camera=limits.camera(name),
        )
        for name, image in raw_images.items()
    }
    return obs


def _image_fields(f: _Fields) -> dict[str, object]:
    """The encoded images, once their count and every name is known to be allowed."""
    limits = f.limits
    raw_images = f.map("images", {})
    for name in raw_images:
        if not isinstance(name, str):
            raise DecodeError("observation: image names must be strings")
        if limits.cameras is not None and limits.camera(name) is None:
            names = [camera.name for camera in limits.cameras]
            raise WireError(
                f"observation.images has camera {name[:64]!r}, which the policy does not read; "
                f"send only its cameras {names}",
                ErrorCode.CAMERA_MISMATCH,
            )
    if len(raw_images) > limits.max_images:
        raise TooLargeError(f"observation: {len(raw_images)} images exceed {limits.max_images}")
    return raw_images


def _playback_left(value: float | None) -> float | None:
    if value is not None and value < 0:
        raise DecodeError(f"observation: playback_left_ms must be >= 0, got {value}")
    return value


def peek_playback_left_ms(data: bytes | bytearray | memoryview) -> float | None:
    """The robot's remaining playback from the first bytes of an encoded observation, or None.

    For schedulers, on a transport's callback thread: it reads one map entry and never touches
    the images. Anything unexpected gives None; the full decode reports what is wrong later.
    """
    try:
        unpacker = msgpack.Unpacker(io.BytesIO(data), read_size=PEEK_BYTES, max_buffer_size=4096)
        if unpacker.read_map_header() < 1 or unpacker.unpack() != "playback_left_ms":
            return None
        value = unpacker.unpack()
    except (ValueError, msgpack.UnpackException, msgpack.OutOfData):
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and value >= 0 else None


def encode_action_chunk(chunk: ActionChunk) -> bytes:
    return _pack(
        {
            "chunk_model": encode_tensor(chunk.chunk_model),
            "chunk_robot": encode_tensor(chunk.chunk_robot),
            "queue_wait_ms": float(chunk.queue_wait_ms),
            "inference_ms": float(chunk.inference_ms),
            "superseded": int(chunk.superseded),
            "server_load": float(chunk.server_load),
        }
    )


def decode_action_chunk(
    data: bytes | bytearray | memoryview, limits: DecodeLimits = DEFAULT_LIMITS
) -> ActionChunk:
    f = _Fields(_unpack(data, limits, "action_chunk"), "action_chunk", limits)
    chunk_model, chunk_robot = f.tensor("chunk_model"), f.tensor("chunk_robot")
    for key, chunk in (("chunk_model", chunk_model), ("chunk_robot", chunk_robot)):
        if chunk is None or chunk.ndim != 2:
            shape = None if chunk is None else chunk.shape
            raise DecodeError(f"action_chunk: {key} must be a [T, A] tensor, got {shape}")
    return ActionChunk(
        chunk_model=chunk_model,
        chunk_robot=chunk_robot,
        queue_wait_ms=f.float("queue_wait_ms", 0.0),
        inference_ms=f.float("inference_ms", 0.0),
        superseded=f.int("superseded", 0, hi=2**63),
        server_load=f.float("server_load", 0.0),
    )


def _camera_to_wire(camera: CameraSpec) -> dict[str, Any]:
    wire = {"name": camera.name, "height": camera.height, "width": camera.width}
    if camera.input_height or camera.input_width:  # additive: absent when unset
        wire |= {"input_height": camera.input_height, "input_width": camera.input_width}
    return wire


def _cameras_from_wire(f: _Fields, key: str) -> list[CameraSpec]:
    cameras = []
    for index, item in enumerate(f.list(key, [])):
        if not isinstance(item, dict):
            raise DecodeError(f"{f.what}: {key}[{index}] must be a map")
        c = _Fields(item, f"{f.what}.{key}[{index}]", f.limits)
        cameras.append(
            CameraSpec(
                c.str("name"),
                c.int("height", 0),
                c.int("width", 0),
                c.int("input_height", 0),
                c.int("input_width", 0),
            )
        )
    return cameras


def _capabilities_to_wire(caps: Capabilities) -> dict[str, Any]:
    return {
        "model_id": caps.model_id,
        "revision": caps.revision,
        "task_slug": caps.task_slug,
        "action_names": list(caps.action_names),
        "chunk_size": caps.chunk_size,
        "state_dim": caps.state_dim,
        "state_names": list(caps.state_names),
        "cameras": [_camera_to_wire(c) for c in caps.cameras],
        "supports_rtc": caps.supports_rtc,
        "rtc_execution_horizon": caps.rtc_execution_horizon,
        "trained_fps": float(caps.trained_fps),
        "serving_mode": caps.serving_mode,
        "default_task": caps.default_task,
        "pin_task": caps.pin_task,
        "schema_min": caps.schema_min,
        "schema_max": caps.schema_max,
        "server_version": caps.server_version,
    }


def _capabilities_from_wire(f: _Fields) -> Capabilities:
    return Capabilities(
        model_id=f.str("model_id"),
        revision=f.str("revision"),
        task_slug=f.str("task_slug"),
        action_names=f.str_list("action_names"),
        chunk_size=f.int("chunk_size"),
        state_dim=f.int("state_dim"),
        state_names=f.str_list("state_names", []),
        cameras=_cameras_from_wire(f, "cameras"),
        supports_rtc=f.bool("supports_rtc", False),
        rtc_execution_horizon=f.int("rtc_execution_horizon", 0),
        trained_fps=f.float("trained_fps", 0.0),
        serving_mode=f.str("serving_mode", "shared"),
        default_task=f.str("default_task", ""),
        pin_task=f.bool("pin_task", False),
        schema_min=f.int("schema_min", 1, hi=2**16),
        schema_max=f.int("schema_max", 1, hi=2**16),
        server_version=f.str("server_version", ""),
    )


def _forward_table(f: _Fields) -> dict[int, float]:
    """`[[batch_size, ms], ...]` (msgpack maps with integer keys are refused by the decoder)."""
    table: dict[int, float] = {}
    for pair in f.list("forward_ms", []):
        if (
            not isinstance(pair, list)
            or len(pair) != 2
            or not isinstance(pair[0], int)
            or isinstance(pair[0], bool)
            or not 1 <= pair[0] <= 4096
            or not isinstance(pair[1], int | float)
            or not math.isfinite(pair[1])
        ):
            raise DecodeError(f"{f.what}: forward_ms must hold [batch_size, ms] pairs")
        table[pair[0]] = float(pair[1])
    return table


def _encode_control(msg: Message) -> dict[str, Any]:
    if isinstance(msg, StatusRequest):
        return {}
    if isinstance(msg, Status):
        return {
            "capabilities": _capabilities_to_wire(msg.capabilities),
            "replica_id": msg.replica_id,
            "active_sessions": msg.active_sessions,
            "max_sessions": msg.max_sessions,
            "draining": msg.draining,
            "max_batch_size": msg.max_batch_size,
            "forward_ms": [[int(k), float(v)] for k, v in sorted(msg.forward_ms.items())],
            "device_busy": float(msg.device_busy),
            "capacity_robots": msg.capacity_robots,
        }
    if isinstance(msg, SessionOpen):
        return {
            "client_id": msg.client_id,
            "action_names": list(msg.action_names),
            "state_dim": msg.state_dim,
            "cameras": [_camera_to_wire(c) for c in msg.cameras],
            "fps": float(msg.fps),
            "task": msg.task,
            "rtc": msg.rtc,
            "schema_min": msg.schema_min,
            "schema_max": msg.schema_max,
            "tags": dict(msg.tags),
            "instance": msg.instance,
        }
    if isinstance(msg, SessionAck):
        return {
            "session_id": msg.session_id,
            "session_epoch": msg.session_epoch,
            "schema_version": msg.schema_version,
            "capabilities": _capabilities_to_wire(msg.capabilities),
            "rtc_enabled": msg.rtc_enabled,
            "warnings": list(msg.warnings),
        }
    if isinstance(msg, SessionClose):
        return {"session_id": msg.session_id, "reason": msg.reason}
    if isinstance(msg, Reset | ResetAck):
        return {"session_id": msg.session_id, "episode_id": msg.episode_id}
    if isinstance(msg, ErrorReply):
        return {"code": msg.code.value, "message": msg.message, "details": dict(msg.details)}
    raise TypeError(f"not a control message: {type(msg).__name__}")


def _decode_control(msg_type: MsgType, f: _Fields) -> Message:
    if msg_type is MsgType.STATUS_REQUEST:
        return StatusRequest()
    if msg_type is MsgType.STATUS:
        return Status(
            capabilities=_capabilities_from_wire(f.nested("capabilities")),
            replica_id=f.str("replica_id", ""),
            active_sessions=f.int("active_sessions", 0),
            max_sessions=f.int("max_sessions", 0),
            draining=f.bool("draining", False),
            max_batch_size=f.int("max_batch_size", 1, lo=1, hi=4096),
            forward_ms=_forward_table(f),
            device_busy=f.float("device_busy", 0.0),
            capacity_robots=f.int("capacity_robots", 0),
        )
    if msg_type is MsgType.SESSION_OPEN:
        return SessionOpen(
            client_id=f.str("client_id"),
            action_names=f.str_list("action_names"),
            state_dim=f.int("state_dim"),
            cameras=_cameras_from_wire(f, "cameras"),
            fps=f.float("fps", 0.0),
            task=f.text("task", ""),
            rtc=f.bool("rtc", False),
            schema_min=f.int("schema_min", 1, hi=2**16),
            schema_max=f.int("schema_max", 1, hi=2**16),
            tags=f.tags("tags"),
            instance=f.str("instance", ""),
        )
    if msg_type is MsgType.SESSION_ACK:
        return SessionAck(
            session_id=f.str("session_id"),
            session_epoch=f.int("session_epoch"),
            schema_version=f.int("schema_version", hi=2**16),
            capabilities=_capabilities_from_wire(f.nested("capabilities")),
            rtc_enabled=f.bool("rtc_enabled", False),
            warnings=f.str_list("warnings", []),
        )
    if msg_type is MsgType.SESSION_CLOSE:
        return SessionClose(session_id=f.str("session_id"), reason=f.text("reason", ""))
    if msg_type is MsgType.RESET:
        return Reset(session_id=f.str("session_id"), episode_id=f.int("episode_id"))
    if msg_type is MsgType.RESET_ACK:
        return ResetAck(session_id=f.str("session_id"), episode_id=f.int("episode_id"))
    if msg_type is MsgType.ERROR:
        raw_code = f.str("code")
        try:
            code = ErrorCode(raw_code)
        except ValueError:
            code = ErrorCode.INTERNAL  # a newer peer's code: still an error, still readable
        details = f.map("details", {})
        if not all(
            isinstance(k, str) and isinstance(v, int | float | str) and not isinstance(v, bool)
            for k, v in details.items()
        ):
            raise DecodeError("error: details must map strings to numbers or strings")
        return ErrorReply(code=code, message=f.str("message"), details=details)
    raise DecodeError(f"message type {msg_type.name} is not a control message")


def encode_message(msg: Message, jpeg_quality: int = 90) -> bytes:
    """Body bytes of any message; the header travels separately."""
    if isinstance(msg, Observation):
        return encode_observation(msg, jpeg_quality)
    if isinstance(msg, ActionChunk):
        return encode_action_chunk(msg)
    return _pack(_encode_control(msg))


def decode_message(
    msg_type: MsgType | int,
    data: bytes | bytearray | memoryview,
    limits: DecodeLimits = DEFAULT_LIMITS,
) -> Message:
    """Decode a body of the type its header names; raises only `WireError`."""
    try:
        msg_type = MsgType(msg_type)
    except ValueError:
        raise HeaderError(f"unknown message type {msg_type!r}") from None
    if msg_type is MsgType.OBSERVATION:
        return decode_observation(data, limits)
    if msg_type is MsgType.ACTION_CHUNK:
        return decode_action_chunk(data, limits)
    what = msg_type.name.lower()
    return _decode_control(msg_type, _Fields(_unpack(data, limits, what), what, limits))


def decode_expected(
    expected: type[_T],
    msg_type: MsgType,
    data: bytes | bytearray | memoryview,
    limits: DecodeLimits = DEFAULT_LIMITS,
) -> _T | ErrorReply:
    """Decode a reply that must be `expected` or an `ErrorReply` (the two answers a query gets)."""
    msg = decode_message(msg_type, data, limits)
    if isinstance(msg, expected | ErrorReply):
        return msg
    raise WireError(f"expected {expected.__name__}, got {type(msg).__name__}")
