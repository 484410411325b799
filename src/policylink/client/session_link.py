"""One server session over a `ClientLink`: opening it, declaring it lost, reopening it.

`RemoteEngine` and `SyncEngine` keep the same session and differ only in who waits for the
network (a worker thread, or `SyncEngine`'s caller). `open()` fails fast if the server refuses
this robot. A reopened session must match the first one's ack (model, revision, chunk size,
RTC, action layout): a mismatch is a contract violation, and the engine dies rather than
executing another policy's chunks. Reconnect attempts back off exponentially.

Replies arrive on the transport's thread, which only deposits them in the inbox (deque appends
are atomic) and wakes the engine; the thread that makes requests drains it. Everything else
here belongs to that thread alone, so it needs no lock.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import deque

from policylink.client.config import ClientConfig
from policylink.client.control_face import ControlFace
from policylink.client.engine import EngineState
from policylink.client.handshake import HandshakeError, connect_session, request_session
from policylink.client.latency import NS_PER_S
from policylink.client.link import ClientLink, ServerUnreachable
from policylink.client.request_ledger import Outcome, Request, RequestLedger
from policylink.client.robot import RobotLayout
from policylink.client.safety_ladder import SafetyLadder
from policylink.wire.errors import ErrorCode, WireError
from policylink.wire.header import Header
from policylink.wire.messages import ActionChunk, ErrorReply, Reset, SessionAck

logger = logging.getLogger(__name__)

RESET_TIMEOUT_S = 1.0
SESSION_GONE = frozenset({ErrorCode.UNKNOWN_SESSION, ErrorCode.STALE_SESSION})


class SessionLink:
    def __init__(
        self,
        link: ClientLink,
        config: ClientConfig,
        layout: RobotLayout,
        *,
        face: ControlFace,
        ledger: RequestLedger,
        ladder: SafetyLadder,
    ) -> None:
        self._link = link
        self._config = config
        self._layout = layout
        self._face = face
        self._ledger = ledger
        self._ladder = ladder
        # Deposit-only hand-over from the transport's thread.
        self._inbox: deque[tuple[Header, ActionChunk | ErrorReply, int]] = deque()
        # The first session's ack (what reopened ones must match), why the session is
        # considered lost (None while it is not), the reconnect schedule, timeouts in a row.
        self._first_ack: SessionAck | None = None
        self._lost: str | None = None
        self._next_attempt_ns = 0
        self._backoff_s = config.reconnect_initial_backoff_s
        self._timeouts_in_row = 0
        # The cameras the open session's policy reads (None before the first ack).
        self._cameras: frozenset[str] | None = None
        # Who serves the open session: one dict replaced whole at each (re)open, read anywhere.
        self.server_identity: dict[str, str] = {}

    @property
    def lost(self) -> str | None:
        """Why the session is considered lost, or None while it is open."""
        return self._lost

    @property
    def next_attempt_ns(self) -> int:
        """When the next reconnect attempt is due (monotonic ns)."""
        return self._next_attempt_ns

    def open(self) -> None:
        """Connect and open the session, failing fast if the server refuses this robot.

        Retries while nobody answers, up to `connect_timeout_s`; raises `ServerUnreachable`
        after that, or `HandshakeError` at once on a refusal or a contract mismatch.
        """
        self._ladder.set_state(EngineState.CONNECTING, f"dialing {self._config.endpoint}")
        try:
            self._link.connect(self._on_reply)
            ack = connect_session(self._link, self._config, self._layout)
        except Exception as exc:
            self._link.close()
            self._ladder.set_state(EngineState.STOPPED, f"start failed: {exc}")
            raise
        opened = self._adopt(ack)
        self._first_ack = ack
        self._ladder.restart_offline_clock()
        self._ladder.set_state(EngineState.STREAMING, opened)

    def close(self) -> None:
        """Close the session and the link. Idempotent."""
        self._link.close()

    def _on_reply(self, header: Header, msg: ActionChunk | ErrorReply) -> None:
        self._inbox.append((header, msg, time.monotonic_ns()))
        self._face.wake()

    def drain_inbox(self) -> None:
        """Merge or drop every reply that arrived; a server that forgot us loses the session."""
        while self._inbox:
            header, msg, received_ns = self._inbox.popleft()
            verdict = self._ledger.accept(header, msg, received_ns)
            self._ladder.reply_taken(verdict, received_ns)
            if verdict.outcome is Outcome.MERGED:
                self._timeouts_in_row = 0
            elif verdict.outcome is Outcome.ERROR and isinstance(msg, ErrorReply):
                logger.warning(
                    "%s: request %d failed on the server (%s): %s",
                    self._config.client_id,
                    header.seq_id,
                    msg.code.value,
                    msg.message,
                )
                if msg.code in SESSION_GONE:
                    self.declare_lost(f"server no longer knows this session ({msg.code.value})")

    def send(self, request: Request) -> None:
        """Hand a request to the link; one that cannot be encoded is abandoned, not raised."""
        observation = request.observation
        if self._cameras is not None and set(observation.images) - self._cameras:
            # The server refuses cameras its policy does not read: send only those it does.
            observation = dataclasses.replace(
                observation,
                images={k: v for k, v in observation.images.items() if k in self._cameras},
            )
        try:
            self._link.send(request.header, observation)
        except WireError as exc:
            logger.error("%s: observation cannot be encoded: %s", self._config.client_id, exc)
            self._ladder.abandon(f"observation rejected by the encoder: {exc}")

    def time_out_request(self, reason: str) -> None:
        """Abandon the request in flight as timed out; `timeouts_before_reconnect` of them in
        a row lose the session."""
        self._timeouts_in_row += 1
        self._ladder.abandon(reason, timed_out=True)
        if self._timeouts_in_row >= self._config.timeouts_before_reconnect:
            self.declare_lost(f"{self._timeouts_in_row} requests in a row timed out")

    def declare_lost(self, reason: str) -> None:
        """RECONNECTING: the first attempt is due at once, then back off.

        The request in flight stays outstanding until a session reopens (which voids it): a
        draining server still answers what it took, and that chunk plays while the robot
        looks for a server (a chunk of a dead one never comes; one of a replica the robot
        left is stale by then)."""
        if self._lost is not None:
            return
        self._lost = reason
        self._ladder.note_trouble(reason)
        self._next_attempt_ns = 0
        self._backoff_s = self._config.reconnect_initial_backoff_s
        self._ladder.set_state(EngineState.RECONNECTING, reason)

    def reopen(self, now_ns: int) -> bool:
        """One reconnect attempt; True once the session is open again.

        A refusal that retrying cannot fix kills the engine; anything else schedules the next
        attempt with exponential backoff.
        """
        try:
            ack = request_session(self._link, self._config, self._layout, self._first_ack)
        except (ServerUnreachable, HandshakeError) as exc:
            if isinstance(exc, HandshakeError) and exc.contract:
                self._ladder.die(f"contract violation on reconnect: {exc}")
                self._link.close()
                return False
            logger.info(
                "%s: reconnect failed (%s); next attempt in %.2f s",
                self._config.client_id,
                exc,
                self._backoff_s,
            )
            self._next_attempt_ns = now_ns + round(self._backoff_s * NS_PER_S)
            self._backoff_s = min(self._backoff_s * 2, self._config.reconnect_max_backoff_s)
            return False
        opened = self._adopt(ack)
        self._ledger.count_reconnect()
        self._lost = None
        self._timeouts_in_row = 0
        self._ladder.set_state(EngineState.STREAMING, opened)
        return True

    def send_reset(self, episode: int) -> None:
        """Tell the server an episode began; a lost ack costs nothing (headers carry it)."""
        try:
            reply = self._link.reset(Reset(self._ledger.session_id, episode), RESET_TIMEOUT_S)
        except (WireError, ConnectionError, RuntimeError) as exc:
            reply = None
            logger.info("%s: reset not sent: %s", self._config.client_id, exc)
        if reply is None or isinstance(reply, ErrorReply):
            logger.info(
                "%s: reset to episode %d not acknowledged (%s); the next request carries it",
                self._config.client_id,
                episode,
                "no answer" if reply is None else reply.message,
            )
        else:
            logger.info("%s: server acknowledged episode %d", self._config.client_id, episode)

    def _adopt(self, ack: SessionAck) -> str:
        """Take merge mode, prefix horizon and identity from an ack; returns a log line."""
        caps = ack.capabilities
        self._cameras = frozenset(camera.name for camera in caps.cameras)
        self.server_identity = {
            "model_id": caps.model_id,
            "revision": caps.revision,
            "replica": getattr(self._link, "replica", None) or "",
            "server_version": caps.server_version,
            "session_id": ack.session_id,
        }
        self._ledger.open_session(
            replace=ack.rtc_enabled,
            horizon=self._config.rtc_horizon or caps.rtc_execution_horizon or None,
            session_id=ack.session_id,
            epoch=ack.session_epoch,
            schema=ack.schema_version,
        )
        for warning in ack.warnings:
            logger.warning("%s: server warns: %s", self._config.client_id, warning)
        mode = "RTC replace" if ack.rtc_enabled else "append"
        return (
            f"session {ack.session_id} epoch {ack.session_epoch} open with "
            f"{caps.model_id}@{caps.revision}, chunk {caps.chunk_size}, {mode}"
        )
