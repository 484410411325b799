"""`SyncEngine`: the naive baseline; `get_action()` waits a round trip whenever the queue is empty.

It shares the queue, identity checks, staleness bound and fallback with the other engines and
differs in one thing only: nothing works ahead. Every chunk costs the control loop one
network round trip plus the forward, which is what benchmarks measure `RemoteEngine` against.
Reconnects happen inline too, on the next call after the session was lost.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque

import numpy as np

from policylink.client.buffered_engine import BufferedEngine, Outcome, ShutdownCallback
from policylink.client.config import ClientConfig
from policylink.client.engine import EngineState
from policylink.client.handshake import HandshakeError, connect_session, open_session
from policylink.client.latency import NS_PER_S
from policylink.client.remote_engine import RESET_TIMEOUT_S, SESSION_GONE
from policylink.client.robot import RobotLayout
from policylink.client.transport import ClientTransport, ServerUnreachable, make_transport
from policylink.wire.errors import WireError
from policylink.wire.header import Header
from policylink.wire.messages import ActionChunk, ErrorReply, Reset, SessionAck

logger = logging.getLogger(__name__)

_LIVE = frozenset(
    {
        EngineState.STREAMING,
        EngineState.DEGRADED,
        EngineState.STALLED,
        EngineState.RECONNECTING,
    }
)


class SyncEngine(BufferedEngine):
    def __init__(
        self,
        config: ClientConfig,
        layout: RobotLayout,
        *,
        transport: ClientTransport | None = None,
        on_shutdown: ShutdownCallback | None = None,
    ) -> None:
        super().__init__(config, layout, on_shutdown)
        self._transport = transport if transport is not None else make_transport(config)
        # Deposit-only hand-over from the transport's thread; deque appends are atomic.
        self._inbox: deque[tuple[Header, ActionChunk | ErrorReply, int]] = deque()
        self._replied = threading.Event()
        # Control-thread state: the first ack (what reconnects must match), why the session
        # is lost, when to try again, and consecutive timeouts.
        self._first_ack: SessionAck | None = None
        self._lost: str | None = None
        self._retry_at = 0.0
        self._backoff_s = config.reconnect_initial_backoff_s
        self._timeouts_in_row = 0

    def __enter__(self) -> SyncEngine:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        if self.state is not EngineState.IDLE:
            raise RuntimeError(f"start() called on an engine in state {self.state.value}")
        self._set_state(EngineState.CONNECTING, f"dialing {self.config.endpoint}")
        try:
            self._transport.connect(self._on_reply)
            ack = connect_session(self._transport, self.config, self.layout)
        except Exception as exc:
            self._transport.close()
            self._set_state(EngineState.STOPPED, f"start failed: {exc}")
            raise
        self._first_ack = ack
        opened = self._adopt_session(ack)
        self._restart_offline_clock()
        self._set_state(EngineState.STREAMING, opened)

    def stop(self) -> None:
        self._transport.close()
        self._set_state(EngineState.STOPPED, "stopped by the caller")

    def get_action(self) -> np.ndarray | None:
        """Blocks for one request when the queue is empty; the fallback if that fails."""
        action = self._pop_fresh()
        if action is None and self.state in _LIVE:
            if self._die_if_offline(time.monotonic_ns()):
                self._transport.close()
            else:
                self._fill()
                action = self._pop_fresh()
                if self._lost is None:
                    self._set_state(*self._playback_state(time.monotonic_ns()))
        return action if action is not None else self._fallback_tick()

    def _on_reply(self, header: Header, msg: ActionChunk | ErrorReply) -> None:
        self._inbox.append((header, msg, time.monotonic_ns()))
        self._replied.set()

    def _on_reset(self, episode_id: int) -> None:
        if self._lost is not None:
            return
        with self._lock:
            session_id = self._session_id
        try:
            self._transport.reset(Reset(session_id, episode_id), RESET_TIMEOUT_S)
        except (WireError, ConnectionError, RuntimeError) as exc:
            logger.info("%s: reset not sent: %s", self.config.client_id, exc)

    def _fill(self) -> None:
        if self._lost is not None and not self._reconnect():
            return
        if not self._transport.server_alive():
            self._lose("server presence lost")
            return
        now_ns = time.monotonic_ns()
        request = self._take_request(now_ns, force=True)
        if request is None:
            return
        self._replied.clear()
        try:
            self._transport.send(request.header, request.observation)
        except WireError as exc:
            self._abandon_pending(f"observation rejected by the encoder: {exc}")
            return
        deadline = now_ns + round(self.config.request_timeout_s * NS_PER_S)
        while self._pending_age_ns(now_ns) is not None:
            remaining = (deadline - time.monotonic_ns()) / NS_PER_S
            if remaining <= 0 or not self._replied.wait(remaining):
                self._timeouts_in_row += 1
                self._abandon_pending("request timed out", timed_out=True)
                if self._timeouts_in_row >= self.config.timeouts_before_reconnect:
                    self._lose(f"{self._timeouts_in_row} requests in a row timed out")
                return
            self._replied.clear()
            self._drain_inbox()

    def _drain_inbox(self) -> None:
        while self._inbox:
            header, msg, received_ns = self._inbox.popleft()
            outcome = self._accept(header, msg, received_ns)
            if outcome is Outcome.MERGED:
                self._timeouts_in_row = 0
            elif isinstance(msg, ErrorReply) and msg.code in SESSION_GONE:
                self._lose(f"server no longer knows this session ({msg.code.value})")

    def _lose(self, reason: str) -> None:
        self._lost = reason
        self._retry_at = 0.0
        self._backoff_s = self.config.reconnect_initial_backoff_s
        self._set_state(EngineState.RECONNECTING, reason)

    def _reconnect(self) -> bool:
        now = time.monotonic()
        if now < self._retry_at:
            return False
        try:
            ack = open_session(self._transport, self.config, self.layout, self._first_ack)
        except (ServerUnreachable, HandshakeError) as exc:
            if isinstance(exc, HandshakeError) and exc.contract:
                self._die(f"contract violation on reconnect: {exc}")
                self._transport.close()
                return False
            self._retry_at = now + self._backoff_s
            self._backoff_s = min(self._backoff_s * 2, self.config.reconnect_max_backoff_s)
            return False
        opened = self._adopt_session(ack)
        self._count_reconnect()
        self._lost = None
        self._timeouts_in_row = 0
        self._set_state(EngineState.STREAMING, opened)
        return True
