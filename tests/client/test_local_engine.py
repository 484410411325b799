"""LocalEngine: the shared queue, identity, staleness and fallback logic, with no network."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

from policylink.client import ClientConfig, EngineState, LocalEngine, RobotLayout
from policylink.wire import CameraSpec, Observation
from policylink.wire.image import resize_image
from tests.client.policies import RAISE_MARKER, TracePolicy
from tests.client.robots import ScriptedRobot
from tests.client.waiting import offer_until
from tests.support.waiting import wait_for

LAYOUT = RobotLayout.of(ScriptedRobot())


def obs(value: float) -> Observation:
    return Observation(state=np.full(3, value, np.float32))


@pytest.fixture
def engines() -> Iterator[list[LocalEngine]]:
    started: list[LocalEngine] = []
    yield started
    for engine in started:
        engine.stop()


def start(engines: list[LocalEngine], policy: TracePolicy, **config: object) -> LocalEngine:
    config.setdefault("fps", 100.0)
    config.setdefault("buffer_time_s", 0.0)
    engine = LocalEngine(policy, ClientConfig(**config), LAYOUT)
    engines.append(engine)
    engine.start()
    return engine


def test_get_action_holds_before_any_chunk(engines: list[LocalEngine]) -> None:
    engine = start(engines, TracePolicy())
    assert engine.get_action() is None
    assert engine.stats.fallback_ticks == 1


def test_a_chunk_plays_back_in_order_then_the_robot_holds(engines: list[LocalEngine]) -> None:
    engine = start(engines, TracePolicy(chunk_size=4))
    engine.notify_observation(obs(5.0))
    wait_for(lambda: engine.stats.chunks_merged == 1, what="first chunk")
    played = [engine.get_action() for _ in range(5)]
    assert [a[0] for a in played[:4]] == [5.0, 6.0, 7.0, 8.0]
    assert played[4] is None


def test_the_control_thread_never_waits_for_a_lock_the_worker_holds(
    engines: list[LocalEngine],
) -> None:
    engine = start(engines, TracePolicy(chunk_size=2))
    engine.notify_observation(obs(5.0))
    wait_for(lambda: engine.stats.chunks_merged == 1, what="first chunk")
    played: list[float | None] = []

    def tick() -> None:
        for _ in range(3):
            if engine.failed or engine.state is not EngineState.STREAMING:
                return
            engine.notify_observation(obs(6.0))
            action = engine.get_action()
            played.append(None if action is None else float(action[0]))

    control = threading.Thread(target=tick, name="test-control-loop")
    # A worker caught mid-merge and mid-transition holds every lock an engine has; the control
    # loop (run_loop checks `failed` every tick) must play on regardless.
    with engine._ledger._lock, engine._ladder._lock, engine._face.queue._write_lock:
        control.start()
        control.join(timeout=10)
        finished = not control.is_alive()
    control.join()
    assert finished
    assert played == [5.0, 6.0, None]


def test_zero_fallback_commands_zeros(engines: list[LocalEngine]) -> None:
    engine = start(engines, TracePolicy(), fallback="zero")
    action = engine.get_action()
    assert action is not None
    assert action.tolist() == [0.0, 0.0, 0.0]


def test_repeat_last_fallback_repeats_the_last_action_of_the_episode(
    engines: list[LocalEngine],
) -> None:
    engine = start(engines, TracePolicy(chunk_size=2), fallback="repeat_last")
    assert engine.get_action() is None
    engine.notify_observation(obs(3.0))
    wait_for(lambda: engine.stats.chunks_merged == 1, what="first chunk")
    assert [engine.get_action()[0] for _ in range(4)] == [3.0, 4.0, 4.0, 4.0]
    engine.reset()
    assert engine.get_action() is None


def test_reset_racing_an_inflight_request_drops_its_chunk(engines: list[LocalEngine]) -> None:
    policy = TracePolicy(gated=True)
    engine = start(engines, policy)
    engine.notify_observation(obs(1.0))
    assert policy.started.wait(10)
    engine.reset()
    policy.gate.set()
    wait_for(lambda: engine.stats.chunks_dropped_stale == 1, what="stale chunk dropped")
    assert engine.stats.chunks_merged == 0
    assert engine.get_action() is None
    engine.notify_observation(obs(50.0))
    wait_for(lambda: engine.stats.chunks_merged == 1, what="new-episode chunk")
    assert engine.get_action()[0] == 50.0
    assert policy.batches[-1].samples[0]["state"][0] == 50.0


def test_an_observation_from_before_a_reset_is_never_sent(engines: list[LocalEngine]) -> None:
    policy = TracePolicy(gated=True)
    engine = start(engines, policy)
    engine.notify_observation(obs(1.0))
    assert policy.started.wait(10)
    engine.notify_observation(obs(2.0))
    engine.reset()
    policy.gate.set()
    wait_for(lambda: engine.stats.chunks_dropped_stale == 1, what="stale chunk dropped")
    time.sleep(0.05)
    assert [b.samples[0]["state"][0] for b in policy.batches] == [1.0]


def test_the_first_request_of_an_episode_resets_per_episode_processor_state(
    engines: list[LocalEngine],
) -> None:
    policy = TracePolicy(chunk_size=2)
    engine = start(engines, policy)
    engine.notify_observation(obs(1.0))
    wait_for(lambda: engine.stats.chunks_merged == 1, what="first chunk")
    resets_before = policy.processors[0].resets
    engine.reset()
    engine.notify_observation(obs(2.0))
    wait_for(lambda: engine.stats.chunks_merged == 2, what="second chunk")
    assert policy.processors[0].resets == resets_before + 1


def test_actions_older_than_max_action_age_are_never_returned(
    engines: list[LocalEngine],
) -> None:
    max_age_s = 0.15
    engine = start(engines, TracePolicy(chunk_size=40, step=0.0), max_action_age_s=max_age_s)
    origin = time.monotonic()
    deadline = origin + 1.5
    returned = 0
    while time.monotonic() < deadline:
        engine.notify_observation(obs((time.monotonic() - origin) * 1e3))
        action = engine.get_action()
        if action is not None:
            returned += 1
            age_ms = (time.monotonic() - origin) * 1e3 - float(action[0])
            assert age_ms <= max_age_s * 1e3 + 5.0
        time.sleep(0.01)
    assert returned > 0
    assert engine.stats.actions_expired > 0


def test_a_failing_policy_fails_one_request_not_the_engine(engines: list[LocalEngine]) -> None:
    engine = start(engines, TracePolicy(chunk_size=2))
    engine.notify_observation(obs(RAISE_MARKER))
    wait_for(lambda: engine.stats.error_replies == 1, what="error reply")
    engine.notify_observation(obs(9.0))
    wait_for(lambda: engine.stats.chunks_merged == 1, what="next chunk")
    assert engine.get_action()[0] == 9.0
    assert not engine.failed


def test_a_camera_read_at_a_lower_resolution_is_shrunk_before_the_forward(
    engines: list[LocalEngine],
) -> None:
    """As the robot's uplink does for the server; a frame it cannot shrink fails its request
    with the server's answer (`bad_image`), and the next one goes through."""
    front = CameraSpec("front", 24, 32, input_height=12, input_width=16)
    policy = TracePolicy(chunk_size=2, cameras=(front,))
    layout = RobotLayout(LAYOUT.action_names, LAYOUT.state_names, (CameraSpec("front", 24, 32),))
    engine = LocalEngine(policy, ClientConfig(fps=100.0, buffer_time_s=0.0), layout)
    engines.append(engine)
    engine.start()
    frame = np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    floats = frame.astype(np.float32)
    engine.notify_observation(Observation(state=np.zeros(3, np.float32), images={"front": floats}))
    wait_for(lambda: engine.stats.error_replies == 1, what="bad_image reply")
    engine.notify_observation(Observation(state=np.zeros(3, np.float32), images={"front": frame}))
    wait_for(lambda: engine.stats.chunks_merged == 1, what="a chunk")
    [sample] = policy.batches[-1].samples
    np.testing.assert_array_equal(sample["images"]["front"], resize_image(frame, 12, 16))
    assert not engine.failed


