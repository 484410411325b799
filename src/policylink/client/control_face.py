"""The control thread's side of an engine: the two calls a robot makes every tick.

`notify_observation` offers the newest observation; `get_action` pops the next action younger
than `max_action_age_s`, counted from the observation it answers, or returns the configured
fallback when nothing fresh is left. A stale action is never returned.

Neither call takes a lock a worker can hold, so neither ever sleeps: on a busy machine a thread
that sleeps can wait a whole scheduler tick (milliseconds) to run again. The queue pops without
a lock, the observation slot is a one-slot deque, the worker is woken by a `Wakeup` that never
blocks, and what the control thread counts it counts alone.

The worker's half of the hand-over (`take_observation`, `request_due`) lives here too, because
the wake-up flags work only if both halves keep one rule: the worker raises a flag *before* it
checks its condition, and the control thread wakes it once the condition holds. A wake-up is
then never missed, and never sent to a worker that is not waiting for one.
"""

from __future__ import annotations

import time

import numpy as np

from policylink.client.action_queue import ActionQueue
from policylink.client.config import ClientConfig, Fallback
from policylink.client.latency import NS_PER_S
from policylink.client.observation_slot import ObservationSlot
from policylink.client.robot import RobotLayout
from policylink.client.wakeup import Wakeup
from policylink.wire.messages import Observation


class ControlFace:
    """Owned by one engine; its control-thread methods must be called from one thread only."""

    def __init__(self, config: ClientConfig, layout: RobotLayout) -> None:
        # The merge mode is the ledger's to set when a session opens (`RequestLedger`).
        self.queue = ActionQueue(replace=config.rtc)
        self.wakeup = Wakeup()
        self._slot = ObservationSlot()
        self._fallback = config.fallback
        self._dt_ns = round(config.dt_s * NS_PER_S)
        self._max_age_ns = round(config.max_action_age_s * NS_PER_S)
        self._buffer_ns = round(config.buffer_time_s * NS_PER_S)
        self._zero = np.zeros(layout.action_dim, dtype=np.float32)
        # Wake-up requests from the worker to the control thread, plain flags: raised by the
        # worker, lowered by whichever side sees the condition met.
        self._wants_observation = False
        self._wants_low_buffer = False
        # Written and read by the control thread only.
        self._last_action: np.ndarray | None = None
        # Written by the control thread only, read anywhere without a lock (an int read is
        # atomic): actions discarded for age, and get_action() calls answered by the fallback.
        self.actions_expired = 0
        self.fallback_ticks = 0

    def notify_observation(self, obs: Observation) -> None:
        """Offer the newest observation; it replaces one the worker has not taken yet."""
        self._slot.put(obs, time.monotonic_ns())
        if self._wants_observation:
            self._wants_observation = False
            self.wakeup.set()

    def get_action(self) -> np.ndarray | None:
        """The next fresh robot-space action, or the fallback. Never blocks."""
        action = self.pop_fresh()
        if self._wants_low_buffer and self.buffer_low():
            self._wants_low_buffer = False
            self.wakeup.set()
        return action if action is not None else self.fallback()

    def pop_fresh(self) -> np.ndarray | None:
        """The next action younger than `max_action_age_s`, or None; older ones are dropped."""
        action, expired = self.queue.pop(time.monotonic_ns(), self._max_age_ns)
        self.actions_expired += expired
        if action is not None:
            self._last_action = action
        return action

    def fallback(self) -> np.ndarray | None:
        """What a tick with no fresh action commands: hold (None), zeros, or the last action."""
        self.fallback_ticks += 1
        if self._fallback is Fallback.ZERO:
            return self._zero.copy()
        if self._fallback is Fallback.REPEAT_LAST and self._last_action is not None:
            return self._last_action.copy()
        return None

    def forget_last_action(self) -> None:
        """At an episode boundary: `repeat_last` must not replay the previous episode's action."""
        self._last_action = None

    def wake(self) -> None:
        """Tell the worker (if the engine has one) that something changed."""
        self.wakeup.set()

    def buffer_low(self) -> bool:
        """Time for the next request: playback left is under `buffer_time_s`, or nothing is."""
        queued = len(self.queue)
        return queued == 0 or queued * self._dt_ns < self._buffer_ns

    def request_due(self) -> bool:
        """Worker side: whether the buffer is low; if not, `get_action` wakes it once it is."""
        self._wants_low_buffer = True
        if not self.buffer_low():
            return False
        self._wants_low_buffer = False
        return True

    def take_observation(self) -> tuple[Observation, int] | None:
        """Worker side: the newest untaken observation and its capture time (monotonic ns);
        if there is none, `notify_observation` wakes the worker when one is offered."""
        self._wants_observation = True
        item = self._slot.take()
        if item is not None:
            self._wants_observation = False
        return item

    def has_fresh(self, now_ns: int) -> bool:
        """Whether `get_action` would now return an action rather than the fallback."""
        return self.queue.has_fresh(now_ns, self._max_age_ns)

    @property
    def last_offered_ns(self) -> int | None:
        """When the control loop last offered an observation: whether it is still running."""
        return self._slot.last_put_ns

    def clear(self) -> None:
        """Drop every queued action and the untaken observation (an episode boundary)."""
        self.queue.clear()
        self._slot.clear()
