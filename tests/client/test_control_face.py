"""ControlFace: the control thread's two calls, and the wake-ups they owe a waiting worker."""

from __future__ import annotations

import time

from tests.client.parts import build, chunk, observation


def test_notify_observation_wakes_a_worker_that_found_none() -> None:
    parts = build()
    assert parts.ledger.take_request(time.monotonic_ns()) is None
    assert not parts.face.wakeup.wait(0)
    parts.face.notify_observation(observation(1.0))
    assert parts.face.wakeup.wait(0)


def test_get_action_wakes_a_worker_once_the_buffer_runs_low() -> None:
    parts = build(buffer_time_s=0.05)
    parts.answer(parts.request(1.0), chunk(1.0, rows=10))
    parts.face.notify_observation(observation(2.0))
    assert parts.ledger.take_request(time.monotonic_ns()) is None
    woken_after = []
    for played in range(1, 11):
        parts.face.get_action()
        if parts.face.wakeup.wait(0):
            woken_after.append(played)
    # 0.05 s at 100 Hz is 5 ticks: the wake-up comes when fewer than 5 rows are left.
    assert woken_after == [6]


def test_an_action_older_than_max_action_age_is_never_returned() -> None:
    parts = build(max_action_age_s=0.05)
    request = parts.request(1.0)
    time.sleep(0.06)
    parts.answer(request, chunk(1.0))
    assert parts.face.get_action() is None
    assert parts.face.actions_expired == 4
    assert parts.face.fallback_ticks == 1


def test_reset_forgets_the_action_repeat_last_would_replay() -> None:
    parts = build(fallback="repeat_last")
    parts.answer(parts.request(3.0), chunk(3.0, rows=1))
    assert parts.face.get_action()[0] == 3.0
    assert parts.face.get_action()[0] == 3.0
    parts.face.forget_last_action()
    assert parts.face.get_action() is None
