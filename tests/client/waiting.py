"""Polling with generous deadlines: busy 2-core machines make fixed sleeps flaky."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from policylink.wire import Observation

T = TypeVar("T")


def wait_for(condition: Callable[[], T], timeout_s: float = 20.0, what: str = "condition") -> T:
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.002)


def offer_until(
    engine: Any, obs: Observation, condition: Callable[[], T], what: str, timeout_s: float = 20.0
) -> T:
    """Keep offering `obs` as a running control loop would, until `condition()` holds."""

    def offered() -> T:
        engine.notify_observation(obs)
        return condition()

    return wait_for(offered, timeout_s, what)
