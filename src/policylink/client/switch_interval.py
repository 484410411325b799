"""A shorter interpreter switch interval while an engine's worker thread runs.

CPython hands its interpreter lock between threads on request: a thread that wants the lock
waits `sys.getswitchinterval()` (5 ms by default) before asking the holder to let go. The
default suits throughput, with few hand-overs between busy threads. A robot process is the
opposite case. The control thread runs Python every tick, and the worker needs the lock for
microseconds at a time, several times per request (after each JPEG encode, after the publish,
when a reply lands); at 5 ms each of those waits stretches the request, and whenever the worker
runs Python longer than a few microseconds the control thread waits up to 5 ms to get the lock
back. Half a millisecond bounds both well inside a 100 Hz tick, for at most a couple of
thousand extra hand-overs a second while both threads are busy.

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
