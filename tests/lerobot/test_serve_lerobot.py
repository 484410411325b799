"""LeRobot checkpoints served by `policylink serve` and driven by real clients over Zenoh."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from policylink.client import HandshakeError
from policylink.wire.errors import ErrorCode
from tests.lerobot import checkpoints
from tests.lerobot.reference import lerobot_rollout, observation
from tests.lerobot.serving import (
    DIFFUSION_SEED,
    ServerProcess,
    fetch_chunk,
    lerobot_manifest,
    sync_client,
)

pytest.importorskip("lerobot", reason="LeRobot lives in its own environment: make test-lerobot")


def test_served_act_chunk_equals_lerobot_in_process(act_server, act_path):
    obs = observation(1)
    expected = lerobot_rollout(act_path, obs, steps=10)
    with sync_client(act_server.endpoint, "arm-1") as client:
        np.testing.assert_allclose(fetch_chunk(client, obs), expected, rtol=1e-5, atol=1e-4)


def test_two_act_sessions_with_different_states_never_mix(act_server, act_path):
    observations = {"arm-a": observation(21), "arm-b": observation(22)}
    expected = {
        name: lerobot_rollout(act_path, obs, steps=10) for name, obs in observations.items()
    }
    assert not np.allclose(expected["arm-a"], expected["arm-b"], atol=1e-3)
    received: dict[str, list[np.ndarray]] = {name: [] for name in observations}

    def drive(name: str) -> None:
        with sync_client(act_server.endpoint, name) as client:
            for _ in range(4):
                received[name].append(fetch_chunk(client, observations[name]))

    threads = [threading.Thread(target=drive, args=(name,), name=name) for name in observations]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120.0)
    for name, chunks in received.items():
        assert len(chunks) == 4, f"{name} got {len(chunks)} chunks"
        for chunk in chunks:
            np.testing.assert_allclose(chunk, expected[name], rtol=1e-5, atol=1e-4)


def test_served_diffusion_chunk_equals_lerobot_in_process(diffusion_server, diffusion_path):
    obs = observation(2)
    expected = lerobot_rollout(diffusion_path, obs, steps=4, seed=DIFFUSION_SEED)
    with sync_client(diffusion_server.endpoint, "arm-1") as client:
        np.testing.assert_allclose(fetch_chunk(client, obs), expected, rtol=1e-5, atol=1e-4)


def test_diffusion_chunk_depends_on_its_own_request_only(diffusion_server):
    with sync_client(diffusion_server.endpoint, "arm-1") as client:
        first = fetch_chunk(client, observation(3))
        other = fetch_chunk(client, observation(4))
        again = fetch_chunk(client, observation(3))
    assert not np.allclose(first, other, atol=1e-3)
    np.testing.assert_array_equal(again, first)


def test_diffusion_is_served_to_one_session_at_a_time(diffusion_server):
    with sync_client(diffusion_server.endpoint, "arm-1"):
        second = sync_client(diffusion_server.endpoint, "arm-2")
        with pytest.raises(HandshakeError) as refused:
            second.start()
    assert refused.value.code is ErrorCode.CAPACITY
    assert "1 of 1 sessions" in str(refused.value)


def test_served_vqbet_chunk_equals_lerobot_in_process_and_ignores_earlier_requests(
    vqbet_server, vqbet_path
):
    expected = lerobot_rollout(vqbet_path, observation(2), steps=4, seed=DIFFUSION_SEED)
    with sync_client(vqbet_server.endpoint, "arm-1") as client:
        first = fetch_chunk(client, observation(2))
        fetch_chunk(client, observation(5))
        again = fetch_chunk(client, observation(2))
    np.testing.assert_allclose(first, expected, rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(again, first)


def test_serve_refuses_a_refused_family_at_start_up(tmp_path):
    path = checkpoints.save_declared_type(tmp_path / "tdmpc", "tdmpc")
    server = ServerProcess(lerobot_manifest(path), tmp_path)
    try:
        assert server.wait_exit() != 0
    finally:
        server.stop()
    assert "LeRobot policy type 'tdmpc' cannot be served" in server.output
    assert not server.announced_serving
