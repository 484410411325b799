"""The one exception family every decoder raises, and the codes that cross the wire.

A decoder that lets a `KeyError` or a numpy `ValueError` escape turns a malformed message into a
crash somewhere far from the cause. Every failure on bad input is a `WireError` with a code a
machine can act on and a message a person can act on.
"""

from __future__ import annotations

from enum import Enum


class ErrorCode(str, Enum):
    """Machine-readable reasons carried by error replies and raised errors."""

    BAD_MESSAGE = "bad_message"
    BAD_HEADER = "bad_header"
    BAD_TENSOR = "bad_tensor"
    BAD_IMAGE = "bad_image"
    TOO_LARGE = "too_large"
    BAD_KEY = "bad_key"
    UNSUPPORTED_SCHEMA = "unsupported_schema"
    ACTION_MISMATCH = "action_mismatch"
    CAMERA_MISMATCH = "camera_mismatch"
    STATE_MISMATCH = "state_mismatch"
    FPS_MISMATCH = "fps_mismatch"
    TASK_PINNED = "task_pinned"
    CAPACITY = "capacity"
    RATE_LIMITED = "rate_limited"
    CLIENT_IN_USE = "client_in_use"
    UNKNOWN_SESSION = "unknown_session"
    STALE_SESSION = "stale_session"
    POLICY_ERROR = "policy_error"
    DRAINING = "draining"
    UNAUTHORIZED = "unauthorized"
    INTERNAL = "internal"


class WireError(Exception):
    """Bad input at the wire boundary; `code` says what kind, the message says what to fix."""

    code: ErrorCode = ErrorCode.BAD_MESSAGE

    def __init__(self, message: str, code: ErrorCode | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class DecodeError(WireError):
    """The bytes are not a well-formed message of the expected type."""


class HeaderError(WireError):
    code = ErrorCode.BAD_HEADER


class TensorError(WireError):
    code = ErrorCode.BAD_TENSOR


class ImageError(WireError):
    code = ErrorCode.BAD_IMAGE


class TooLargeError(WireError):
    """A size cap would be exceeded; raised before anything of that size is allocated."""

    code = ErrorCode.TOO_LARGE


class KeyExprError(WireError):
    code = ErrorCode.BAD_KEY


class SchemaError(WireError):
    code = ErrorCode.UNSUPPORTED_SCHEMA
