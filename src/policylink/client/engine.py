"""The interface every engine offers a control loop, so a robot switches engines by config.

What the loop touches every tick, `notify_observation`, `get_action` and `failed`, never does
I/O, never waits on the network or a model and takes no lock a worker can hold: a latest-only
slot, an action queue and one attribute read.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Protocol, runtime_checkable

import numpy as np

from policylink.client.action_queue import ActionProvenance
from policylink.wire.messages import Observation


class EngineState(str, Enum):
    """Where an engine is, in escalating order of trouble.

    STREAMING: chunks arrive in time. DEGRADED: chunks are late or the link is down, but
    buffered actions are still fresh and playing. STALLED: nothing fresh is left, the fallback
    plays. RECONNECTING: the session is lost and being re-opened with backoff. DEAD: offline
    for longer than `max_offline_s` or the server's contract changed; the shutdown callback ran.
    """

    IDLE = "idle"
    CONNECTING = "connecting"
    STREAMING = "streaming"
    DEGRADED = "degraded"
    STALLED = "stalled"
    RECONNECTING = "reconnecting"
    DEAD = "dead"
    STOPPED = "stopped"


@dataclass(frozen=True)
class EngineStats:
    """A consistent snapshot of counters a live view or a log line can show.

    `chunks_dropped_stale` counts chunks that answered anything but the newest request of
    the current episode and session; `actions_expired` counts buffered actions discarded for
    exceeding `max_action_age_s`; `fallback_ticks` counts `get_action()` calls that returned
    the fallback.
    """

    state: EngineState
    episode_id: int
    requests: int
    chunks_merged: int
    chunks_dropped_stale: int
    error_replies: int
    malformed_replies: int
    timeouts: int
    reconnects: int
    actions_expired: int
    fallback_ticks: int
    queue_depth: int
    last_rtt_ms: float | None
    latency_estimate_ms: float
    delay_steps: int
    last_queue_wait_ms: float | None
    last_inference_ms: float | None
    superseded: int
    session_id: str
    paused: bool
    # What the uplink carried (links that encode through a `client.uplink.Uplink`; 0 for
    # others): observation bytes in all, those of the last request, the JPEG quality now.
    bytes_sent: int = 0
    last_request_bytes: int = 0
    jpeg_quality: int = 0

    @property
    def bytes_per_request(self) -> float:
        return self.bytes_sent / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class Transition:
    """One state change: when (monotonic seconds), to what, and why."""

    at_s: float
    state: EngineState
    reason: str


@runtime_checkable
class Engine(Protocol):
    @property
    def state(self) -> EngineState:
        """Where the engine is now; read without a lock, so the control loop may poll it."""
        ...

    @property
    def ready(self) -> bool:
        """True once chunks can be requested (session open, or local policy loaded)."""
        ...

    @property
    def failed(self) -> bool:
        """True once the engine is DEAD; the caller's teardown should run. Read without a lock."""
        ...

    @property
    def stats(self) -> EngineStats: ...

    @property
    def fps(self) -> float: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def reset(self) -> None: ...

    def transitions(self) -> list[Transition]:
        """Every state change so far (bounded), oldest first, each with its reason."""
        ...

    def notify_observation(self, obs: Observation) -> None: ...

    def get_action(self) -> np.ndarray | None: ...

    def last_provenance(self) -> ActionProvenance | None:
        """Which request produced the action the last `get_action()` returned, and its chunk
        row; None when that was the fallback. Control thread only; takes no lock."""
        ...

    @property
    def queue_depth(self) -> int:
        """Buffered actions left to play; read without a lock."""
        ...

    def server_identity(self) -> dict[str, str]:
        """Who computes the chunks now: model, revision, replica, session (empty before the
        first session opened)."""
        ...
