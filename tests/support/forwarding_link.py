"""A `ClientLink` that hands every call to the link it wraps: test links that watch a robot's
traffic override only the calls they watch."""

from __future__ import annotations

from policylink.client.link import ClientLink, ReplyHandler
from policylink.wire import (
    ErrorReply,
    Header,
    Observation,
    Reset,
    ResetAck,
    SessionAck,
    SessionOpen,
)


class ForwardingLink:
    def __init__(self, inner: ClientLink) -> None:
        self._inner = inner

    def connect(self, on_reply: ReplyHandler) -> None:
        self._inner.connect(on_reply)

    def handshake(self, request: SessionOpen, timeout_s: float) -> SessionAck | ErrorReply:
        return self._inner.handshake(request, timeout_s)

    def send(self, header: Header, obs: Observation) -> None:
        self._inner.send(header, obs)

    def reset(self, request: Reset, timeout_s: float) -> ResetAck | ErrorReply | None:
        return self._inner.reset(request, timeout_s)

    def server_alive(self) -> bool:
        return self._inner.server_alive()

    def close(self) -> None:
        self._inner.close()
