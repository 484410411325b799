"""The small interface an engine talks to the network through.

Zenoh (native), OpenPI WebSocket and a delay/jitter/loss-injecting wrapper all implement it,
so engines never import a network library and every backend is swappable by config. A
backend that cannot carry something (OpenPI has no delay, prefix or episode id) drops it; the
engine's guarantees do not depend on the server echoing more than the header it was sent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

from policylink.wire.header import Header
from policylink.wire.messages import (
    ActionChunk,
    ErrorReply,
    Observation,
    Reset,
    ResetAck,
    SessionAck,
    SessionOpen,
)

ReplyHandler = Callable[[Header, ActionChunk | ErrorReply], None]


class ServerUnreachable(ConnectionError):
    """No server answered in time; retrying later may succeed."""


@runtime_checkable
class ClientLink(Protocol):
    def connect(self, on_reply: ReplyHandler) -> None:
        """Open the link. Replies to `send` are delivered to `on_reply` on the transport's own
        thread, with the request's header echoed; the handler only deposits and returns."""
        ...

    def handshake(self, request: SessionOpen, timeout_s: float) -> SessionAck | ErrorReply:
        """Fetch the server's status, then open a session.

        Raises `ServerUnreachable` when nobody answers within `timeout_s`. Re-running it after
        a lost session opens a fresh one.
        """
        ...

    def send(self, header: Header, obs: Observation) -> None:
        """Encode and hand one observation to the network; never waits for the answer."""
        ...

    def reset(self, request: Reset, timeout_s: float) -> ResetAck | ErrorReply | None:
        """Acknowledged episode boundary; None when no answer came in time."""
        ...

    def server_alive(self) -> bool:
        """False once the server's presence was withdrawn after the last successful handshake."""
        ...

    def close(self) -> None:
        """Close the session if one is open (best effort) and release the link; idempotent."""
        ...
