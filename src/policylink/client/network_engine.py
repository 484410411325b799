"""What `RemoteEngine` and `SyncEngine` share: one server session over a `ClientLink`.

The two differ only in who waits for the network (a worker thread, or `SyncEngine`'s caller);
the session they keep is the same. `start()` opens it and fails fast if the server refuses this
robot. A reopened session must match the first one's ack (model, revision, chunk size, RTC,
action layout): a mismatch is a contract violation, and the engine dies rather than executing
another policy's chunks. Replies arrive on the transport's thread, which only deposits them.
"""

from __future__ import annotations

import logging
import time
from collections import deque

from policylink.client.buffered_engine import BufferedEngine, Outcome, Request, ShutdownCallback
from policylink.client.config import ClientConfig
from policylink.client.engine import EngineState
from policylink.client.handshake import HandshakeError, connect_session, request_session
from policylink.client.latency import NS_PER_S
from policylink.client.link import ClientLink, ServerUnreachable
from policylink.client.links import make_link
from policylink.client.robot import RobotLayout
from policylink.wire.errors import ErrorCode, WireError
from policylink.wire.header import Header
from policylink.wire.messages import ActionChunk, ErrorReply, Reset, SessionAck

logger = logging.getLogger(__name__)

RESET_TIMEOUT_S = 1.0
SESSION_GONE = frozenset({ErrorCode.UNKNOWN_SESSION, ErrorCode.STALE_SESSION})


class NetworkEngine(BufferedEngine):
    def __init__(
        self,
        config: ClientConfig,
        layout: RobotLayout,
        *,
        link: ClientLink | None = None,
        on_shutdown: ShutdownCallback | None = None,
    ) -> None:
        super().__init__(config, layout, on_shutdown)
        self._transport = link if link is not None else make_link(config)
        # Deposit-only hand-over from the transport's thread; deque appends are atomic.
        self._inbox: deque[tuple[Header, ActionChunk | ErrorReply, int]] = deque()
        # Owned by the thread that makes requests (the worker, or SyncEngine's caller): the
        # first session's ack (what reopened ones must match), why the session is considered
        # lost, the reconnect schedule, and timeouts in a row.
        self._first_ack: SessionAck | None = None
        self._lost: str | None = None
        self._next_attempt_ns = 0
        self._backoff_s = config.reconnect_initial_backoff_s
        self._timeouts_in_row = 0

    def start(self) -> None:
        """Connect and open the session, failing fast if the server refuses this robot.

        Retries while nobody answers, up to `connect_timeout_s`; raises `ServerUnreachable`
        after that, or `HandshakeError` at once on a refusal or a contract mismatch.
        """
        self._require_idle()
        self._set_state(EngineState.CONNECTING, f"dialing {self.config.endpoint}")
        try:
            self._transport.connect(self._on_reply)
            ack = connect_session(self._transport, self.config, self.layout)
        except Exception as exc:
            self._transport.close()
            self._set_state(EngineState.STOPPED, f"start failed: {exc}")
            raise
        opened = self._adopt_session(ack)
        self._first_ack = ack
        self._restart_offline_clock()
        self._set_state(EngineState.STREAMING, opened)

    def stop(self) -> None:
        """Close the session and the link. Idempotent."""
        self._transport.close()
        self._set_state(EngineState.STOPPED, "stopped by the caller")

    def _on_reply(self, header: Header, msg: ActionChunk | ErrorReply) -> None:
        self._inbox.append((header, msg, time.monotonic_ns()))
        self._wakeup.set()

    def _drain_inbox(self) -> None:
        while self._inbox:
            header, msg, received_ns = self._inbox.popleft()
            outcome = self._accept(header, msg, received_ns)
            if outcome is Outcome.MERGED:
                self._timeouts_in_row = 0
            elif outcome is Outcome.ERROR and isinstance(msg, ErrorReply):
                logger.warning(
                    "%s: request %d failed on the server (%s): %s",
                    self.config.client_id,
                    header.seq_id,
                    msg.code.value,
                    msg.message,
                )
                if msg.code in SESSION_GONE:
                    self._declare_lost(f"server no longer knows this session ({msg.code.value})")

    def _send(self, request: Request) -> None:
        try:
            self._transport.send(request.header, request.observation)
        except WireError as exc:
            logger.error("%s: observation cannot be encoded: %s", self.config.client_id, exc)
            self._abandon_pending(f"observation rejected by the encoder: {exc}")

    def _declare_lost(self, reason: str) -> None:
        if self._lost is not None:
            return
        self._lost = reason
        self._abandon_pending(reason)
        self._next_attempt_ns = 0
        self._backoff_s = self.config.reconnect_initial_backoff_s
        self._set_state(EngineState.RECONNECTING, reason)

    def _reopen_session(self, now_ns: int) -> bool:
        """One reconnect attempt; True once the session is open again.

        A refusal that retrying cannot fix kills the engine; anything else schedules the next
        attempt with exponential backoff.
        """
        try:
            ack = request_session(self._transport, self.config, self.layout, self._first_ack)
        except (ServerUnreachable, HandshakeError) as exc:
            if isinstance(exc, HandshakeError) and exc.contract:
                self._die(f"contract violation on reconnect: {exc}")
                self._transport.close()
                return False
            logger.info(
                "%s: reconnect failed (%s); next attempt in %.2f s",
                self.config.client_id,
                exc,
                self._backoff_s,
            )
            self._next_attempt_ns = now_ns + round(self._backoff_s * NS_PER_S)
            self._backoff_s = min(self._backoff_s * 2, self.config.reconnect_max_backoff_s)
            return False
        opened = self._adopt_session(ack)
        self._count_reconnect()
        self._lost = None
        self._timeouts_in_row = 0
        self._set_state(EngineState.STREAMING, opened)
        return True

    def _send_reset(self, episode: int) -> None:
        """Tell the server an episode began; a lost ack costs nothing (headers carry it)."""
        with self._lock:
            session_id = self._session_id
        try:
            reply = self._transport.reset(Reset(session_id, episode), RESET_TIMEOUT_S)
        except (WireError, ConnectionError, RuntimeError) as exc:
            reply = None
            logger.info("%s: reset not sent: %s", self.config.client_id, exc)
        if reply is None or isinstance(reply, ErrorReply):
            logger.info(
                "%s: reset to episode %d not acknowledged (%s); the next request carries it",
                self.config.client_id,
                episode,
                "no answer" if reply is None else reply.message,
            )
        else:
            logger.info("%s: server acknowledged episode %d", self.config.client_id, episode)
