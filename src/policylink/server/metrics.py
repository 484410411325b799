"""Prometheus metrics of one server, in a registry of its own.

A registry per `ServerApp` (not the process-global default) lets several servers live in one
process — tests and benchmarks do that — without their counters colliding.

Every label value comes from a fixed set (`FixedLabelCounter`): a label built from what a
client sends — a free-text close reason, an OpenPI session id, a peer address — would make
`/metrics` grow without bound, one series per value. Free text goes to the log instead.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from policylink.wire.errors import ErrorCode

# Milliseconds to seconds: sub-millisecond resolution for overhead, up to a slow VLA forward.
_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)

OTHER = "other"
ERROR_CODES = tuple(code.value for code in ErrorCode)
REQUEST_OUTCOMES = ("ok", "error")
DROP_REASONS = (
    "bad_header",
    "too_large",
    "rate_limited",
    "old_episode",
    "draining",
    "reply_failed",
)
# Why a session closed: the robot closed it, it sent nothing for a while (`idle`) or nothing at
# all (`never_used`), its liveliness token went, its client opened another (`replaced`), its
# OpenPI connection ended or switched session ids, or the server drained.
CLOSE_REASONS = (
    "client",
    "idle",
    "never_used",
    "liveliness",
    "replaced",
    "connection",
    "session_switch",
    "draining",
)
# The phrases surfaces pass to `ServerCore.close_session`, as the label they count under.
CLOSE_REASON_ALIASES = {
    "closed by client": "client",
    "client liveliness lost": "liveliness",
}


class FixedLabelCounter:
    """A counter with one label whose values come from a fixed set: `labels(value)` counts a
    value outside the set (after `aliases`) under `other`, so no client can add a series."""

    def __init__(
        self,
        name: str,
        documentation: str,
        label: str,
        values: Iterable[str],
        registry: CollectorRegistry,
        *,
        aliases: Mapping[str, str] | None = None,
    ) -> None:
        self._allowed = frozenset(values)
        self._aliases = dict(aliases or {})
        self._counter = Counter(name, documentation, [label], registry=registry)

    def label_of(self, value: str) -> str:
        value = self._aliases.get(value, value)
        return value if value in self._allowed else OTHER

    def labels(self, value: str) -> Counter:
        return self._counter.labels(self.label_of(value))


class ServerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = FixedLabelCounter(
            "policylink_requests", "Requests served, by outcome.", "outcome", REQUEST_OUTCOMES, r
        )
        self.errors = FixedLabelCounter(
            "policylink_errors", "Requests answered with an error, by code.", "code", ERROR_CODES, r
        )
        self.superseded = Counter(
            "policylink_superseded",
            "Observations replaced by a newer one before they were served.",
            registry=r,
        )
        self.dropped = FixedLabelCounter(
            "policylink_dropped",
            "Observations dropped unanswered (malformed header, too large, rate-limited, old "
            "episode, draining).",
            "reason",
            DROP_REASONS,
            r,
        )
        self.sessions_opened = Counter("policylink_sessions_opened", "Sessions opened.", registry=r)
        self.sessions_rejected = FixedLabelCounter(
            "policylink_sessions_rejected",
            "Session opens refused, by code.",
            "code",
            ERROR_CODES,
            r,
        )
        self.sessions_closed = FixedLabelCounter(
            "policylink_sessions_closed",
            "Sessions closed, by reason.",
            "reason",
            CLOSE_REASONS,
            r,
            aliases=CLOSE_REASON_ALIASES,
        )
        self.auth_failures = Counter(
            "policylink_auth_failures",
            "OpenPI connections refused for a missing or wrong API key, or while their address "
            "was locked out after repeated failures.",
            registry=r,
        )
        self.sessions_active = Gauge(
            "policylink_sessions_active", "Sessions currently open.", registry=r
        )
        self.queue_wait = Histogram(
            "policylink_queue_wait_seconds",
            "From arrival to the worker taking the request.",
            buckets=_BUCKETS,
            registry=r,
        )
        self.inference = Histogram(
            "policylink_inference_seconds",
            "The policy's chunk call alone.",
            buckets=_BUCKETS,
            registry=r,
        )
        self.overhead = Histogram(
            "policylink_overhead_seconds",
            "Server time per request outside the chunk call: decode, processors, encode, publish.",
            buckets=_BUCKETS,
            registry=r,
        )
        self.load = Gauge(
            "policylink_server_load",
            "Fraction of the last second the device thread spent in forwards.",
            registry=r,
        )
        self.request_bytes = Histogram(
            "policylink_request_bytes",
            "Observation bytes per request as received over the native protocol (robots that "
            "resize to the policy's input resolution send a fraction of a full frame's).",
            buckets=tuple(2**k for k in range(10, 25)),
            registry=r,
        )
        self.shm_observations = Counter(
            "policylink_shm_observations",
            "Observations that arrived in Zenoh shared memory (same-host robots, with "
            "shared_memory on at both ends) rather than over a network link.",
            registry=r,
        )
        self.batch_size = Histogram(
            "policylink_batch_size",
            "Requests per forward.",
            buckets=(1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64),
            registry=r,
        )
        self.forward_ms = Gauge(
            "policylink_forward_ms",
            "Median forward time per batch size, as measured while serving.",
            ["batch_size"],
            registry=r,
        )
        self.capacity_robots = Gauge(
            "policylink_capacity_robots",
            "Robots the device carries at the manifest's planning_request_hz, from measured "
            "forward times (0 before the first forward).",
            registry=r,
        )

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class LoadMeter:
    """Busy fraction of the inference worker over roughly the last second.

    The worker reports busy time after each request; readers get the last completed window,
    or — once a whole window has passed without a request — the running one, so an idle
    server decays to 0 instead of reporting its last busy second forever.
    """

    def __init__(self, window_s: float = 1.0) -> None:
        self._window_ns = int(window_s * 1e9)
        # Guards the running window (_start_ns, _busy_ns) and the last completed value.
        self._lock = threading.Lock()
        self._start_ns = time.monotonic_ns()
        self._busy_ns = 0
        self._value = 0.0

    def add_busy(self, busy_ns: int) -> None:
        now = time.monotonic_ns()
        with self._lock:
            self._busy_ns += busy_ns
            elapsed = now - self._start_ns
            if elapsed >= self._window_ns:
                self._value = min(1.0, self._busy_ns / elapsed)
                self._start_ns, self._busy_ns = now, 0

    def current(self) -> float:
        now = time.monotonic_ns()
        with self._lock:
            elapsed = now - self._start_ns
            if elapsed >= self._window_ns:
                return min(1.0, self._busy_ns / elapsed)
            return self._value
