"""Resize to the policy: the server names the resolution each camera is read at; the robot
shrinks its frames to it before encoding, and the policy's chunk does not move beyond what JPEG
noise moves it anyway.

The tolerance is measured, not guessed: the codec-free reference is a raw frame the server
resizes itself; "JPEG noise" is how far a q90 JPEG of the full frame (the server resizes after
decoding, as it does for a robot that does not resize) moves the chunk from that reference.
Resizing on the robot must stay within twice that (measured: 0.7-1.3x on these frames), and a
different picture moves the chunk far more than the tolerance, so the check can fail.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np
import pytest

from benchmarks.frames import camera_frame
from policylink import wire
from policylink.client import ClientConfig, RemoteEngine, RobotLayout
from policylink.client.jpeg_quality import QualityBounds
from policylink.client.uplink import Uplink
from policylink.policy.request_step import RequestStep, SessionProcessor, StepRequest
from policylink.policy.transformer import TransformerConfig, TransformerPolicy
from policylink.server.app import ServerApp
from policylink.server.validation import check_observation
from policylink.wire.codec import decode_observation
from policylink.wire.limits import DecodeLimits
from tests.support.servers import in_process_servers
from tests.support.waiting import wait_for

STATE_DIM = 6
CAMERA = {"name": "front", "height": 480, "width": 640, "input_height": 224, "input_width": 224}
PARAMS = {"state_dim": STATE_DIM, "chunk_size": 20, "cameras": [CAMERA]}
NOISE_FACTOR = 2.0
MIN_BYTE_RATIO = 4.0


class Policy:
    """The built-in transformer behind the server's own per-observation path (check, step)."""

    def __init__(self) -> None:
        self.model = TransformerPolicy(TransformerConfig.from_params("tiny", PARAMS), seed=0)
        spec = self.model.spec
        self.caps = wire.Capabilities(
            "m", "r", "t", list(spec.action_names), spec.chunk_size, spec.state_dim,
            cameras=list(spec.cameras),
        )  # fmt: skip
        self.limits = DecodeLimits.for_policy(
            spec.cameras, spec.state_dim, spec.action_dim, spec.chunk_size
        )
        self.step = RequestStep(self.model)

    def sent(
        self, obs: wire.Observation, quality: int, resize: bool
    ) -> tuple[wire.Observation, int]:
        """What the server decodes from a robot at `quality` (0: raw) that resizes or not."""
        fixed = max(quality, 1)
        uplink = Uplink(QualityBounds(fixed, fixed), resize_to_policy=resize, raw=quality == 0)
        uplink.adopt(self.caps.cameras)
        body = uplink.encode(wire.Header(1, wire.MsgType.OBSERVATION), obs)
        return decode_observation(body, self.limits), len(body)

    def chunk(self, obs: wire.Observation) -> np.ndarray:
        obs = dataclasses.replace(obs, images=dict(obs.images))
        check_observation(obs, self.caps)
        request = StepRequest(obs, SessionProcessor(self.model.make_processor()), 0, rtc=False)
        (reply,) = self.step.run([request])
        assert isinstance(reply, wire.ActionChunk)
        return reply.chunk_robot


@pytest.fixture(scope="module")
def policy() -> Policy:
    return Policy()


def observation(seed: int) -> wire.Observation:
    state = np.random.default_rng(seed).standard_normal(STATE_DIM).astype(np.float32)
    return wire.Observation(state=state, images={"front": camera_frame(seed, 480, 640)})


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_resizing_on_the_robot_changes_the_chunk_no_more_than_jpeg_noise(
    policy: Policy, seed: int
) -> None:
    obs = observation(seed)
    reference = policy.chunk(policy.sent(obs, 0, resize=False)[0])
    on_server = policy.chunk(policy.sent(obs, 90, resize=False)[0])
    on_robot = policy.chunk(policy.sent(obs, 90, resize=True)[0])
    jpeg_noise = np.abs(on_server - reference).max()
    moved = np.abs(on_robot - on_server).max()
    assert moved <= NOISE_FACTOR * jpeg_noise, (
        f"resizing on the robot moved the chunk by {moved:.2e}; JPEG noise alone moves it "
        f"{jpeg_noise:.2e}"
    )
    other = policy.chunk(policy.sent(observation(seed + 100), 0, resize=False)[0])
    assert np.abs(other - reference).max() > 5 * NOISE_FACTOR * jpeg_noise


