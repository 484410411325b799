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
from collections import deque

from policylink.client.config import ClientConfig
from policylink.client.engine import EngineState
from policylink.client.engine_parts import EngineParts
from policylink.client.engine_worker import IDLE_WAIT_S, Worker
from policylink.client.latency import NS_PER_S
from policylink.client.link import ClientLink
from policylink.client.links import make_link
from policylink.client.robot import RobotLayout
from policylink.client.safety_ladder import ShutdownCallback

logger = logging.getLogger(__name__)

# How long stop() waits for the worker beyond a handshake it may be in the middle of.
STOP_GRACE_S = 2.0


class RemoteEngine(EngineParts):
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
        self._session = self._session_over(self._transport)
        # A link that sees the server's presence (Zenoh's liveliness) wakes the worker the
        # moment it changes: a robot whose replica died re-places at once, not up to
        # IDLE_WAIT_S later at the worker's next idle check. Links without one (OpenPI,
        # wrappers) leave the check to that idle period, as before.
        watch_presence = getattr(self._transport, "watch_presence", None)
        if watch_presence is not None:
            watch_presence(self._face.wake)
        self._degraded_ns = round(config.degraded_after_s * NS_PER_S)
        self._request_timeout_ns = round(config.request_timeout_s * NS_PER_S)
        self._worker = Worker(
            f"policylink-remote-{config.client_id}",
            self._face.wakeup,
            self._step,
            on_error=self._ladder.abandon,
            finished=lambda: self._ladder.failed,
            wait_s=self._wait_s,
            switch_interval_s=config.switch_interval_s,
        )
        # The episode whose start the server has not been told about yet: put by reset() on
        # the control thread, taken by the worker. A one-slot deque, so neither side waits and
        # only the newest episode is announced.
        self._reset_due: deque[int] = deque(maxlen=1)
        # Worker-thread state: whether the server's presence was lost, and whether it was
        # present at the last reconnect attempt (its return triggers one at once).
        self._presence_lost = False
        self._alive_when_tried = True

    def start(self) -> None:
        """Open the session (see `SessionLink.open`), then start the worker."""
        self._ladder.require_idle()
        self._session.open()
        self._worker.start()

    def stop(self) -> None:
        """Stop the worker, close the session and the link. Idempotent."""
        if not self._worker.stop(self.config.handshake_timeout_s + STOP_GRACE_S):
            logger.error("%s: worker did not stop in time", self.config.client_id)
        self._session.close()
        self._ladder.set_state(EngineState.STOPPED, "stopped by the caller")

    def _announce_episode(self, episode_id: int) -> None:
        self._reset_due.append(episode_id)

    def _wait_s(self, now_ns: int) -> float:
        """Until the next deadline: a pending request turning late or timing out, the next
        reconnect attempt, or the idle bookkeeping period; replies and wake-ups cut it short."""
        waits = [IDLE_WAIT_S]
        age = self._ledger.pending_age_ns(now_ns)
        if age is not None:
            for limit in (self._degraded_ns, self._request_timeout_ns):
                if age < limit:
                    waits.append((limit - age) / NS_PER_S)
        if self._session.lost is not None:
            waits.append((self._session.next_attempt_ns - now_ns) / NS_PER_S)
        return max(0.0, min(waits))

    def _step(self, now_ns: int) -> None:
        self._session.drain_inbox()
        if self._session.lost is None:
            self._watch_link(now_ns)
        if self._session.lost is None:
            self._check_session()
        if self._session.lost is not None:
            self._try_reconnect(now_ns)
        else:
            self._announce_reset()
            self._send_if_due(now_ns)
            self._ladder.update(now_ns)
        if self._ladder.die_if_offline(now_ns):
            self._session.close()

    def _watch_link(self, now_ns: int) -> None:
        if not self._transport.server_alive():
            if not self._presence_lost:
                # The request in flight is kept: a draining server still answers it (see
                # `SessionLink.declare_lost`).
                self._presence_lost = True
                self._ladder.note_trouble("server presence lost")
            return
        age = self._ledger.pending_age_ns(now_ns)
        if age is not None and age > self._request_timeout_ns:
            self._session.time_out_request(
                f"request timed out after {self.config.request_timeout_s:g} s"
            )

    def _check_session(self) -> None:
        """The replica's presence is gone (it died, hung past its lease, or is draining): the
        session is lost, and the robot re-places itself at once — on another replica if one
        takes it, or on the same one when it comes back — while the buffered actions play.
        Timeouts in a row lose the session too, in `SessionLink.time_out_request`."""
        if self._presence_lost:
            self._session.declare_lost("replica presence lost; re-placing while the buffer plays")

    def _try_reconnect(self, now_ns: int) -> None:
        """An attempt when the backoff allows, or at once when the server's presence returns."""
        alive = self._transport.server_alive()
        returned = alive and not self._alive_when_tried
        if now_ns < self._session.next_attempt_ns and not returned:
            return
        self._alive_when_tried = alive
        if self._session.reopen(now_ns):
            self._presence_lost = False
            self._ladder.clear_trouble()

    def _announce_reset(self) -> None:
        try:
            episode = self._reset_due.popleft()
        except IndexError:
            return
        self._session.send_reset(episode)

    def _send_if_due(self, now_ns: int) -> None:
        if self._presence_lost or not self._ladder.requesting:
            return
        request = self._ledger.take_request(now_ns)
        if request is not None:
            self._session.send(request)
