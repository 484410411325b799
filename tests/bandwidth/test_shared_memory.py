"""Same-host fast path: observations through Zenoh's shared memory when robot and server share
a machine and both turn it on, over the link as before when either does not.

The server is a process of its own (shared memory between two sessions of one process would
prove nothing); what it received in shared memory is its `policylink_shm_observations_total`
counter, which counts payloads whose `ZBytes.as_shm()` is a shared-memory buffer.
"""

from __future__ import annotations

import threading
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import zenoh
from prometheus_client.parser import text_string_to_metric_families

from policylink.client import ClientConfig, RemoteEngine, RobotLayout
from policylink.client.links.zenoh import ZenohLink
from policylink.net.ports import free_port
from policylink.net.zenoh_session import ShmSender, open_zenoh_session
from policylink.net.zenoh_settings import ZenohSettings
from policylink.wire import CameraSpec, Observation
from tests.support.server_process import ServerProcess
from tests.support.servers import echo_policy, process_servers
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow

STATE_DIM = 6
CAMERAS = tuple(CameraSpec(f"cam{i}", 480, 640) for i in range(3))
CHUNKS = 10
StartServer = Callable[[bool], ServerProcess]


def echo_manifest(shared_memory: bool) -> dict:
    params = {
        "state_dim": STATE_DIM,
        "chunk_size": 8,
        "cameras": [{"name": c.name, "height": c.height, "width": c.width} for c in CAMERAS],
    }
    return {
        "policy": echo_policy(**params),
        "serving_mode": "exclusive",
        "max_sessions": 1,
        "health_port": free_port(),
        "zenoh": {"shared_memory": shared_memory},
    }


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[StartServer]:
    with process_servers(tmp_path) as start:
        yield lambda shared_memory: start(echo_manifest(shared_memory))


def shm_observations(server: ServerProcess) -> float:
    url = f"http://127.0.0.1:{server.manifest['health_port']}/metrics"
    with urllib.request.urlopen(url, timeout=10) as answer:
        text = answer.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "policylink_shm_observations_total":
                return sample.value
    raise AssertionError("the server exports no policylink_shm_observations_total")


def stream_raw_frames(server: ServerProcess) -> ZenohLink:
    """A robot with shared memory on streams three raw 480x640 cameras for `CHUNKS` chunks."""
    names = tuple(f"joint_{i}" for i in range(STATE_DIM))
    config = ClientConfig(
        endpoint=server.endpoint, shared_memory=True, jpeg_quality=0, buffer_time_s=0.0
    )
    link = ZenohLink.from_config(config)
    rng = np.random.default_rng(0)
    obs = Observation(
        state=np.zeros(STATE_DIM, np.float32),
        images={c.name: rng.integers(0, 256, (480, 640, 3), dtype=np.uint8) for c in CAMERAS},
    )
    with RemoteEngine(config, RobotLayout(names, names, CAMERAS), link=link) as engine:

        def served() -> bool:
            engine.notify_observation(obs)
            engine.get_action()
            return engine.stats.chunks_merged >= CHUNKS

        wait_for(served, timeout_s=60, what=f"{CHUNKS} chunks")
    return link


def test_same_host_observations_arrive_in_shared_memory(start_server: StartServer) -> None:
    server = start_server(True)
    link = stream_raw_frames(server)
    assert link.shm is not None and link.shm.shm_puts >= CHUNKS
    assert shm_observations(server) >= CHUNKS


def test_a_server_without_shared_memory_still_serves_a_robot_that_has_it(
    start_server: StartServer,
) -> None:
    server = start_server(False)
    link = stream_raw_frames(server)
    assert link.shm is not None and link.shm.shm_puts >= CHUNKS
    assert shm_observations(server) == 0


def test_a_body_too_large_for_the_pool_goes_as_plain_bytes() -> None:
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    receiver = open_zenoh_session(ZenohSettings(listen=[endpoint], shared_memory=True))
    sender_session = open_zenoh_session(
        ZenohSettings(mode="client", connect=[endpoint], shared_memory=True)
    )
    received: list[tuple[bytes, bool]] = []
    arrived = threading.Semaphore(0)

    def on_sample(sample: zenoh.Sample) -> None:
        received.append((sample.payload.to_bytes(), sample.payload.as_shm() is not None))
        arrived.release()

    try:
        subscriber = receiver.declare_subscriber("shm/test", on_sample)
        publisher = sender_session.declare_publisher("shm/test")
        wait_for(lambda: publisher.matching_status.matching, what="the subscriber to match")
        sender = ShmSender()
        small, large = b"s" * 100_000, b"L" * (8 * ShmSender.MIN_POOL_BYTES)
        sender.put(publisher, small, b"")
        sender.put(publisher, large, b"")
        assert arrived.acquire(timeout=10) and arrived.acquire(timeout=10)
        assert (sender.shm_puts, sender.plain_puts) == (1, 1)
        assert received == [(small, True), (large, False)]
        subscriber.undeclare()
    finally:
        sender_session.close()
        receiver.close()