def test_a_480x640_camera_feeding_a_224x224_policy_sends_4x_fewer_bytes(policy: Policy) -> None:
    obs = observation(0)
    decoded, small = policy.sent(obs, 90, resize=True)
    _, full = policy.sent(obs, 90, resize=False)
    assert decoded.images["front"].shape == (224, 224, 3)
    assert full / small >= MIN_BYTE_RATIO, f"{full} B full frame, {small} B resized"


def test_cameras_without_an_input_resolution_encode_as_before() -> None:
    """Peers that predate the field exchange the same bytes: its keys appear only when set."""
    plain = wire.Capabilities("m", "r", "t", ["a"], 1, 1, cameras=[wire.CameraSpec("c", 4, 4)])
    assert b"input_height" not in wire.encode_message(wire.Status(plain))
    sized = dataclasses.replace(plain, cameras=[wire.CameraSpec("c", 480, 640, 224, 224)])
    decoded = wire.decode_message(wire.MsgType.STATUS, wire.encode_message(wire.Status(sized)))
    assert isinstance(decoded, wire.Status)
    assert decoded.capabilities.cameras == sized.cameras


@pytest.fixture
def server() -> Iterator[ServerApp]:
    with in_process_servers() as start:
        yield start(
            {
                "policy": {"kind": "transformer", "preset": "tiny", "params": PARAMS},
                "max_sessions": 2,
                "torch_threads": 1,
            }
        )


def stream(app: ServerApp, resize: bool, requests: int) -> float:
    """Streams one robot's 480x640 frames until `requests` chunks came back; the bytes per
    request its engine counted."""
    names = tuple(f"joint_{i}" for i in range(STATE_DIM))
    layout = RobotLayout(names, names, (wire.CameraSpec("front", 480, 640),))
    config = ClientConfig(
        endpoint=app.manifest.zenoh.listen[0],
        client_id=f"robot-{'resizing' if resize else 'full'}",
        resize_to_policy=resize,
        jpeg_quality_min=90,
        buffer_time_s=0.2,
    )
    obs = observation(0)
    with RemoteEngine(config, layout) as engine:

        def served() -> bool:
            engine.notify_observation(obs)
            engine.get_action()
            return engine.stats.chunks_merged >= requests

        wait_for(served, timeout_s=60, what=f"{requests} chunks")
        return engine.stats.bytes_per_request


def request_bytes(app: ServerApp) -> tuple[float, float]:
    """The server's `policylink_request_bytes` histogram: (sum, count)."""
    (metric,) = app.core.metrics.request_bytes.collect()
    values = {sample.name: sample.value for sample in metric.samples}
    return values["policylink_request_bytes_sum"], values["policylink_request_bytes_count"]


def test_engine_and_server_metrics_report_the_bytes_resizing_saves(server: ServerApp) -> None:
    full_engine = stream(server, resize=False, requests=10)
    full_sum, full_count = request_bytes(server)
    small_engine = stream(server, resize=True, requests=10)
    all_sum, all_count = request_bytes(server)
    full_server = full_sum / full_count
    small_server = (all_sum - full_sum) / (all_count - full_count)
    assert full_engine / small_engine >= MIN_BYTE_RATIO, (full_engine, small_engine)
    assert full_server / small_server >= MIN_BYTE_RATIO, (full_server, small_server)
    assert abs(small_server - small_engine) / small_engine < 0.05, (small_server, small_engine)
