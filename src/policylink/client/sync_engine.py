"""`SyncEngine`: the naive baseline; `get_action()` waits a round trip whenever the queue is empty.

It shares the session, queue, identity checks, staleness bound and fallback with the other
engines and differs in one thing only: nothing works ahead. Every chunk costs the control loop
one network round trip plus the forward, which is what benchmarks measure `RemoteEngine`
against. Reconnects happen inline too, on the next call after the session was lost.
"""

from __future__ import annotations

import time

import numpy as np

from policylink.client.engine import EngineState
from policylink.client.latency import NS_PER_S
from policylink.client.network_engine import NetworkEngine

_LIVE = frozenset(
    {
        EngineState.STREAMING,
        EngineState.DEGRADED,
        EngineState.STALLED,
        EngineState.RECONNECTING,
    }
)


class SyncEngine(NetworkEngine):
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

    def _on_reset(self, episode_id: int) -> None:
        if self._lost is None:
            self._send_reset(episode_id)

    def _fill(self) -> None:
        if self._lost is not None and not self._reconnect():
            return
        if not self._transport.server_alive():
            self._declare_lost("server presence lost")
            return
        now_ns = time.monotonic_ns()
        request = self._take_request(now_ns, force=True)
        if request is None:
            return
        self._send(request)
        deadline = now_ns + round(self.config.request_timeout_s * NS_PER_S)
        while self._pending_age_ns(now_ns) is not None:
            remaining = (deadline - time.monotonic_ns()) / NS_PER_S
            # Other wake-ups (an observation offered) end the wait early: it just resumes.
            if remaining <= 0 or not self._wakeup.wait(remaining):
                self._timeouts_in_row += 1
                self._abandon_pending("request timed out", timed_out=True)
                if self._timeouts_in_row >= self.config.timeouts_before_reconnect:
                    self._declare_lost(f"{self._timeouts_in_row} requests in a row timed out")
                return
            self._drain_inbox()

    def _reconnect(self) -> bool:
        now_ns = time.monotonic_ns()
        if now_ns < self._next_attempt_ns:
            return False
        return self._reopen_session(now_ns)
