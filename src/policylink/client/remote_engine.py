"""`RemoteEngine`: the robot side of network inference; never blocks the control loop.

One worker thread owns everything that can wait: encoding, sending, merging, the acked reset,
re-handshakes. It requests a chunk when buffered playback drops below `buffer_time_s`, with
exactly one request in flight, and walks the fail-safe ladder when chunks stop coming:

    STREAMING --late chunk, timeout or presence lost--> DEGRADED   (buffered actions play)
    DEGRADED  --no fresh action left-------------------> STALLED    (the fallback plays)
    STALLED   --server gone, or timeouts in a row-------> RECONNECTING (handshake, backoff)
    RECONNECTING --session reopened-------------------> STREAMING
    any       --offline > max_offline_s, or contract change--> DEAD (shutdown callback)

Re-handshaking waits until the buffer is spent or the server is back: a link flap that heals
while actions remain costs nothing, and a restarted server is re-joined as soon as it answers.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque

from policylink.client.buffered_engine import (
    IDLE_WAIT_S,
    BufferedEngine,
    Outcome,
    ShutdownCallback,
)
from policylink.client.config import ClientConfig
from policylink.client.engine import EngineState
from policylink.client.handshake import HandshakeError, connect_session, open_session
from policylink.client.latency import NS_PER_S
from policylink.client.robot import RobotLayout
from policylink.client.transport import ClientTransport, ServerUnreachable, make_transport
from policylink.wire.errors import ErrorCode, WireError
from policylink.wire.header import Header
from policylink.wire.messages import ActionChunk, ErrorReply, Reset, SessionAck

logger = logging.getLogger(__name__)

RESET_TIMEOUT_S = 1.0
SESSION_GONE = frozenset({ErrorCode.UNKNOWN_SESSION, ErrorCode.STALE_SESSION})


class RemoteEngine(BufferedEngine):
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
        self._request_timeout_ns = round(config.request_timeout_s * NS_PER_S)
        # Deposit-only hand-over from the transport's thread; deque appends are atomic.
        self._inbox: deque[tuple[Header, ActionChunk | ErrorReply, int]] = deque()
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        # Guarded by the base class's _lock: the episode whose start the server has not been
        # told about yet (set by reset() on the control thread, cleared by the worker).
        self._reset_due: int | None = None
        # Worker-thread state: the first session's ack (what reconnects must match), why the
        # session is considered lost, the reconnect schedule (and whether the server was
        # present at the last attempt: its return triggers one at once), link trouble.
        self._first_ack: SessionAck | None = None
        self._lost: str | None = None
        self._next_attempt_ns = 0
        self._backoff_s = config.reconnect_initial_backoff_s
        self._timeouts_in_row = 0
        self._presence_lost = False
        self._alive_when_tried = True

    def __enter__(self) -> RemoteEngine:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Connect and open the session, failing fast if the server refuses this robot.

        Retries while nobody answers, up to `connect_timeout_s`; raises `ServerUnreachable`
        after that, or `HandshakeError` at once on a refusal or a contract mismatch.
        """
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
        opened = self._adopt_session(ack)
        self._first_ack = ack
        self._restart_offline_clock()
        self._set_state(EngineState.STREAMING, opened)
        self._thread = threading.Thread(
            target=self._run, name=f"policylink-remote-{self.config.client_id}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop the worker, close the session and the link. Idempotent."""
        self._stop_event.set()
        self._wakeup.set()
        thread, self._thread = self._thread, None
        # The shutdown callback runs on the worker and may call stop(): it cannot join itself.
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=self.config.handshake_timeout_s + 2.0)
            if thread.is_alive():
                logger.error("%s: worker did not stop in time", self.config.client_id)
        self._transport.close()
        self._set_state(EngineState.STOPPED, "stopped by the caller")

    def _on_reset(self, episode_id: int) -> None:
        with self._lock:
            self._reset_due = episode_id

    def _on_reply(self, header: Header, msg: ActionChunk | ErrorReply) -> None:
        self._inbox.append((header, msg, time.monotonic_ns()))
        self._wakeup.set()

    def _run(self) -> None:
        while not self._stop_event.is_set() and not self.failed:
            self._wait_for_work(self._wait_s(time.monotonic_ns()))
            try:
                self._step(time.monotonic_ns())
            except Exception as exc:
                # A bug here must not silently end the worker: the robot would hold forever
                # with no state change. Count it as link trouble and keep going.
                logger.exception("%s: worker step failed", self.config.client_id)
                self._abandon_pending(f"worker error {type(exc).__name__}: {exc}")

    def _wait_s(self, now_ns: int) -> float:
        """Until the next deadline: a pending request turning late or timing out, the next
        reconnect attempt, or the idle bookkeeping period; replies and wake-ups cut it short."""
        waits = [IDLE_WAIT_S]
        age = self._pending_age_ns(now_ns)
        if age is not None:
            for limit in (self._degraded_ns, self._request_timeout_ns):
                if age < limit:
                    waits.append((limit - age) / NS_PER_S)
        if self._lost is not None:
            waits.append((self._next_attempt_ns - now_ns) / NS_PER_S)
        return max(0.0, min(waits))

    def _step(self, now_ns: int) -> None:
        self._drain_inbox()
        if self._lost is None:
            self._watch_link(now_ns)
        if self._lost is None:
            self._check_session()
        if self._lost is not None:
            self._try_reconnect(now_ns)
        else:
            self._announce_reset()
            self._send_if_due(now_ns)
            state, reason = self._playback_state(now_ns)
            self._set_state(state, reason)
        if self._die_if_offline(now_ns):
            self._transport.close()

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

    def _watch_link(self, now_ns: int) -> None:
        if not self._transport.server_alive():
            if not self._presence_lost:
                self._presence_lost = True
                self._abandon_pending("server presence lost")
                self._note_trouble("server presence lost")
            return
        age = self._pending_age_ns(now_ns)
        if age is not None and age > self._request_timeout_ns:
            self._timeouts_in_row += 1
            self._abandon_pending(
                f"request timed out after {self.config.request_timeout_s:g} s", timed_out=True
            )

    def _check_session(self) -> None:
        """Declare the session lost once waiting for it can no longer help.

        With the server gone, that is when playback has run dry (the ladder has reached
        STALLED) or when its presence returns (it may be a new process that never heard of us).
        """
        if self._timeouts_in_row >= self.config.timeouts_before_reconnect:
            self._declare_lost(f"{self._timeouts_in_row} requests in a row timed out")
        elif self._presence_lost and self._transport.server_alive():
            self._declare_lost("server presence is back; reopening the session")
        elif self._presence_lost and self.state is EngineState.STALLED:
            self._declare_lost("server presence lost and no buffered action left")

    def _declare_lost(self, reason: str) -> None:
        if self._lost is not None:
            return
        self._lost = reason
        self._abandon_pending(reason)
        self._next_attempt_ns = 0
        self._backoff_s = self.config.reconnect_initial_backoff_s
        self._set_state(EngineState.RECONNECTING, reason)

    def _try_reconnect(self, now_ns: int) -> None:
        """An attempt when the backoff allows, or at once when the server's presence returns."""
        alive = self._transport.server_alive()
        returned = alive and not self._alive_when_tried
        if now_ns < self._next_attempt_ns and not returned:
            return
        self._alive_when_tried = alive
        try:
            ack = open_session(self._transport, self.config, self.layout, self._first_ack)
        except ServerUnreachable as exc:
            self._schedule_retry(now_ns, str(exc))
            return
        except HandshakeError as exc:
            if exc.contract:
                self._die(f"contract violation on reconnect: {exc}")
                self._transport.close()
                return
            self._schedule_retry(now_ns, str(exc))
            return
        opened = self._adopt_session(ack)
        self._count_reconnect()
        self._lost = None
        self._presence_lost = False
        self._timeouts_in_row = 0
        self._clear_trouble()
        self._set_state(EngineState.STREAMING, opened)

    def _schedule_retry(self, now_ns: int, reason: str) -> None:
        logger.info(
            "%s: reconnect failed (%s); next attempt in %.2f s",
            self.config.client_id,
            reason,
            self._backoff_s,
        )
        self._next_attempt_ns = now_ns + round(self._backoff_s * NS_PER_S)
        self._backoff_s = min(self._backoff_s * 2, self.config.reconnect_max_backoff_s)

    def _announce_reset(self) -> None:
        """Tell the server an episode began; a lost ack costs nothing (headers carry it)."""
        with self._lock:
            episode, self._reset_due = self._reset_due, None
            session_id = self._session_id
        if episode is None:
            return
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

    def _send_if_due(self, now_ns: int) -> None:
        if self._presence_lost:
            return
        request = self._take_request(now_ns)
        if request is None:
            return
        try:
            self._transport.send(request.header, request.observation)
        except WireError as exc:
            logger.error("%s: observation cannot be encoded: %s", self.config.client_id, exc)
            self._abandon_pending(f"observation rejected by the encoder: {exc}")
