"""The server dies mid-episode (SIGKILL of a real process): the control loop never notices a
delay, the engine walks the fail-safe ladder, and comes back, or dies on a contract change."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from policylink.client import ClientConfig, EngineState, RemoteEngine, RobotLayout
from policylink.net.ports import free_port
from policylink.wire import Observation
from tests.client.conftest import ECHO, python_policy
from tests.client.server_process import ServerProcess

pytestmark = pytest.mark.slow

JOINTS = ("joint_0", "joint_1", "joint_2")
LAYOUT = RobotLayout(JOINTS, ("a", "b", "c"))
TICK_S = 0.02
# Generous network waits: a get_action that blocked on any of them would take seconds.
ENGINE: dict[str, Any] = {
    "fps": 1 / TICK_S,
    "buffer_time_s": 0.2,
    "fallback": "zero",
    "request_timeout_s": 3.0,
    "handshake_timeout_s": 3.0,
    "reconnect_initial_backoff_s": 0.1,
    "reconnect_max_backoff_s": 0.5,
}


def manifest(endpoint: str, state_dim: int = 3) -> dict[str, Any]:
    return {
        "policy": python_policy(ECHO, state_dim=state_dim, chunk_size=20),
        "serving_mode": "exclusive",
        "max_sessions": 1,
        "warmup_inferences": 0,
        "zenoh": {"listen": [endpoint]},
    }


def config_for(endpoint: str) -> ClientConfig:
    return ClientConfig(endpoint=endpoint, client_id="arm", **ENGINE)


@pytest.fixture
def endpoint() -> str:
    return f"tcp/127.0.0.1:{free_port()}"


@pytest.fixture
def server_process(endpoint: str, tmp_path: Path) -> Iterator[ServerProcess]:
    server = ServerProcess(manifest(endpoint), tmp_path)
    try:
        server.wait_serving()
        yield server
    finally:
        server.kill()


class ControlLoop:
    """What a robot does every tick, with every get_action timed and every state seen."""

    def __init__(self, engine: RemoteEngine) -> None:
        self.engine = engine
        self.durations_s: list[float] = []
        self.zero_actions = 0

    def run_until(self, condition: Callable[[], bool], timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            assert time.monotonic() < deadline, f"still {self.engine.state.value} at timeout"
            self.engine.notify_observation(Observation(state=np.ones(3, np.float32)))
            began = time.perf_counter()
            action = self.engine.get_action()
            self.durations_s.append(time.perf_counter() - began)
            if action is not None and not action.any():
                self.zero_actions += 1
            time.sleep(TICK_S)


def states_after(engine: RemoteEngine, since: float) -> list[EngineState]:
    return [t.state for t in engine.transitions() if t.at_s >= since]


def test_a_killed_server_is_ridden_out_and_rejoined_when_it_returns(
    server_process: ServerProcess, endpoint: str, tmp_path: Path
) -> None:
    engine = RemoteEngine(config_for(endpoint), LAYOUT)
    engine.start()
    replacement: ServerProcess | None = None
    try:
        loop = ControlLoop(engine)
        loop.run_until(lambda: engine.stats.chunks_merged >= 5)
        killed_at = time.monotonic()
        server_process.kill()
        loop.run_until(lambda: engine.state is EngineState.RECONNECTING)
        loop.run_until(lambda: loop.zero_actions >= 10)
        replacement = ServerProcess(manifest(endpoint), tmp_path, "replacement").wait_serving()
        merged = engine.stats.chunks_merged
        loop.run_until(lambda: engine.stats.chunks_merged > merged)
    finally:
        engine.stop()
        if replacement is not None:
            replacement.kill()
    walk = states_after(engine, killed_at)
    # The server's presence went with it: the robot re-places at once (another replica would
    # take it; here the one server comes back), playing its buffer, then the fallback.
    assert walk[:2] == [EngineState.RECONNECTING, EngineState.STREAMING]
    assert engine.stats.reconnects == 1
    assert not engine.failed
    # Far below the 3 s network waits it would show if it ever blocked on one.
    assert max(loop.durations_s) < 0.25


def test_a_server_back_with_another_action_layout_kills_the_engine(
    server_process: ServerProcess, endpoint: str, tmp_path: Path
) -> None:
    reasons: list[str] = []
    engine = RemoteEngine(config_for(endpoint), LAYOUT, on_shutdown=reasons.append)
    engine.start()
    replacement: ServerProcess | None = None
    try:
        loop = ControlLoop(engine)
        loop.run_until(lambda: engine.stats.chunks_merged >= 2)
        server_process.kill()
        loop.run_until(lambda: engine.state is EngineState.RECONNECTING)
        replacement = ServerProcess(manifest(endpoint, state_dim=4), tmp_path, "replacement")
        replacement.wait_serving()
        loop.run_until(lambda: engine.failed)
    finally:
        engine.stop()
        if replacement is not None:
            replacement.kill()
    assert engine.state is EngineState.DEAD
    assert len(reasons) == 1
    assert "contract violation" in reasons[0]
    assert "action_mismatch" in reasons[0]
    assert engine.get_action().tolist() == [0.0, 0.0, 0.0]
