"""The native wire format: header, messages, bounded codecs, key expressions.

Depends on numpy and msgpack only (simplejpeg is imported when a JPEG is encoded or decoded),
so the robot side can import it without torch or zenoh.
"""

from policylink.wire.codec import (
    decode_action_chunk,
    decode_expected,
    decode_message,
    decode_observation,
    encode_action_chunk,
    encode_message,
    encode_observation,
)
from policylink.wire.errors import (
    DecodeError,
    ErrorCode,
    HeaderError,
    ImageError,
    KeyExprError,
    SchemaError,
    TensorError,
    TooLargeError,
    WireError,
)
from policylink.wire.header import HEADER_SIZE, Header, MsgType, pack_header, unpack_header
from policylink.wire.image import check_rgb_image, decode_image, encode_image
from policylink.wire.keys import RESERVED, ROOT, Namespace, client_segment, sanitize_segment
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
from policylink.wire.schema import SCHEMA_MAX, SCHEMA_MIN, SCHEMA_VERSION, negotiate_schema
from policylink.wire.tensor import ALLOWED_DTYPES, decode_tensor, encode_tensor

__all__ = [
    "ALLOWED_DTYPES",
    "DEFAULT_LIMITS",
    "HEADER_SIZE",
    "RESERVED",
    "ROOT",
    "SCHEMA_MAX",
    "SCHEMA_MIN",
    "SCHEMA_VERSION",
    "ActionChunk",
    "CameraSpec",
    "Capabilities",
    "DecodeError",
    "DecodeLimits",
    "ErrorCode",
    "ErrorReply",
    "Header",
    "HeaderError",
    "ImageError",
    "KeyExprError",
    "Message",
    "MsgType",
    "Namespace",
    "Observation",
    "Reset",
    "ResetAck",
    "SchemaError",
    "SessionAck",
    "SessionClose",
    "SessionOpen",
    "Status",
    "StatusRequest",
    "TensorError",
    "TooLargeError",
    "WireError",
    "check_rgb_image",
    "client_segment",
    "decode_action_chunk",
    "decode_expected",
    "decode_image",
    "decode_message",
    "decode_observation",
    "decode_tensor",
    "encode_action_chunk",
    "encode_image",
    "encode_message",
    "encode_observation",
    "encode_tensor",
    "negotiate_schema",
    "pack_header",
    "sanitize_segment",
    "unpack_header",
]
