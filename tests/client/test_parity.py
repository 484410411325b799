"""Golden parity: the remote path leaves the same queue, byte for byte, as the local engine.

Same policy (the built-in transformer, same seed, RTC on), same scripted observations, same
playback: actions are played while each request is in flight, so the trim, the RTC prefix and
the inference delay are all exercised. The remote path adds encode → Zenoh → server (decode,
checks, processor, forward) → Zenoh → decode; none of it may change a bit. A policy that reads
its camera at a lower resolution gets the same pixels either way: the robot shrinks the frame
before sending it, the local engine before the forward.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from policylink.client import ClientConfig, LocalEngine, RemoteEngine, RobotLayout
from policylink.policy.registry import PolicyConfig
from policylink.wire import CameraSpec, Observation
from tests.client.conftest import endpoint_of, python_policy
from tests.client.policies import build_slow_transformer
from tests.client.robots import MOTORS
from tests.support.waiting import wait_for

if TYPE_CHECKING:
    from policylink.server.app import ServerApp

SLOW = "tests.client.policies:build_slow_transformer"
FRONT = {"name": "front", "height": 24, "width": 32}
PARAMS: dict[str, Any] = {
    "state_dim": 3,
    "action_names": list(MOTORS),
    "chunk_size": 12,
    "cameras": [FRONT],
    "delay_s": 0.3,
}
LAYOUT = RobotLayout(MOTORS, ("s0", "s1", "s2"), (CameraSpec("front", 24, 32),))
# One tick per second keeps `ceil(latency / dt)` at 1 on both paths however busy the machine
# is, so the delay each request announces is the same locally and remotely.
CONFIG: dict[str, Any] = {"fps": 1.0, "buffer_time_s": 1000.0, "rtc_horizon": 5, "jpeg_quality": 0}
PLAYED_IN_FLIGHT = (0, 3, 2, 4, 1)


def scripted_observation(step: int) -> Observation:
    rng = np.random.default_rng(step)
    return Observation(
        state=rng.standard_normal(3).astype(np.float32),
        images={"front": rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)},
    )


def drive(engine: LocalEngine | RemoteEngine) -> tuple[list[np.ndarray], tuple[np.ndarray, ...]]:
    """Send each observation, play some actions while it is in flight, wait for its chunk."""
    played = []
    for step, count in enumerate(PLAYED_IN_FLIGHT):
        engine.notify_observation(scripted_observation(step))
        wait_for(lambda s=step: engine.stats.requests == s + 1, what=f"request {step} sent")
        played += [engine.get_action() for _ in range(count)]
        wait_for(lambda s=step: engine.stats.chunks_merged == s + 1, what=f"chunk {step} merged")
    return played, engine.queue_contents()


@pytest.mark.parametrize(
    "camera",
    [FRONT, {**FRONT, "input_height": 12, "input_width": 16}],
    ids=["full resolution", "policy reads 12x16"],
)
def test_remote_and_local_engines_leave_byte_identical_queues(
    start_server: Callable[..., ServerApp],
    start_engine: Callable[..., RemoteEngine],
    camera: dict[str, Any],
) -> None:
    pytest.importorskip("torch", reason="the LocalEngine half runs the torch transformer here")
    params = {**PARAMS, "cameras": [camera]}
    app = start_server(policy=python_policy(SLOW, **params), rtc={"execution_horizon": 5})
    remote = start_engine(endpoint_of(app), LAYOUT, **CONFIG)
    policy = build_slow_transformer(PolicyConfig(params=params), "cpu", "float32")
    local = LocalEngine(policy, ClientConfig(**CONFIG), LAYOUT)
    local.start()
    try:
        local_played, (local_model, local_robot, _) = drive(local)
    finally:
        local.stop()
    remote_played, (remote_model, remote_robot, _) = drive(remote)

    assert len(remote_model) > 0
    assert remote_model.tobytes() == local_model.tobytes()
    assert remote_robot.tobytes() == local_robot.tobytes()
    assert [a.tobytes() for a in remote_played] == [a.tobytes() for a in local_played]
    assert local.stats.delay_steps == remote.stats.delay_steps == 1
