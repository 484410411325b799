"""Forward time per batch size, measured as the server runs, and the fleet size it implies.

Operators should set `max_sessions` from a measurement, not a guess: the device thread records
every forward here, the status reply and `/metrics` report the table, and `capacity` turns it
into how many robots the device carries at a request rate. Only batch sizes actually seen are
reported, never extrapolated: a larger batch may not fit on the device. `policylink capacity`
fills the table before serving by sweeping batch sizes.
"""

from __future__ import annotations

import threading
from collections import deque
from statistics import median

# Forwards remembered per batch size: enough for a stable median, recent enough to follow a
# device that warms up or throttles.
WINDOW = 64
# Share of the device a capacity estimate plans for; the rest absorbs bursts and jitter.
HEADROOM = 0.8


class ForwardProfile:
    def __init__(self, max_batch_size: int) -> None:
        self.max_batch_size = max(1, max_batch_size)
        # Guards _samples: written by the device thread, read by status and metrics.
        self._lock = threading.Lock()
        self._samples: dict[int, deque[float]] = {}

    def record(self, batch_size: int, forward_ms: float) -> None:
        with self._lock:
            window = self._samples.setdefault(batch_size, deque(maxlen=WINDOW))
            window.append(forward_ms)

    def table(self) -> dict[int, float]:
        """Median forward milliseconds per batch size seen so far."""
        with self._lock:
            return {size: median(times) for size, times in sorted(self._samples.items())}

    def robots_at(self, request_rate_hz: float) -> int:
        """Robots the device carries when each requests `request_rate_hz` chunks per second:
        the best throughput over the batch sizes seen, with headroom. 0 before any forward."""
        return capacity(self.table(), request_rate_hz)


def capacity(table: dict[int, float], request_rate_hz: float) -> int:
    if request_rate_hz <= 0:
        return 0
    best = max((size / (ms / 1e3) for size, ms in table.items() if ms > 0), default=0.0)
    return int(HEADROOM * best / request_rate_hz)
