"""`SyncEngine`: the naive baseline; `get_action()` waits a round trip whenever the queue is empty.

It shares the session, queue, identity checks, staleness bound and fallback with the other
engines and differs in one thing only: nothing works ahead. Every chunk costs the control loop
one network round trip plus the forward, which is what benchmarks measure `RemoteEngine`
against. Reconnects happen inline too, on the next call after the session was lost.
"""

from __future__ import annotations

import time

import numpy as np

from policylink.client.config import ClientConfig
from policylink.client.engine import EngineState
from policylink.client.engine_parts import EngineParts
from policylink.client.latency import NS_PER_S
from policylink.client.link import ClientLink
from policylink.client.links import make_link
from policylink.client.robot import RobotLayout
from policylink.client.safety_ladder import ShutdownCallback

_LIVE = frozenset(
    {
        EngineState.STREAMING,
        EngineState.DEGRADED,
        EngineState.STALLED,
        EngineState.RECONNECTING,
    }
)


class SyncEngine(EngineParts):
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
        self._request_timeout_ns = round(config.request_timeout_s * NS_PER_S)

    def start(self) -> None:
        """Open the session (see `SessionLink.open`); requests are made by `get_action()`."""
        self._ladder.require_idle()
        self._session.open()

    def stop(self) -> None:
        """Close the session and the link. Idempotent."""
        self._session.close()
        self._ladder.set_state(EngineState.STOPPED, "stopped by the caller")

    def get_action(self) -> np.ndarray | None:
        """Blocks for one request when the queue is empty; the fallback if that fails."""
        action = self._face.pop_fresh()
        if action is None and self._ladder.state in _LIVE:
            if self._ladder.die_if_offline(time.monotonic_ns()):
                self._session.close()
            else:
                self._fill()
                action = self._face.pop_fresh()
                if self._session.lost is None:
                    self._ladder.update(time.monotonic_ns())
        return action if action is not None else self._face.fallback()

    def _announce_episode(self, episode_id: int) -> None:
        if self._session.lost is None:
            self._session.send_reset(episode_id)

    def _fill(self) -> None:
        if self._session.lost is not None and not self._reconnect():
            return
        if not self._transport.server_alive():
            self._session.declare_lost("server presence lost")
            return
        if not self._ladder.requesting:
            return
        now_ns = time.monotonic_ns()
        request = self._ledger.take_request(now_ns, force=True)
        if request is None:
            return
        self._session.send(request)
        deadline = now_ns + self._request_timeout_ns
        while self._ledger.pending is not None:
            remaining = (deadline - time.monotonic_ns()) / NS_PER_S
            # Other wake-ups (an observation offered) end the wait early: it just resumes.
            if remaining <= 0 or not self._face.wakeup.wait(remaining):
                self._session.time_out_request("request timed out")
                return
            self._session.drain_inbox()

    def _reconnect(self) -> bool:
        now_ns = time.monotonic_ns()
        if now_ns < self._session.next_attempt_ns:
            return False
        return self._session.reopen(now_ns)
