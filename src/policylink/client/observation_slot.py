"""Latest-only hand-over of observations from the control loop to a worker.

The control loop must never wait, so it overwrites; the worker takes whatever is newest when
it is ready to send. An observation nobody took is simply replaced: requests are self-clocked
by the action buffer, not by the camera rate.
"""

from __future__ import annotations

import threading

from policylink.wire.messages import Observation


class ObservationSlot:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Guarded by _lock: the newest untaken observation and its capture time (monotonic ns),
        # and when the last one was offered (kept after it is taken).
        self._item: tuple[Observation, int] | None = None
        self._last_put_ns: int | None = None

    def put(self, obs: Observation, stamp_ns: int) -> None:
        with self._lock:
            self._item = (obs, stamp_ns)
            self._last_put_ns = stamp_ns

    @property
    def last_put_ns(self) -> int | None:
        with self._lock:
            return self._last_put_ns

    def take(self) -> tuple[Observation, int] | None:
        with self._lock:
            item, self._item = self._item, None
            return item

    def clear(self) -> None:
        with self._lock:
            self._item = None

    def __bool__(self) -> bool:
        with self._lock:
            return self._item is not None
