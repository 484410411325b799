"""SafetyLadder: the state follows what is left to play, and DEAD is reached once, for good."""

from __future__ import annotations

import threading
import time

from policylink.client import EngineState
from policylink.client.latency import NS_PER_S
from tests.client.parts import build, chunk

MAX_OFFLINE_S = 0.5


def later(seconds: float) -> int:
    return time.monotonic_ns() + round(seconds * NS_PER_S)


def test_wanting_chunks_past_max_offline_goes_dead_and_calls_shutdown_once() -> None:
    reasons: list[str] = []
    parts = build(on_shutdown=reasons.append, max_offline_s=MAX_OFFLINE_S)
    parts.ladder.set_state(EngineState.STREAMING, "test")
    parts.request(1.0)
    assert not parts.ladder.die_if_offline(later(MAX_OFFLINE_S / 2))
    assert parts.ladder.die_if_offline(later(MAX_OFFLINE_S * 2))
    parts.ladder.die_if_offline(later(MAX_OFFLINE_S * 3))
    parts.ladder.die("a second cause")
    assert parts.ladder.failed
    assert len(reasons) == 1
    assert f"max_offline_s={MAX_OFFLINE_S:g}" in reasons[0]
    assert parts.ledger.pending is None


def test_dead_is_final() -> None:
    parts = build()
    parts.ladder.die("contract violation")
    assert not parts.ladder.set_state(EngineState.STREAMING, "session reopened")
    assert parts.ladder.state is EngineState.DEAD


def test_the_offline_budget_stands_still_while_paused() -> None:
    parts = build(max_offline_s=MAX_OFFLINE_S)
    parts.ladder.set_state(EngineState.STREAMING, "test")
    parts.request(1.0)
    parts.ladder.pause()
    assert not parts.ladder.requesting
    assert not parts.ladder.die_if_offline(later(MAX_OFFLINE_S * 10))


def test_a_robot_that_wants_nothing_is_never_offline() -> None:
    parts = build(max_offline_s=MAX_OFFLINE_S)
    parts.ladder.set_state(EngineState.STREAMING, "test")
    assert not parts.ladder.die_if_offline(later(MAX_OFFLINE_S * 10))


def test_trouble_degrades_while_fresh_actions_play_and_stalls_when_they_run_out() -> None:
    parts = build()
    parts.ladder.reply_taken(
        parts.answer(parts.request(1.0), chunk(1.0, rows=2)), time.monotonic_ns()
    )
    assert parts.ladder.playback_state(time.monotonic_ns())[0] is EngineState.STREAMING
    parts.ladder.note_trouble("server presence lost")
    state, reason = parts.ladder.playback_state(time.monotonic_ns())
    assert (state, reason) == (
        EngineState.DEGRADED,
        "server presence lost; playing buffered actions",
    )
    parts.face.get_action()
    parts.face.get_action()
    assert parts.ladder.playback_state(time.monotonic_ns())[0] is EngineState.STALLED


def test_a_merged_chunk_clears_the_trouble() -> None:
    parts = build()
    request = parts.request(1.0)
    parts.ladder.note_trouble("request 1 timed out")
    parts.ladder.reply_taken(parts.answer(request, chunk(1.0)), time.monotonic_ns())
    assert parts.ladder.playback_state(time.monotonic_ns())[0] is EngineState.STREAMING


def test_failed_and_state_are_read_without_the_lock_a_worker_holds() -> None:
    parts = build()
    seen: list[object] = []

    def control_tick() -> None:
        seen.extend((parts.ladder.failed, parts.ladder.state, parts.ladder.requesting))

    control = threading.Thread(target=control_tick, name="test-control-loop")
    with parts.ladder._lock:
        control.start()
        control.join(timeout=10)
        finished = not control.is_alive()
    control.join()
    assert finished
    assert seen == [False, EngineState.IDLE, False]
