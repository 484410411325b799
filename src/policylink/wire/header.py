"""The fixed little-endian header every data message carries as a Zenoh attachment.

It is read without decoding the body, so the server can route, drop stale messages and count
them before paying for msgpack or JPEG work.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from policylink.wire.errors import HeaderError

_HEADER = struct.Struct("<HBQIqI")
HEADER_SIZE = _HEADER.size

_U8, _U16, _U32, _U64 = 2**8, 2**16, 2**32, 2**64
_I64 = 2**63


class MsgType(IntEnum):
    OBSERVATION = 1
    ACTION_CHUNK = 2
    STATUS_REQUEST = 3
    STATUS = 4
    SESSION_OPEN = 5
    SESSION_ACK = 6
    SESSION_CLOSE = 7
    RESET = 8
    RESET_ACK = 9
    ERROR = 10


@dataclass(frozen=True, slots=True)
class Header:
    """Identity of one message: `(seq_id, episode_id, session_epoch)` decides which chunk merges.

    `client_mono_ns` is the client's monotonic clock at send time; the server echoes it untouched
    and never compares it with its own clock (no wall-clock instant crosses machines).
    """

    schema_version: int
    msg_type: MsgType
    seq_id: int = 0
    episode_id: int = 0
    client_mono_ns: int = 0
    session_epoch: int = 0

    def echo(self, msg_type: MsgType, schema_version: int | None = None) -> Header:
        """The header of the reply to this request: its identity untouched, because the client
        merges a chunk only if it answers its newest outstanding request, and measures the round
        trip from its own echoed clock stamp."""
        schema = self.schema_version if schema_version is None else schema_version
        return Header(
            schema,
            msg_type,
            seq_id=self.seq_id,
            episode_id=self.episode_id,
            client_mono_ns=self.client_mono_ns,
            session_epoch=self.session_epoch,
        )


def pack_header(header: Header) -> bytes:
    for name, value, upper, lower in (
        ("schema_version", header.schema_version, _U16, 0),
        ("msg_type", int(header.msg_type), _U8, 0),
        ("seq_id", header.seq_id, _U64, 0),
        ("episode_id", header.episode_id, _U32, 0),
        ("client_mono_ns", header.client_mono_ns, _I64, -_I64),
        ("session_epoch", header.session_epoch, _U32, 0),
    ):
        if not isinstance(value, int) or isinstance(value, bool):
            raise HeaderError(f"header field {name} must be an integer, got {value!r}")
        if not lower <= value < upper:
            raise HeaderError(f"header field {name}={value} is outside [{lower}, {upper})")
    return _HEADER.pack(
        header.schema_version,
        int(header.msg_type),
        header.seq_id,
        header.episode_id,
        header.client_mono_ns,
        header.session_epoch,
    )


def unpack_header(data: bytes | bytearray | memoryview | None) -> Header:
    if data is None:
        raise HeaderError("message has no header attachment")
    if len(data) != HEADER_SIZE:
        raise HeaderError(f"header must be {HEADER_SIZE} bytes, got {len(data)}")
    version, raw_type, seq_id, episode_id, mono_ns, epoch = _HEADER.unpack(bytes(data))
    try:
        msg_type = MsgType(raw_type)
    except ValueError:
        raise HeaderError(f"unknown message type {raw_type}") from None
    return Header(version, msg_type, seq_id, episode_id, mono_ns, epoch)
