"""The fail-safe ladder: which state the engine is in, why, and when it must give up.

    CONNECTING --session open--> STREAMING
    STREAMING  --trouble, fresh actions left--> DEGRADED   (buffered actions play)
    DEGRADED   --no fresh action left---------> STALLED    (the fallback plays)
    STALLED    --session lost------------------> RECONNECTING --reopened--> STREAMING
    any        --offline > max_offline_s, or contract change--> DEAD (shutdown callback, once)

Trouble is the last reason chunks stopped coming in time: an error reply, a malformed chunk,
an abandoned request, the server's presence lost. A merged chunk clears it. The offline budget
runs only while the robot wants chunks and is not paused, so a robot that stopped its loop, or
is playing a full buffer, is never declared dead.

The state is written under `_lock` but read without it (`state`, `failed`, `requesting`): one
attribute holding an enum member, which the interpreter reads atomically. The control loop
checks `failed` every tick, and must never wait for a worker caught mid-transition.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

from policylink.client.config import ClientConfig
from policylink.client.control_face import ControlFace
from policylink.client.engine import EngineState, Transition
from policylink.client.latency import NS_PER_S
from policylink.client.request_ledger import Outcome, RequestLedger, Verdict

logger = logging.getLogger(__name__)

ShutdownCallback = Callable[[str], None]

_REQUESTING = frozenset({EngineState.STREAMING, EngineState.DEGRADED, EngineState.STALLED})


class SafetyLadder:
    """Watches the engine's `ControlFace` and `RequestLedger`; walked by the thread that makes
    requests, paused and resumed by the control thread."""

    def __init__(
        self,
        config: ClientConfig,
        face: ControlFace,
        ledger: RequestLedger,
        on_shutdown: ShutdownCallback | None = None,
    ) -> None:
        self._config = config
        self._face = face
        self._ledger = ledger
        self._on_shutdown = on_shutdown
        self._degraded_ns = round(config.degraded_after_s * NS_PER_S)
        self._lock = threading.Lock()
        # Written under _lock, read anywhere without it (see the module docstring): the state,
        # and when the engine was paused (None while it is not).
        self._state = EngineState.IDLE
        self._paused_at_ns: int | None = None
        # Guarded by _lock: the transition log, the trouble, the control thread's expiry count
        # at the last merge, and the offline clock (when the robot last had what it wanted).
        self._transitions: deque[Transition] = deque(maxlen=256)
        self._trouble: str | None = None
        self._expired_at_merge = 0
        self._healthy_ns = time.monotonic_ns()

    @property
    def state(self) -> EngineState:
        return self._state

    @property
    def failed(self) -> bool:
        return self._state is EngineState.DEAD

    @property
    def ready(self) -> bool:
        return self._state in _REQUESTING

    @property
    def requesting(self) -> bool:
        """Whether a request may be made now: a session is open and the engine not paused."""
        return self._state in _REQUESTING and self._paused_at_ns is None

    @property
    def paused(self) -> bool:
        return self._paused_at_ns is not None

    def transitions(self) -> list[Transition]:
        with self._lock:
            return list(self._transitions)

    def require_idle(self) -> None:
        state = self._state
        if state is not EngineState.IDLE:
            raise RuntimeError(f"start() called on an engine in state {state.value}")

    def set_state(self, state: EngineState, reason: str) -> bool:
        """Move to `state`, logging why; False if already there or DEAD (which is final)."""
        with self._lock:
            previous = self._state
            if state is previous or previous is EngineState.DEAD:
                return False
            self._state = state
            self._transitions.append(Transition(time.monotonic(), state, reason))
        log = logger.warning if state in (EngineState.STALLED, EngineState.DEAD) else logger.info
        log("%s: %s -> %s (%s)", self._config.client_id, previous.value, state.value, reason)
        return True

    def update(self, now_ns: int) -> None:
        """Move to the state playback is in now (STREAMING, DEGRADED or STALLED)."""
        self.set_state(*self.playback_state(now_ns))

    def playback_state(self, now_ns: int) -> tuple[EngineState, str]:
        """STREAMING, DEGRADED or STALLED, from trouble and what is left to play, with why."""
        with self._lock:
            trouble = self._trouble
            expired = self._face.actions_expired - self._expired_at_merge
        pending = self._ledger.pending
        fresh = self._face.has_fresh(now_ns)
        if trouble is None and pending is not None and now_ns - pending.sent_ns > self._degraded_ns:
            late_s = (now_ns - pending.sent_ns) / NS_PER_S
            trouble = f"request {pending.header.seq_id} unanswered for {late_s:.2f} s"
        if trouble is None and expired and not fresh:
            trouble = f"chunks arrive older than max_action_age_s={self._config.max_action_age_s:g}"
        if trouble is None:
            return EngineState.STREAMING, "chunks arriving"
        if fresh:
            return EngineState.DEGRADED, f"{trouble}; playing buffered actions"
        return (
            EngineState.STALLED,
            f"{trouble}; no fresh action left, fallback {self._config.fallback.value}",
        )

    def reply_taken(self, verdict: Verdict, received_ns: int) -> None:
        """A merged chunk clears the trouble and restarts the offline clock; a refused reply
        becomes the trouble; a stale one changes nothing."""
        with self._lock:
            if verdict.outcome is Outcome.MERGED:
                self._trouble = None
                self._expired_at_merge = self._face.actions_expired
                self._healthy_ns = received_ns
            elif verdict.outcome is not Outcome.STALE:
                self._trouble = verdict.problem

    def abandon(self, reason: str, *, timed_out: bool = False) -> None:
        """Give up on the request in flight, if any; `reason` becomes the trouble."""
        if self._ledger.abandon(timed_out=timed_out):
            with self._lock:
                self._trouble = reason

    def note_trouble(self, reason: str) -> None:
        """Record trouble unless some is recorded already (the first cause is the telling one)."""
        with self._lock:
            self._trouble = self._trouble or reason

    def clear_trouble(self) -> None:
        with self._lock:
            self._trouble = None

    def pause(self) -> None:
        """Stop the offline budget; the engine makes no request until `resume()`."""
        with self._lock:
            if self._paused_at_ns is None:
                self._paused_at_ns = time.monotonic_ns()
        logger.info("%s: paused", self._config.client_id)

    def resume(self) -> None:
        with self._lock:
            if self._paused_at_ns is not None:
                self._healthy_ns += time.monotonic_ns() - self._paused_at_ns
                self._paused_at_ns = None
        logger.info("%s: resumed", self._config.client_id)

    def restart_offline_clock(self) -> None:
        with self._lock:
            self._healthy_ns = time.monotonic_ns()

    def offline_s(self, now_ns: int) -> float:
        """Seconds the robot has been wanting a chunk without getting one.

        Time counts only while there is demand (a request outstanding, or the buffer low while
        the control loop still offers observations) and the engine is not paused.
        """
        with self._lock:
            if self._paused_at_ns is not None:
                return (self._paused_at_ns - self._healthy_ns) / NS_PER_S
            offered = self._face.last_offered_ns
            looping = offered is not None and now_ns - offered < self._degraded_ns
            wanting = self._ledger.pending is not None or (self._face.buffer_low() and looping)
            if not wanting:
                self._healthy_ns = now_ns
            return (now_ns - self._healthy_ns) / NS_PER_S

    def die_if_offline(self, now_ns: int) -> bool:
        """DEAD once offline past `max_offline_s`; True if the engine is dead now because of it."""
        offline = self.offline_s(now_ns)
        if offline <= self._config.max_offline_s:
            return False
        self.die(
            f"wanted chunks for {offline:.1f} s without getting one "
            f"(max_offline_s={self._config.max_offline_s:g})"
        )
        return True

    def die(self, reason: str) -> None:
        """DEAD: empty the queue, record why, and run the caller's shutdown callback once."""
        if self._state is EngineState.DEAD:
            return
        self._ledger.clear()
        if not self.set_state(EngineState.DEAD, reason):
            return
        logger.error("%s: engine dead: %s", self._config.client_id, reason)
        if self._on_shutdown is not None:
            try:
                self._on_shutdown(reason)
            except Exception:
                logger.exception("%s: shutdown callback raised", self._config.client_id)
