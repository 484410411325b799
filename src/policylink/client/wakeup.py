"""A wake-up call from the control thread to a worker that never makes the control thread wait.

`threading.Event.set()` takes its condition's lock, which the woken worker holds while it
leaves `wait()` or calls `clear()`. If the worker loses the CPU at that moment, the control
thread sleeps on the lock, and on a busy machine a sleeping thread can wait a whole scheduler
tick (milliseconds) to run again. Here the signal is a plain lock held while no wake-up is
pending: `set()` releases it, which never blocks, and the worker's `wait()` re-takes it.
"""

from __future__ import annotations

import contextlib
import threading


class Wakeup:
    def __init__(self) -> None:
        # Held while no wake-up is pending; released by set(), re-taken by wait().
        self._pending = threading.Lock()
        self._pending.acquire()

    def set(self) -> None:
        """Wake the waiter, or leave a wake-up pending for its next `wait()`; never blocks."""
        # Releasing a released lock raises: a wake-up is pending already, which is enough.
        with contextlib.suppress(RuntimeError):
            self._pending.release()

    def wait(self, timeout_s: float) -> bool:
        """Until a wake-up (consumed) or `timeout_s`; True if woken."""
        return self._pending.acquire(timeout=max(0.0, timeout_s))
