"""Bounded capture of served requests and their replies, for replaying them offline.

Each served request becomes one msgpack file holding what `policylink replay` needs to push it
through another policy exactly as the server did: the request as a native observation message
(a Zenoh request byte for byte; an OpenPI request as the observation its key map produced, with
raw images, so both protocols replay through one decoder), the protocol it came from, the
session and episode it belonged to, whether an explicit reset preceded it, whether RTC guided
it, and the reply the robot got with the forward time and batch size that produced it.

Files are versioned (`version`): a reader refuses a version it does not know instead of
misreading it. Capture stops after `max_requests` files or `max_bytes` written, whichever comes
first, so a forgotten flag cannot fill a disk.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack

from policylink.wire.codec import decode_message, encode_message, encode_observation
from policylink.wire.errors import WireError
from policylink.wire.header import Header, pack_header, unpack_header
from policylink.wire.messages import ActionChunk, ErrorReply, Observation

FORMAT = "policylink-capture"
VERSION = 2
DEFAULT_MAX_BYTES = 1 << 30
SUFFIX = ".msgpack"


class CaptureError(ValueError):
    """A capture folder or file that cannot be replayed; the message names the file and why."""


def raw_bytes(payload: object) -> bytes | None:
    """Bytes of a transport payload, when it has any (Zenoh `ZBytes`, bytes, memoryview)."""
    if isinstance(payload, bytes | bytearray | memoryview):
        return bytes(payload)
    to_bytes = getattr(payload, "to_bytes", None)
    return to_bytes() if callable(to_bytes) else None


class RequestCapture:
    """Written from the inference worker's reply thread; `record` is safe from several."""

    def __init__(
        self, directory: str | Path, max_requests: int, max_bytes: int = DEFAULT_MAX_BYTES
    ) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_requests = max_requests
        self.max_bytes = max_bytes
        # Guards `count` and `bytes_written`, so two threads never claim the same file index
        # and the byte bound holds.
        self._lock = threading.Lock()
        self.count = 0
        self.bytes_written = 0

    def record(
        self,
        *,
        session_id: str,
        client: str,
        protocol: str,
        request_header: Header,
        payload: object,
        observation: Observation | None,
        reset: bool,
        rtc: bool,
        batch_size: int,
        reply_header: Header,
        reply: ActionChunk | ErrorReply,
    ) -> Path | None:
        """`payload` is the request as it arrived, `observation` what it decoded to (None when
        it did not decode). Returns the file written, or None once the capture is full."""
        with self._lock:
            if self.count >= self.max_requests or self.bytes_written >= self.max_bytes:
                return None
        request = raw_bytes(payload)
        if request is None and observation is not None:
            request = encode_observation(observation, jpeg_quality=0)
        data = msgpack.packb(
            {
                "format": FORMAT,
                "version": VERSION,
                "protocol": protocol,
                "session_id": session_id,
                "client": client,
                "request_header": pack_header(request_header),
                "request": request,
                "reset": reset,
                "rtc": rtc,
                "batch_size": batch_size,
                "reply_header": pack_header(reply_header),
                "reply": encode_message(reply),
            },
            use_bin_type=True,
        )
        with self._lock:
            if self.count >= self.max_requests or self.bytes_written + len(data) > self.max_bytes:
                return None
            index = self.count
            self.count += 1
            self.bytes_written += len(data)
        path = self.directory / f"{index:06d}{SUFFIX}"
        path.write_bytes(data)
        return path


@dataclass
class CapturedRequest:
    """One request read back from a capture file; `request` is a native observation body."""

    path: Path
    protocol: str
    session_id: str
    client: str
    header: Header
    request: bytes | None
    reset: bool
    rtc: bool
    batch_size: int
    reply: ActionChunk | ErrorReply


def capture_files(directory: str | Path) -> list[Path]:
    """The capture's files in the order they were written (which is reply order)."""
    folder = Path(directory)
    if not folder.is_dir():
        raise CaptureError(f"capture folder {str(folder)!r} does not exist")
    files = sorted(folder.glob(f"*{SUFFIX}"))
    if not files:
        raise CaptureError(
            f"capture folder {str(folder)!r} holds no {SUFFIX} files; serve with "
            "capture.dir set to record some"
        )
    return files


def read_capture(directory: str | Path) -> Iterator[CapturedRequest]:
    for path in capture_files(directory):
        yield read_captured(path)


def read_captured(path: Path) -> CapturedRequest:
    try:
        record = msgpack.unpackb(path.read_bytes(), raw=False)
    except (ValueError, msgpack.ExtraData) as exc:
        raise CaptureError(f"{path}: not a msgpack capture file ({exc})") from None
    if not isinstance(record, dict):
        raise CaptureError(f"{path}: a capture file holds a map, got {type(record).__name__}")
    version = record.get("version", 1)
    if record.get("format", FORMAT) != FORMAT or version != VERSION:
        raise CaptureError(
            f"{path}: capture format {record.get('format', FORMAT)!r} version {version!r} "
            f"cannot be replayed by this policylink (it reads version {VERSION}); capture "
            "again with this version's server"
        )
    try:
        reply_header = unpack_header(_field(record, "reply_header", bytes, path))
        reply = decode_message(reply_header.msg_type, _field(record, "reply", bytes, path))
        header = unpack_header(_field(record, "request_header", bytes, path))
    except WireError as exc:
        raise CaptureError(f"{path}: {exc}") from None
    if not isinstance(reply, ActionChunk | ErrorReply):
        raise CaptureError(f"{path}: the reply is a {type(reply).__name__}, not a chunk")
    request = record.get("request")
    return CapturedRequest(
        path=path,
        protocol=_field(record, "protocol", str, path),
        session_id=_field(record, "session_id", str, path),
        client=_field(record, "client", str, path),
        header=header,
        request=request if isinstance(request, bytes) else None,
        reset=_field(record, "reset", bool, path),
        rtc=_field(record, "rtc", bool, path),
        batch_size=_field(record, "batch_size", int, path),
        reply=reply,
    )


def _field(record: dict[str, Any], key: str, kind: type, path: Path) -> Any:
    value = record.get(key)
    if not isinstance(value, kind):
        raise CaptureError(
            f"{path}: field {key!r} must be {kind.__name__}, got {type(value).__name__}"
        )
    return value
