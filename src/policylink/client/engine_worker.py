"""The one background thread of `LocalEngine` and `RemoteEngine`.

It sleeps until woken (a reply landed, the buffer ran low, an observation it wanted arrived,
`stop()`) or until the engine's next deadline, runs one step, and repeats until stopped or the
engine is dead. A step that raises is logged and handed to `on_error`, and the loop goes on: a
worker that ended silently would leave the robot holding forever with no state change. While
it runs, the interpreter's switch interval is kept short (see `switch_interval`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from policylink.client.switch_interval import lower_switch_interval
from policylink.client.wakeup import Wakeup

logger = logging.getLogger(__name__)

# A worker with nothing to wait for still wakes this often for bookkeeping (state, expiry,
# the offline budget). Everything urgent wakes it at once: waking it needlessly is not free,
# since every wake-up makes a busy control thread hand over the interpreter lock.
IDLE_WAIT_S = 0.1


class Worker:
    """Owned by one engine, which starts it in `start()` and stops it in `stop()`."""

    def __init__(
        self,
        name: str,
        wakeup: Wakeup,
        step: Callable[[int], None],
        *,
        on_error: Callable[[str], None],
        finished: Callable[[], bool],
        wait_s: Callable[[int], float] = lambda now_ns: IDLE_WAIT_S,
        switch_interval_s: float = 0.0,
    ) -> None:
        self.name = name
        self._wakeup = wakeup
        self._step = step
        self._on_error = on_error
        self._finished = finished
        self._wait_s = wait_s
        self._switch_interval_s = switch_interval_s
        self._stopping = threading.Event()
        # Set and cleared by the owner's start() and stop() only.
        self._thread: threading.Thread | None = None
        self._restore_switch_interval: Callable[[], None] = lambda: None

    def start(self) -> None:
        self._restore_switch_interval = lower_switch_interval(self._switch_interval_s)
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float | None = None) -> bool:
        """End the loop and wait for it; False if it was still running after `timeout_s`.

        Safe to call from the worker itself (the shutdown callback runs on it and may stop
        the engine): it cannot join itself, so it only asks the loop to end.
        """
        self._stopping.set()
        self._wakeup.set()
        thread, self._thread = self._thread, None
        stopped = True
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_s)
            stopped = not thread.is_alive()
        self._restore_switch_interval()
        return stopped

    def _run(self) -> None:
        while not self._stopping.is_set() and not self._finished():
            self._wakeup.wait(self._wait_s(time.monotonic_ns()))
            try:
                self._step(time.monotonic_ns())
            except Exception as exc:
                logger.exception("%s: step failed", self.name)
                self._on_error(f"worker error {type(exc).__name__}: {exc}")
