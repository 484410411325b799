"""Latest-only hand-over of observations from the control loop to a worker.

The control loop must never wait, so it overwrites; the worker takes whatever is newest when
it is ready to send. An observation nobody took is simply replaced: requests are self-clocked
by the action buffer, not by the camera rate.

No lock: a one-slot deque replaces on `append` and takes on `popleft`, each a single atomic
operation under the interpreter lock, so neither side can ever wait for the other.
"""

from __future__ import annotations

from collections import deque

from policylink.wire.messages import Observation


class ObservationSlot:
    def __init__(self) -> None:
        # The newest untaken observation and its capture time (monotonic ns).
        self._item: deque[tuple[Observation, int]] = deque(maxlen=1)
        # Written by the control thread only: when the last observation was offered (kept
        # after it is taken).
        self.last_put_ns: int | None = None

    def put(self, obs: Observation, stamp_ns: int) -> None:
        self._item.append((obs, stamp_ns))
        self.last_put_ns = stamp_ns

    def take(self) -> tuple[Observation, int] | None:
        try:
            return self._item.popleft()
        except IndexError:
            return None

    def clear(self) -> None:
        self._item.clear()

    def __bool__(self) -> bool:
        return bool(self._item)
