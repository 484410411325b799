"""An engine's worker shortens the interpreter's switch interval while it runs, then restores it."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from policylink.client import ClientConfig, LocalEngine, RobotLayout
from policylink.client.switch_interval import lower_switch_interval
from tests.client.policies import TracePolicy
from tests.client.robots import ScriptedRobot

LAYOUT = RobotLayout.of(ScriptedRobot())


def approx(seconds: float) -> object:
    """The interpreter keeps whole microseconds, rounding some values down by one."""
    return pytest.approx(seconds, abs=2e-6)


@pytest.fixture(autouse=True)
def default_interval() -> Iterator[float]:
    found = sys.getswitchinterval()
    sys.setswitchinterval(0.005)
    try:
        yield 0.005
    finally:
        sys.setswitchinterval(found)


def test_a_running_engine_shortens_the_interval_and_stopping_restores_it() -> None:
    engine = LocalEngine(TracePolicy(), ClientConfig(switch_interval_s=0.0005), LAYOUT)
    with engine:
        assert sys.getswitchinterval() == approx(0.0005)
    assert sys.getswitchinterval() == approx(0.005)


def test_zero_leaves_the_interpreter_alone() -> None:
    with LocalEngine(TracePolicy(), ClientConfig(switch_interval_s=0.0), LAYOUT):
        assert sys.getswitchinterval() == approx(0.005)


def test_the_interval_is_restored_only_when_the_last_engine_stops() -> None:
    first = lower_switch_interval(0.001)
    second = lower_switch_interval(0.0005)
    assert sys.getswitchinterval() == approx(0.0005)
    second()
    assert sys.getswitchinterval() == approx(0.001)
    first()
    first()
    assert sys.getswitchinterval() == approx(0.005)


def test_a_shorter_interval_set_by_the_application_is_never_raised() -> None:
    sys.setswitchinterval(0.0001)
    release = lower_switch_interval(0.0005)
    assert sys.getswitchinterval() == approx(0.0001)
    release()
    assert sys.getswitchinterval() == approx(0.0001)
