"""The request ledger: which request is in flight, and whether a reply may be merged.

Every request carries `(seq_id, episode_id, session_epoch)` in its header. The ledger keeps the
invariants that make a merged chunk trustworthy:

- one request outstanding: a new one is built only when none is pending, and the queue index
  and left-over prefix are snapshotted with it;
- a reply merges only if it answers the pending request's identity; anything else (an
  abandoned request's late answer, a previous episode's or session's) is dropped and counted,
  and a chunk of the wrong shape or with non-finite values is dropped too;
- `reset()` bumps the episode under the lock the merge takes, so a chunk in flight for the old
  episode can never land after it returns: its header names the old episode and it is dropped.

It is called by the thread that makes requests (a worker, or `SyncEngine`'s caller) and, for
`reset()`, by the control thread. Whether a request may be made at all (state, pause) is the
`SafetyLadder`'s call, checked by the engine before it asks for one.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from enum import Enum

import numpy as np

from policylink.client.action_queue import ChunkOrigin, QueueSnapshot
from policylink.client.config import ClientConfig
from policylink.client.control_face import ControlFace
from policylink.client.engine import EngineState, EngineStats
from policylink.client.latency import LatencyTracker
from policylink.client.robot import RobotLayout
from policylink.wire.header import Header, MsgType
from policylink.wire.messages import ActionChunk, ErrorReply, Observation
from policylink.wire.schema import SCHEMA_VERSION

logger = logging.getLogger(__name__)


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
class Verdict:
    """What became of a reply; `problem` says why an ERROR or MALFORMED one was refused."""

    outcome: Outcome
    problem: str = ""


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


class RequestLedger:
    def __init__(self, config: ClientConfig, layout: RobotLayout, face: ControlFace) -> None:
        self._config = config
        self._action_dim = layout.action_dim
        self._face = face
        self.latency = LatencyTracker()
        self._lock = threading.Lock()
        # Guarded by _lock, which is taken before the queue's own lock, never after it: the
        # request identity (episode, seq, epoch, schema, session id), the RTC prefix horizon,
        # the episode_start flag, the counters and the server's last reported timings.
        self._episode_id = 0
        self._seq_id = 0
        self._epoch = 0
        self._schema = SCHEMA_VERSION
        self._session_id = ""
        self._horizon: int | None = None
        self._episode_start = True
        self._counters = _Counters()
        self._last_queue_wait_ms: float | None = None
        self._last_inference_ms: float | None = None
        # Written under _lock, read anywhere without it: one attribute holding an immutable
        # value, which the interpreter reads atomically.
        self._pending: PendingRequest | None = None

    @property
    def pending(self) -> PendingRequest | None:
        """The request in flight, if any."""
        return self._pending

    def pending_age_ns(self, now_ns: int) -> int | None:
        pending = self._pending
        return None if pending is None else now_ns - pending.sent_ns

    @property
    def session_id(self) -> str:
        with self._lock:
            return self._session_id

    def open_session(
        self, *, replace: bool, horizon: int | None, session_id: str, epoch: int, schema: int
    ) -> None:
        """Adopt a (re)opened session's identity and merge mode; a request in flight is void."""
        with self._lock:
            # The merge mode is fixed by the first session, before any chunk was merged: a
            # reopened session that flips it is refused as a contract change. On an empty
            # queue, setting the flag is the same as starting a new queue.
            self._face.queue.replace = replace
            self._horizon = horizon
            self._session_id = session_id
            self._epoch = epoch
            self._schema = schema
            self._pending = None

    def take_request(self, now_ns: int, *, force: bool = False) -> Request | None:
        """Build the next request if one is due: none pending, buffer running low, an
        observation offered. `force` skips the buffer check (a blocking engine asks exactly
        when it is empty).

        The observation is taken under the lock `reset()` takes, so one offered before a reset
        can never be sent with the new episode's id.
        """
        with self._lock:
            if self._pending is not None:
                return None
            if not force and not self._face.request_due():
                return None
            item = self._face.take_observation()
            if item is None:
                return None
            obs, born_ns = item
            queue = self._face.queue
            if queue.replace:
                snap = queue.snapshot(self._horizon)
            else:
                snap = QueueSnapshot(queue.index, None, None)
            delay = self.latency.delay_steps(self._config.dt_s)
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
                task=obs.task or self._config.task,
                inference_delay_steps=delay,
                prefix_model=snap.prefix_model,
                prefix_robot=snap.prefix_robot,
                episode_start=self._episode_start,
                playback_left_ms=len(queue) * self._config.dt_s * 1e3,
            )
            self._episode_start = False
            pending = PendingRequest(header, snap.index, delay, born_ns, now_ns)
            self._pending = pending
            self._counters.requests += 1
        return Request(header, request, pending)

    def accept(self, header: Header, msg: ActionChunk | ErrorReply, received_ns: int) -> Verdict:
        """Merge a reply if it answers the pending request; otherwise drop and count it."""
        with self._lock:
            pending = self._pending
            identity = (header.seq_id, header.episode_id, header.session_epoch)
            if pending is None or identity != pending.identity:
                self._counters.chunks_dropped_stale += 1
                return Verdict(Outcome.STALE)
            self._pending = None
            if isinstance(msg, ErrorReply):
                self._counters.error_replies += 1
                return Verdict(Outcome.ERROR, f"server error {msg.code.value}: {msg.message}")
            problem = self._check_chunk(msg)
            if problem:
                self._counters.malformed_replies += 1
                logger.warning("%s: dropped chunk: %s", self._config.client_id, problem)
                return Verdict(Outcome.MALFORMED, problem)
            rtt_ns = max(0, received_ns - pending.sent_ns)
            self.latency.add_ns(rtt_ns)
            origin = ChunkOrigin(
                session_id=self._session_id,
                seq_id=header.seq_id,
                episode_id=header.episode_id,
                queue_wait_ms=msg.queue_wait_ms,
                inference_ms=msg.inference_ms,
                rtt_ms=rtt_ns / 1e6,
                obs_wait_ms=max(0, pending.sent_ns - pending.born_ns) / 1e6,
            )
            self._face.queue.merge(
                msg.chunk_model,
                msg.chunk_robot,
                pending.delay,
                pending.index_at_send,
                pending.born_ns,
                origin=origin,
            )
            c = self._counters
            c.chunks_merged += 1
            c.superseded += msg.superseded
            self._last_queue_wait_ms = msg.queue_wait_ms
            self._last_inference_ms = msg.inference_ms
            return Verdict(Outcome.MERGED)

    def _check_chunk(self, chunk: ActionChunk) -> str | None:
        model, robot = chunk.chunk_model, chunk.chunk_robot
        if robot.ndim != 2 or robot.shape[1] != self._action_dim:
            return f"robot chunk has shape {robot.shape}, expected [T, {self._action_dim}]"
        if model.ndim != 2 or len(model) != len(robot):
            return f"model chunk has shape {model.shape}, expected [{len(robot)}, A]"
        if not (np.isfinite(robot).all() and np.isfinite(model).all()):
            return "chunk holds NaN or infinite values"
        return None

    def abandon(self, *, timed_out: bool = False) -> bool:
        """Stop waiting for the request in flight (its answer will be dropped as stale);
        False if there was none."""
        with self._lock:
            if self._pending is None:
                return False
            self._pending = None
            if timed_out:
                self._counters.timeouts += 1
            return True

    def reset(self) -> int:
        """Episode boundary: clear the queue and the untaken observation, void the request in
        flight, bump `episode_id`; returns the new episode's id."""
        with self._lock:
            self._face.clear()
            self._pending = None
            self._episode_id += 1
            self._episode_start = True
            return self._episode_id

    def clear(self) -> None:
        """Void the request in flight and drop every queued action (the engine is dead)."""
        with self._lock:
            self._face.queue.clear()
            self._pending = None

    def count_reconnect(self) -> None:
        with self._lock:
            self._counters.reconnects += 1

    def stats(self, state: EngineState, *, paused: bool) -> EngineStats:
        """The engine's stats: this ledger's counters, consistent with each other, and the
        control thread's counts; `state` and `paused` come from the engine's `SafetyLadder`."""
        face = self._face
        with self._lock:
            c = self._counters
            last = self.latency.last_s
            return EngineStats(
                state=state,
                episode_id=self._episode_id,
                requests=c.requests,
                chunks_merged=c.chunks_merged,
                chunks_dropped_stale=c.chunks_dropped_stale,
                error_replies=c.error_replies,
                malformed_replies=c.malformed_replies,
                timeouts=c.timeouts,
                reconnects=c.reconnects,
                actions_expired=face.actions_expired,
                fallback_ticks=face.fallback_ticks,
                queue_depth=len(face.queue),
                last_rtt_ms=None if last is None else last * 1e3,
                latency_estimate_ms=self.latency.estimate_s * 1e3,
                delay_steps=self.latency.delay_steps(self._config.dt_s),
                last_queue_wait_ms=self._last_queue_wait_ms,
                last_inference_ms=self._last_inference_ms,
                superseded=c.superseded,
                session_id=self._session_id,
                paused=paused,
            )
