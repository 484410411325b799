"""What every engine shares: the control-thread side, request identity, merge and safety.

The control thread calls `notify_observation` and `get_action`; a worker (a network thread, a
local inference thread, or the caller itself for `SyncEngine`) calls `_take_request` and
`_accept`. The invariants live here, so all engines keep them identically:

- one request outstanding: a new one is built only when none is pending, and the queue index
  and left-over prefix are snapshotted with it;
- a chunk merges only if it answers the pending request's `(seq_id, episode_id,
  session_epoch)`; anything else is dropped and counted;
- an action older than `max_action_age_s`, counted from the observation it answers, is never
  returned; when nothing fresh is left the configured fallback is.

The control thread's two calls take no lock a worker can hold, so they never sleep: on a busy
machine a thread that sleeps can wait a whole scheduler tick (milliseconds) to run again. The
queue pops without a lock, the observation slot is a one-slot deque, the worker is woken by a
`Wakeup` that never blocks, and what the control thread counts it counts alone.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Self

import numpy as np

from policylink.client.action_queue import ActionQueue, QueueSnapshot
from policylink.client.config import ClientConfig, Fallback
from policylink.client.engine import EngineState, EngineStats
from policylink.client.latency import NS_PER_S, LatencyTracker
from policylink.client.observation_slot import ObservationSlot
from policylink.client.robot import RobotLayout
from policylink.client.wakeup import Wakeup
from policylink.wire.header import Header, MsgType
from policylink.wire.messages import ActionChunk, ErrorReply, Observation, SessionAck
from policylink.wire.schema import SCHEMA_VERSION

logger = logging.getLogger(__name__)

ShutdownCallback = Callable[[str], None]

_REQUESTING = frozenset({EngineState.STREAMING, EngineState.DEGRADED, EngineState.STALLED})


@dataclass(frozen=True)
class PendingRequest:
    """The one request in flight, and the queue snapshot its answer is merged against."""

    header: Header
    index_at_send: int
    delay: int
    born_ns: int
    sent_ns: int

    @property
    def identity(self) -> tuple[int, int, int]:
        h = self.header
        return h.seq_id, h.episode_id, h.session_epoch


@dataclass(frozen=True)
class Request:
    header: Header
    observation: Observation
    pending: PendingRequest


class Outcome(Enum):
    MERGED = "merged"
    STALE = "stale"
    ERROR = "error"
    MALFORMED = "malformed"


@dataclass(frozen=True)
class Transition:
    at_s: float
    state: EngineState
    reason: str


@dataclass
class _Counters:
    requests: int = 0
    chunks_merged: int = 0
    chunks_dropped_stale: int = 0
    error_replies: int = 0
    malformed_replies: int = 0
    timeouts: int = 0
    reconnects: int = 0
    superseded: int = 0


class BufferedEngine:
    """Base of `LocalEngine`, `RemoteEngine` and `SyncEngine`; not used on its own."""

    def __init__(
        self,
        config: ClientConfig,
        layout: RobotLayout,
        on_shutdown: ShutdownCallback | None = None,
    ) -> None:
        self.config = config
        self.layout = layout
        self._on_shutdown = on_shutdown
        self._dt_ns = round(config.dt_s * NS_PER_S)
        self._max_age_ns = round(config.max_action_age_s * NS_PER_S)
        self._buffer_ns = round(config.buffer_time_s * NS_PER_S)
        self._degraded_ns = round(config.degraded_after_s * NS_PER_S)
        self._zero = np.zeros(layout.action_dim, dtype=np.float32)
        self._queue = ActionQueue(replace=config.rtc)
        self._slot = ObservationSlot()
        self._latency = LatencyTracker()
        self._wakeup = Wakeup()
        # Wake-up requests from the worker to the control thread, plain flags: the worker
        # raises one *before* it checks its condition, so a wake-up is never missed.
        self._wants_observation = False
        self._wants_low_buffer = False
        # Written and read by the control thread only (get_action, reset).
        self._last_action: np.ndarray | None = None
        # Written by the control thread only, read anywhere without a lock (an int read is
        # atomic): actions discarded for age, and get_action() calls answered by the fallback.
        self._actions_expired = 0
        self._fallback_ticks = 0
        self._lock = threading.Lock()
        # Guarded by _lock: lifecycle and request identity (state, episode, seq, epoch,
        # schema, pending request, episode_start flag), trouble and pause bookkeeping (with
        # the expiry count at the last merge), the offline clock, the worker's counters and
        # the transition log. Taken before the queue's own lock,
        # never after it.
        self._state = EngineState.IDLE
        self._episode_id = 0
        self._seq_id = 0
        self._epoch = 0
        self._schema = SCHEMA_VERSION
        self._session_id = ""
        self._horizon: int | None = None
        self._pending: PendingRequest | None = None
        self._episode_start = True
        self._trouble: str | None = None
        self._expired_at_merge = 0
        self._paused_at_ns: int | None = None
        self._healthy_ns = time.monotonic_ns()
        self._counters = _Counters()
        self._last_queue_wait_ms: float | None = None
        self._last_inference_ms: float | None = None
        self._transitions: deque[Transition] = deque(maxlen=256)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Begin making requests; each engine defines how."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop making requests and release what `start()` took; idempotent."""
        raise NotImplementedError

    @property
    def fps(self) -> float:
        return self.config.fps

    @property
    def state(self) -> EngineState:
        with self._lock:
            return self._state

    @property
    def ready(self) -> bool:
        with self._lock:
            return self._state in _REQUESTING

    @property
    def failed(self) -> bool:
        with self._lock:
            return self._state is EngineState.DEAD

    @property
    def stats(self) -> EngineStats:
        with self._lock:
            c = self._counters
            last = self._latency.last_s
            return EngineStats(
                state=self._state,
                episode_id=self._episode_id,
                requests=c.requests,
                chunks_merged=c.chunks_merged,
                chunks_dropped_stale=c.chunks_dropped_stale,
                error_replies=c.error_replies,
                malformed_replies=c.malformed_replies,
                timeouts=c.timeouts,
                reconnects=c.reconnects,
                actions_expired=self._actions_expired,
                fallback_ticks=self._fallback_ticks,
                queue_depth=len(self._queue),
                last_rtt_ms=None if last is None else last * 1e3,
                latency_estimate_ms=self._latency.estimate_s * 1e3,
                delay_steps=self._latency.delay_steps(self.config.dt_s),
                last_queue_wait_ms=self._last_queue_wait_ms,
                last_inference_ms=self._last_inference_ms,
                superseded=c.superseded,
                session_id=self._session_id,
                paused=self._paused_at_ns is not None,
            )

    def transitions(self) -> list[Transition]:
        """Every state change so far (bounded), oldest first, each with its reason."""
        with self._lock:
            return list(self._transitions)

    def queue_contents(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Unexecuted rows (model space, robot space) and their source-observation times."""
        return self._queue.contents()

    def notify_observation(self, obs: Observation) -> None:
        """Offer the newest observation; it replaces one the worker has not taken yet."""
        self._slot.put(obs, time.monotonic_ns())
        if self._wants_observation:
            self._wants_observation = False
            self._wakeup.set()

    def get_action(self) -> np.ndarray | None:
        """The next fresh robot-space action, or the fallback. Never blocks on I/O."""
        action = self._pop_fresh()
        if self._wants_low_buffer and self._buffer_low():
            self._wants_low_buffer = False
            self._wakeup.set()
        return action if action is not None else self._fallback_tick()

    def pause(self) -> None:
        """Stop requesting; the queue stays intact and the offline budget stops running."""
        with self._lock:
            if self._paused_at_ns is None:
                self._paused_at_ns = time.monotonic_ns()
        logger.info("%s: paused", self.config.client_id)

    def resume(self) -> None:
        with self._lock:
            if self._paused_at_ns is not None:
                self._healthy_ns += time.monotonic_ns() - self._paused_at_ns
                self._paused_at_ns = None
        logger.info("%s: resumed", self.config.client_id)
        self._wake()

    def reset(self) -> None:
        """Episode boundary: clear the queue, forget the last observation, bump `episode_id`.

        Done under the lock the merge takes, so a chunk in flight for the old episode can
        never land after this returns: its header names the old episode and it is dropped.
        """
        with self._lock:
            self._queue.clear()
            self._slot.clear()
            self._pending = None
            self._episode_id += 1
            self._episode_start = True
            episode = self._episode_id
        self._last_action = None
        logger.info("%s: reset, episode %d begins", self.config.client_id, episode)
        self._on_reset(episode)
        self._wake()

    def _wake(self) -> None:
        """Tell the worker (if the engine has one) that something changed."""
        self._wakeup.set()

    def _require_idle(self) -> None:
        if self.state is not EngineState.IDLE:
            raise RuntimeError(f"start() called on an engine in state {self.state.value}")

    def _on_reset(self, episode_id: int) -> None:
        """Hook for engines that tell their server about episode boundaries."""

    def _configure_session(
        self, *, replace: bool, horizon: int | None, session_id: str, epoch: int, schema: int
    ) -> None:
        with self._lock:
            if self._queue.replace != replace:
                # The merge mode is fixed by the first session; it only changes before any
                # chunk was merged (a later flip is refused as a contract change).
                self._queue = ActionQueue(replace=replace)
            self._horizon = horizon
            self._session_id = session_id
            self._epoch = epoch
            self._schema = schema
            self._pending = None

    def _buffer_low(self) -> bool:
        """Time for the next request: playback left is under `buffer_time_s`, or nothing is."""
        queued = len(self._queue)
        return queued == 0 or queued * self._dt_ns < self._buffer_ns

    def _adopt_session(self, ack: SessionAck) -> str:
        """Configure merge mode, prefix horizon and identity from an ack; returns a log line."""
        caps = ack.capabilities
        self._configure_session(
            replace=ack.rtc_enabled,
            horizon=self.config.rtc_horizon or caps.rtc_execution_horizon or None,
            session_id=ack.session_id,
            epoch=ack.session_epoch,
            schema=ack.schema_version,
        )
        for warning in ack.warnings:
            logger.warning("%s: server warns: %s", self.config.client_id, warning)
        mode = "RTC replace" if ack.rtc_enabled else "append"
        return (
            f"session {ack.session_id} epoch {ack.session_epoch} open with "
            f"{caps.model_id}@{caps.revision}, chunk {caps.chunk_size}, {mode}"
        )

    def _take_request(self, now_ns: int, *, force: bool = False) -> Request | None:
        """Build the next request if one is due: none pending, not paused, buffer running low.

        `force` skips the buffer check (a blocking engine asks exactly when it is empty).
        """
        with self._lock:
            if self._pending is not None or self._paused_at_ns is not None:
                return None
            if self._state not in _REQUESTING:
                return None
            if not force:
                self._wants_low_buffer = True
                if not self._buffer_low():
                    return None
                self._wants_low_buffer = False
            self._wants_observation = True
            item = self._slot.take()
            if item is None:
                return None
            self._wants_observation = False
            obs, born_ns = item
            if self._queue.replace:
                snap = self._queue.snapshot(self._horizon)
            else:
                snap = QueueSnapshot(self._queue.index, None, None)
            delay = self._latency.delay_steps(self.config.dt_s)
            self._seq_id += 1
            header = Header(
                schema_version=self._schema,
                msg_type=MsgType.OBSERVATION,
                seq_id=self._seq_id,
                episode_id=self._episode_id,
                client_mono_ns=now_ns,
                session_epoch=self._epoch,
            )
            request = Observation(
                state=obs.state,
                images=obs.images,
                task=obs.task or self.config.task,
                inference_delay_steps=delay,
                prefix_model=snap.prefix_model,
                prefix_robot=snap.prefix_robot,
                episode_start=self._episode_start,
            )
            self._episode_start = False
            pending = PendingRequest(header, snap.index, delay, born_ns, now_ns)
            self._pending = pending
            self._counters.requests += 1
        return Request(header, request, pending)

    def _accept(self, header: Header, msg: ActionChunk | ErrorReply, received_ns: int) -> Outcome:
        """Merge a reply if it answers the pending request; otherwise drop and count it."""
        with self._lock:
            pending = self._pending
            identity = (header.seq_id, header.episode_id, header.session_epoch)
            if pending is None or identity != pending.identity:
                self._counters.chunks_dropped_stale += 1
                return Outcome.STALE
            self._pending = None
            if isinstance(msg, ErrorReply):
                self._counters.error_replies += 1
                self._trouble = f"server error {msg.code.value}: {msg.message}"
                return Outcome.ERROR
            problem = self._check_chunk(msg)
            if problem:
                self._counters.malformed_replies += 1
                self._trouble = problem
                logger.warning("%s: dropped chunk: %s", self.config.client_id, problem)
                return Outcome.MALFORMED
            self._latency.add_ns(max(0, received_ns - pending.sent_ns))
            self._queue.merge(
                msg.chunk_model,
                msg.chunk_robot,
                pending.delay,
                pending.index_at_send,
                pending.born_ns,
            )
            c = self._counters
            c.chunks_merged += 1
            c.superseded += msg.superseded
            self._last_queue_wait_ms = msg.queue_wait_ms
            self._last_inference_ms = msg.inference_ms
            self._trouble = None
            self._expired_at_merge = self._actions_expired
            self._healthy_ns = received_ns
            return Outcome.MERGED

    def _check_chunk(self, chunk: ActionChunk) -> str | None:
        model, robot = chunk.chunk_model, chunk.chunk_robot
        if robot.ndim != 2 or robot.shape[1] != self.layout.action_dim:
            return f"robot chunk has shape {robot.shape}, expected [T, {self.layout.action_dim}]"
        if model.ndim != 2 or len(model) != len(robot):
            return f"model chunk has shape {model.shape}, expected [{len(robot)}, A]"
        if not (np.isfinite(robot).all() and np.isfinite(model).all()):
            return "chunk holds NaN or infinite values"
        return None

    def _abandon_pending(self, reason: str, *, timed_out: bool = False) -> None:
        with self._lock:
            if self._pending is None:
                return
            self._pending = None
            self._trouble = reason
            if timed_out:
                self._counters.timeouts += 1

    def _note_trouble(self, reason: str) -> None:
        with self._lock:
            self._trouble = self._trouble or reason

    def _clear_trouble(self) -> None:
        with self._lock:
            self._trouble = None

    def _pending_age_ns(self, now_ns: int) -> int | None:
        with self._lock:
            return None if self._pending is None else now_ns - self._pending.sent_ns

    def _playback_state(self, now_ns: int) -> tuple[EngineState, str]:
        """STREAMING, DEGRADED or STALLED, from link trouble and what is left to play."""
        with self._lock:
            trouble = self._trouble
            pending = self._pending
            expired = self._actions_expired - self._expired_at_merge
        fresh = self._queue.has_fresh(now_ns, self._max_age_ns)
        if trouble is None and pending is not None and now_ns - pending.sent_ns > self._degraded_ns:
            late_s = (now_ns - pending.sent_ns) / NS_PER_S
            trouble = f"request {pending.header.seq_id} unanswered for {late_s:.2f} s"
        if trouble is None and expired and not fresh:
            trouble = f"chunks arrive older than max_action_age_s={self.config.max_action_age_s:g}"
        if trouble is None:
            return EngineState.STREAMING, "chunks arriving"
        if fresh:
            return EngineState.DEGRADED, f"{trouble}; playing buffered actions"
        return (
            EngineState.STALLED,
            f"{trouble}; no fresh action left, fallback {self.config.fallback.value}",
        )

    def _set_state(self, state: EngineState, reason: str) -> None:
        with self._lock:
            if state is self._state or self._state is EngineState.DEAD:
                return
            previous, self._state = self._state, state
            self._transitions.append(Transition(time.monotonic(), state, reason))
        log = logger.warning if state in (EngineState.STALLED, EngineState.DEAD) else logger.info
        log("%s: %s -> %s (%s)", self.config.client_id, previous.value, state.value, reason)

    def _offline_s(self, now_ns: int) -> float:
        """Seconds the robot has been wanting a chunk without getting one.

        Time counts only while there is demand (a request outstanding, or the buffer low while
        the control loop still offers observations) and the engine is not paused: a robot that
        stopped its loop, or is playing a full buffer, is not offline.
        """
        with self._lock:
            if self._paused_at_ns is not None:
                return (self._paused_at_ns - self._healthy_ns) / NS_PER_S
            offered = self._slot.last_put_ns
            looping = offered is not None and now_ns - offered < self._degraded_ns
            if self._pending is None and not (self._buffer_low() and looping):
                self._healthy_ns = now_ns
            return (now_ns - self._healthy_ns) / NS_PER_S

    def _die_if_offline(self, now_ns: int) -> bool:
        offline = self._offline_s(now_ns)
        if offline <= self.config.max_offline_s:
            return False
        self._die(
            f"wanted chunks for {offline:.1f} s without getting one "
            f"(max_offline_s={self.config.max_offline_s:g})"
        )
        return True

    def _restart_offline_clock(self) -> None:
        with self._lock:
            self._healthy_ns = time.monotonic_ns()

    def _die(self, reason: str) -> None:
        """DEAD: empty the queue, record why, and run the caller's shutdown callback once."""
        with self._lock:
            if self._state is EngineState.DEAD:
                return
            self._queue.clear()
            self._pending = None
        self._set_state(EngineState.DEAD, reason)
        logger.error("%s: engine dead: %s", self.config.client_id, reason)
        if self._on_shutdown is not None:
            try:
                self._on_shutdown(reason)
            except Exception:
                logger.exception("%s: shutdown callback raised", self.config.client_id)

    def _count_reconnect(self) -> None:
        with self._lock:
            self._counters.reconnects += 1

    def _pop_fresh(self) -> np.ndarray | None:
        action, expired = self._queue.pop(time.monotonic_ns(), self._max_age_ns)
        self._actions_expired += expired
        if action is not None:
            self._last_action = action
        return action

    def _fallback_tick(self) -> np.ndarray | None:
        self._fallback_ticks += 1
        return self._fallback()

    def _fallback(self) -> np.ndarray | None:
        fallback = self.config.fallback
        if fallback is Fallback.ZERO:
            return self._zero.copy()
        if fallback is Fallback.REPEAT_LAST and self._last_action is not None:
            return self._last_action.copy()
        return None
