"""Prometheus metrics of one server, in a registry of its own.

A registry per `ServerApp` (not the process-global default) lets several servers live in one
process — tests and benchmarks do that — without their counters colliding.
"""

from __future__ import annotations

import threading
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# Milliseconds to seconds: sub-millisecond resolution for overhead, up to a slow VLA forward.
_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


class ServerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "policylink_requests", "Requests served, by outcome.", ["outcome"], registry=r
        )
        self.errors = Counter(
            "policylink_errors", "Requests answered with an error, by code.", ["code"], registry=r
        )
        self.superseded = Counter(
            "policylink_superseded",
            "Observations replaced by a newer one before they were served.",
            registry=r,
        )
        self.dropped = Counter(
            "policylink_dropped",
            "Observations dropped unanswered (malformed header, old episode, draining).",
            ["reason"],
            registry=r,
        )
        self.sessions_opened = Counter("policylink_sessions_opened", "Sessions opened.", registry=r)
        self.sessions_rejected = Counter(
            "policylink_sessions_rejected", "Session opens refused, by code.", ["code"], registry=r
        )
        self.sessions_closed = Counter(
            "policylink_sessions_closed", "Sessions closed, by reason.", ["reason"], registry=r
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
