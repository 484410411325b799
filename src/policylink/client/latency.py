"""Rolling estimate of full request latency, from send stamp to chunk arrival.

The samples are network-inclusive (encode, uplink, server queue, forward, downlink), so the
delay they predict compensates for the network with no separate RTT term. The estimate is the
window's maximum: overestimating the delay only freezes a few more RTC prefix steps, while
underestimating lets the server plan freely for ticks the robot has already played.
"""

from __future__ import annotations

import math
import threading
from collections import deque

NS_PER_S = 1_000_000_000


class LatencyTracker:
    def __init__(self, window: int = 16) -> None:
        if window < 1:
            raise ValueError(f"latency window must be at least 1, got {window}")
        self._lock = threading.Lock()
        # Guarded by _lock: the most recent latencies in seconds, newest last.
        self._samples: deque[float] = deque(maxlen=window)

    def add(self, seconds: float) -> None:
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"latency sample must be a finite non-negative time, got {seconds}")
        with self._lock:
            self._samples.append(seconds)

    def add_ns(self, nanoseconds: int) -> None:
        self.add(nanoseconds / NS_PER_S)

    @property
    def estimate_s(self) -> float:
        """The window's maximum; 0.0 before the first sample."""
        with self._lock:
            return max(self._samples, default=0.0)

    @property
    def last_s(self) -> float | None:
        with self._lock:
            return self._samples[-1] if self._samples else None

    def delay_steps(self, dt_s: float) -> int:
        """`ceil(estimate / dt)`: control ticks that will have passed when a chunk lands."""
        # The epsilon keeps 0.1 / 0.1 from rounding up to 2 through float error.
        return max(0, math.ceil(self.estimate_s / dt_s - 1e-9))