def test_wanting_chunks_past_max_offline_kills_the_engine_and_calls_shutdown(
    engines: list[LocalEngine],
) -> None:
    reasons: list[str] = []
    engine = LocalEngine(
        TracePolicy(always_raise=True),
        ClientConfig(fps=100.0, buffer_time_s=0.0, max_offline_s=0.3),
        LAYOUT,
        on_shutdown=reasons.append,
    )
    engines.append(engine)
    engine.start()
    offer_until(engine, obs(1.0), lambda: engine.failed, what="engine death")
    assert engine.state is EngineState.DEAD
    assert len(reasons) == 1
    assert "max_offline_s=0.3" in reasons[0]
    assert engine.get_action() is None


def test_pause_stops_requests_and_freezes_the_offline_budget(engines: list[LocalEngine]) -> None:
    policy = TracePolicy(chunk_size=2)
    engine = start(engines, policy, max_offline_s=0.2)
    engine.pause()
    paused_until = time.monotonic() + 0.5
    while time.monotonic() < paused_until:
        engine.notify_observation(obs(4.0))
        time.sleep(0.01)
    assert policy.batches == []
    assert not engine.failed
    engine.resume()
    wait_for(lambda: engine.stats.chunks_merged >= 1, what="chunk after resume")


def test_a_policy_for_other_motors_is_refused_before_start() -> None:
    robot_layout = RobotLayout(("wrist.pos", "shoulder.pos", "elbow.pos"), LAYOUT.state_names)
    with pytest.raises(ValueError, match="chunk columns would reach the wrong motors"):
        LocalEngine(TracePolicy(), ClientConfig(), robot_layout)
