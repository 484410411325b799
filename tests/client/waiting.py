"""A control loop's side of polling: keep offering observations while waiting."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from policylink.wire import Observation
from tests.support.waiting import wait_for

T = TypeVar("T")


def offer_until(
    engine: Any, obs: Observation, condition: Callable[[], T], what: str, timeout_s: float = 20.0
) -> T:
    """Keep offering `obs` as a running control loop would, until `condition()` holds."""

    def offered() -> T:
        engine.notify_observation(obs)
        return condition()

    return wait_for(offered, timeout_s, what)
