"""Bounded capture of raw requests and their replies, for replaying a session offline.

Each served request becomes one msgpack file: the packed headers, the request body exactly as it
arrived and the encoded reply. Capture stops after `max_requests` files so a forgotten flag
cannot fill a disk.
"""

from __future__ import annotations

import threading
from pathlib import Path

import msgpack

from policylink.wire.codec import encode_message
from policylink.wire.header import Header, pack_header
from policylink.wire.messages import ActionChunk, ErrorReply


def raw_bytes(payload: object) -> bytes | None:
    """Bytes of a transport payload, when it has any (Zenoh `ZBytes`, bytes, memoryview)."""
    if isinstance(payload, bytes | bytearray | memoryview):
        return bytes(payload)
    to_bytes = getattr(payload, "to_bytes", None)
    return to_bytes() if callable(to_bytes) else None


class RequestCapture:
    def __init__(self, directory: str | Path, max_requests: int) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_requests = max_requests
        # Guards `count`, so two transports' workers could never claim the same file index.
        self._lock = threading.Lock()
        self.count = 0

    def record(
        self,
        *,
        session_id: str,
        client: str,
        request_header: Header,
        payload: object,
        reply_header: Header,
        reply: ActionChunk | ErrorReply,
    ) -> Path | None:
        with self._lock:
            if self.count >= self.max_requests:
                return None
            index = self.count
            self.count += 1
        record = {
            "session_id": session_id,
            "client": client,
            "request_header": pack_header(request_header),
            "request": raw_bytes(payload),
            "reply_header": pack_header(reply_header),
            "reply": encode_message(reply),
        }
        path = self.directory / f"{index:06d}.msgpack"
        path.write_bytes(msgpack.packb(record, use_bin_type=True))
        return path
