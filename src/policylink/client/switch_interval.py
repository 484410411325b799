"""A shorter interpreter switch interval while an engine's worker thread runs.

CPython hands its interpreter lock between threads on request: a thread that wants the lock
waits `sys.getswitchinterval()` (5 ms by default) before asking the holder to let go. The
default suits throughput, with few hand-overs between busy threads. A robot process is the
opposite case. When a tick begins while the worker is running Python, the control thread waits
until the worker blocks or the interval runs out; and while the control thread is busy, the
worker waits up to the interval for each of its several short turns per request (after each
JPEG encode, after the publish, when a reply lands). In the client benchmark's 100 Hz loop with
7 ms of Python per tick, 0.5 ms instead of 5 ms cuts the p99 lateness of tick starts from
0.4-1.2 ms to 0.15-0.2 ms and the request round trip from 9-10 ms to 6-6.5 ms. The price shows when
the control thread never sleeps: the worker then gets through more requests per second, which
on a small CPU is more contention for the control thread.

The interval is process-wide: the first running engine lowers it (never raises it), and the
last one to stop restores what it found.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class _Requests:
    """The interval each running engine asked for, and the setting found before the first."""

    intervals: list[float] = field(default_factory=list)
    found: float = 0.0

    def apply(self) -> None:
        sys.setswitchinterval(min([self.found, *self.intervals]))


_lock = threading.Lock()
# Guarded by _lock.
_requests = _Requests()


def lower_switch_interval(seconds: float) -> Callable[[], None]:
    """Keep the switch interval at most `seconds` until the returned function is called.

    `seconds=0` leaves the interpreter's setting alone. Calling the returned function again
    does nothing.
    """
    if seconds <= 0:
        return lambda: None
    with _lock:
        if not _requests.intervals:
            _requests.found = sys.getswitchinterval()
        _requests.intervals.append(seconds)
        _requests.apply()
    released = False

    def release() -> None:
        nonlocal released
        with _lock:
            if released:
                return
            released = True
            _requests.intervals.remove(seconds)
            _requests.apply()

    return release
