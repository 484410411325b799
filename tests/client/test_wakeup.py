"""Wakeup: the control thread's signal to a worker, which must never block the signaller."""

from __future__ import annotations

import threading
import time

from policylink.client.wakeup import Wakeup


def test_a_wakeup_set_before_the_wait_is_not_lost() -> None:
    wakeup = Wakeup()
    wakeup.set()
    assert wakeup.wait(10.0)


def test_several_wakeups_before_a_wait_wake_it_once() -> None:
    wakeup = Wakeup()
    wakeup.set()
    wakeup.set()
    assert wakeup.wait(10.0)
    assert not wakeup.wait(0.0)


def test_a_wait_without_a_wakeup_times_out() -> None:
    began = time.monotonic()
    assert not Wakeup().wait(0.05)
    assert time.monotonic() - began >= 0.04


def test_a_wakeup_from_another_thread_ends_a_wait() -> None:
    wakeup = Wakeup()
    setter = threading.Timer(0.05, wakeup.set)
    setter.start()
    try:
        assert wakeup.wait(10.0)
    finally:
        setter.cancel()
        setter.join()
