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

from policylink.client.buffered_engine import ShutdownCallback
from policylink.client.config import ClientConfig
from policylink.client.engine import EngineState
from policylink.client.engine_worker import IDLE_WAIT_S, Worker
from policylink.client.latency import NS_PER_S
from policylink.client.link import ClientLink
from policylink.client.network_engine import NetworkEngine
from policylink.client.robot import RobotLayout

logger = logging.getLogger(__name__)

# How long stop() waits for the worker beyond a handshake it may be in the middle of.
STOP_GRACE_S = 2.0


class RemoteEngine(NetworkEngine):
    def __init__(
        self,
        config: ClientConfig,
        layout: RobotLayout,
        *,
        link: ClientLink | None = None,
        on_shutdown: ShutdownCallback | None = None,
    ) -> None:
        super().__init__(config, layout, link=link, on_shutdown=on_shutdown)
        self._request_timeout_ns = round(config.request_timeout_s * NS_PER_S)
        self._worker = Worker(
            f"policylink-remote-{config.client_id}",
            self._wakeup,
            self._step,
            on_error=self._abandon_pending,
            finished=lambda: self.failed,
            wait_s=self._wait_s,
            switch_interval_s=config.switch_interval_s,
        )
        # Guarded by the base class's _lock: the episode whose start the server has not been
        # told about yet (set by reset() on the control thread, cleared by the worker).
        self._reset_due: int | None = None
        # Worker-thread state: whether the server's presence was lost, and whether it was
        # present at the last reconnect attempt (its return triggers one at once).
        self._presence_lost = False
        self._alive_when_tried = True

    def start(self) -> None:
        super().start()
        self._worker.start()

    def stop(self) -> None:
        """Stop the worker, close the session and the link. Idempotent."""
        if not self._worker.stop(self.config.handshake_timeout_s + STOP_GRACE_S):
            logger.error("%s: worker did not stop in time", self.config.client_id)
        super().stop()

    def _on_reset(self, episode_id: int) -> None:
        with self._lock:
            self._reset_due = episode_id

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

    def _try_reconnect(self, now_ns: int) -> None:
        """An attempt when the backoff allows, or at once when the server's presence returns."""
        alive = self._transport.server_alive()
        returned = alive and not self._alive_when_tried
        if now_ns < self._next_attempt_ns and not returned:
            return
        self._alive_when_tried = alive
        if self._reopen_session(now_ns):
            self._presence_lost = False
            self._clear_trouble()

    def _announce_reset(self) -> None:
        with self._lock:
            episode, self._reset_due = self._reset_due, None
        if episode is not None:
            self._send_reset(episode)

    def _send_if_due(self, now_ns: int) -> None:
        if self._presence_lost:
            return
        request = self._take_request(now_ns)
        if request is not None:
            self._send(request)
