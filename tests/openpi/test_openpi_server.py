"""policylink's OpenPI endpoint driven by the stock openpi-client from PyPI."""

from __future__ import annotations

import threading
import urllib.request

import numpy as np
import pytest
import websockets.sync.client
from openpi_client import msgpack_numpy
from openpi_client.action_chunk_broker import ActionChunkBroker
from websockets.exceptions import ConnectionClosedError, ConnectionClosedOK, InvalidStatus

from tests.openpi.conftest import IMAGE_SIZE, libero_obs
from tests.openpi.policies import RAISE_MARKER
from tests.support.waiting import wait_for

pytestmark = pytest.mark.filterwarnings("ignore:connect\\(\\) must be used:DeprecationWarning")


def test_metadata_frame_describes_the_served_policy(serve, client):
    served = serve(policy_params={"state_dim": 3, "chunk_size": 5})
    meta = client(served.url()).get_server_metadata()
    assert meta["server"] == "policylink"
    assert meta["action_names"][:3] == ["joint_0", "joint_1", "joint_2"]
    assert (meta["action_horizon"], meta["action_dim"], meta["state_dim"]) == (5, 6, 3)
    assert [c["key"] for c in meta["cameras"]] == ["observation/image", "observation/wrist_image"]
    assert [(c["height"], c["width"]) for c in meta["cameras"]] == [(IMAGE_SIZE, IMAGE_SIZE)] * 2
    assert meta["fps"] == 30.0
    assert meta["server_version"]


def test_observation_returns_the_chunk_with_openpi_timings(serve, client):
    served = serve(policy_params={"state_dim": 3, "chunk_size": 5})
    reply = client(served.url()).infer(libero_obs([1.0, 2.0, 3.0], front=10, wrist=20))
    actions = reply["actions"]
    assert actions.dtype == np.float32 and actions.shape == (5, 6)
    np.testing.assert_array_equal(actions[:, :3], [[1 + t, 2 + t, 3 + t] for t in range(5)])
    np.testing.assert_array_equal(actions[:, 3:5], [[10, 20]] * 5)
    assert reply["server_timing"]["infer_ms"] > 0
    assert reply["server_timing"]["total_ms"] >= reply["server_timing"]["infer_ms"]
    assert reply["policy_timing"]["infer_ms"] == reply["server_timing"]["infer_ms"]


def test_second_reply_reports_the_previous_round_trip(serve, client):
    policy = client(serve().url())
    first = policy.infer(libero_obs([0.0, 0.0, 0.0]))
    second = policy.infer(libero_obs([0.0, 0.0, 0.0]))
    assert "prev_total_ms" not in first["server_timing"]
    assert second["server_timing"]["prev_total_ms"] > 0


def test_action_chunk_broker_plays_one_chunk_step_by_step(serve, client):
    served = serve(policy_params={"state_dim": 3, "chunk_size": 4})
    broker = ActionChunkBroker(client(served.url()), action_horizon=4)
    steps = [broker.infer(libero_obs([float(i), 0.0, 0.0])) for i in range(6)]
    joint_0 = [step["actions"][0] for step in steps]
    # One server request per four steps: the first chunk answers state 0, the second state 4.
    assert joint_0 == [0, 1, 2, 3, 4, 5]
    assert [step["actions"][-1] for step in steps] == [1, 1, 1, 1, 2, 2]


def test_aloha_layout_with_nested_chw_images_is_served(serve, client):
    served = serve(openpi={"key_map": {"preset": "aloha"}}, policy_params={"state_dim": 2})
    chw = np.full((3, IMAGE_SIZE, IMAGE_SIZE), 30, np.uint8)
    obs = {"state": np.ones(2), "images": {"front": chw, "wrist": chw * 2}, "prompt": "fold"}
    actions = client(served.url()).infer(obs)["actions"]
    np.testing.assert_array_equal(actions[0, 2:4], [30, 60])


def test_reset_endpoint_acks_and_starts_a_new_episode(serve, client):
    policy = client(serve().url())
    counts = [policy.infer(libero_obs([0.0, 0.0, 0.0]))["actions"][0, -1] for _ in range(3)]
    ack = policy.infer({"endpoint": "reset"})
    after = policy.infer(libero_obs([0.0, 0.0, 0.0]))["actions"][0, -1]
    assert counts == [1, 2, 3]
    assert ack["endpoint"] == "reset" and ack["ok"] is True and ack["episode_id"] == 1
    assert after == 1


def test_new_session_id_frees_the_old_session_and_starts_fresh(serve, client):
    served = serve()
    policy = client(served.url())
    in_a = [
        policy.infer(libero_obs([0.0, 0.0, 0.0], session_id="episode-a"))["actions"][0, -1]
        for _ in range(2)
    ]
    old_session = served.app.core.registry.snapshot()[0].session_id
    reply_b = policy.infer(libero_obs([0.0, 0.0, 0.0], session_id="episode-b"))
    assert in_a == [1, 2]
    assert reply_b["actions"][0, -1] == 1 and reply_b["session_id"] == "episode-b"
    sessions = served.app.core.registry.snapshot()
    assert len(sessions) == 1 and sessions[0].session_id != old_session


def test_repeating_the_session_id_keeps_the_episode(serve, client):
    policy = client(serve().url())
    counts = [
        policy.infer(libero_obs([0.0, 0.0, 0.0], session_id=7))["actions"][0, -1] for _ in range(3)
    ]
    assert counts == [1, 2, 3]


def test_closing_the_connection_frees_its_session(serve, client):
    served = serve()
    policy = client(served.url())
    policy.infer(libero_obs([0.0, 0.0, 0.0]))
    assert served.active_sessions == 1
    policy._ws.close()
    wait_for(lambda: served.active_sessions == 0, what="the session to close")


def test_both_paths_serve_and_others_are_refused(serve, client):
    served = serve()
    reply = client(served.url("/v1/realtime/robot/openpi")).infer(libero_obs([0.0, 0.0, 0.0]))
    assert reply["actions"].shape[0] == 5
    with pytest.raises(InvalidStatus) as refused:
        client(served.url("/v2/other"))
    assert refused.value.response.status_code == 404


def test_healthz_answers_plain_http(serve):
    served = serve()
    with urllib.request.urlopen(f"http://127.0.0.1:{served.openpi.port}/healthz") as response:
        assert response.status == 200 and response.read() == b"OK\n"


def test_valid_api_key_is_accepted(serve, client):
    served = serve(api_key="s3cret")
    reply = client(served.url(), api_key="s3cret").infer(libero_obs([0.0, 0.0, 0.0]))
    assert reply["actions"].shape == (5, 6)


def test_bearer_token_is_accepted(serve):
    served = serve(api_key="s3cret")
    headers = {"Authorization": "Bearer s3cret"}
    with websockets.sync.client.connect(
        served.url(), additional_headers=headers, compression=None
    ) as ws:
        assert msgpack_numpy.unpackb(ws.recv())["server"] == "policylink"


@pytest.mark.parametrize("api_key", [None, "wrong"])
def test_missing_or_wrong_api_key_is_refused_before_the_upgrade(serve, client, api_key):
    served = serve(api_key="s3cret")
    with pytest.raises(InvalidStatus) as refused:
        client(served.url(), api_key=api_key)
    assert refused.value.response.status_code == 401
    assert b"Api-Key" in refused.value.response.body
    assert served.active_sessions == 0


def test_malformed_frame_gets_a_text_error_and_the_connection_stays_usable(serve, client):
    policy = client(serve().url())
    policy._ws.send(b"\xc1 not msgpack")
    error = policy._ws.recv()
    reply = policy.infer(libero_obs([1.0, 1.0, 1.0]))
    assert isinstance(error, str) and "not valid msgpack" in error
    assert reply["actions"][0, 0] == 1


def test_missing_key_error_names_the_key_and_the_fix(serve, client):
    policy = client(serve().url())
    with pytest.raises(RuntimeError, match=r"no 'observation/state'.*openpi.key_map"):
        policy.infer({"state": np.zeros(3)})


def test_wrong_image_size_is_refused_naming_the_camera(serve, client):
    policy = client(serve().url())
    obs = libero_obs([0.0, 0.0, 0.0])
    obs["observation/wrist_image"] = np.zeros((4, 4, 3), np.uint8)
    with pytest.raises(RuntimeError, match=r"camera_mismatch.*wrist is 4x4"):
        policy.infer(obs)


def test_unknown_endpoint_is_refused(serve, client):
    with pytest.raises(RuntimeError, match="endpoint 'load' is unknown"):
        client(serve().url()).infer({"endpoint": "load"})


def test_failing_policy_fails_one_request_not_the_connection(serve, client):
    policy = client(serve().url())
    with pytest.raises(RuntimeError, match=r"policy_error.*marker"):
        policy.infer(libero_obs([RAISE_MARKER, 0.0, 0.0]))
    assert policy.infer(libero_obs([2.0, 0.0, 0.0]))["actions"][0, 0] == 2


def test_oversized_frame_closes_only_that_connection(serve, client):
    served = serve(openpi={"max_frame_bytes": 64 * 1024})
    victim, bystander = client(served.url()), client(served.url())
    with pytest.raises(ConnectionClosedError) as closed:
        victim.infer(libero_obs([0.0, 0.0, 0.0], padding=np.zeros(100_000, np.uint8)))
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    assert bystander.infer(libero_obs([3.0, 0.0, 0.0]))["actions"][0, 0] == 3
    wait_for(lambda: served.active_sessions == 1, what="the oversized client's session to close")


def test_server_at_capacity_refuses_the_upgrade_with_503(serve, client):
    served = serve(max_sessions=1)
    client(served.url()).infer(libero_obs([0.0, 0.0, 0.0]))
    with pytest.raises(InvalidStatus) as refused:
        client(served.url())
    assert refused.value.response.status_code == 503
    assert b"capacity" in refused.value.response.body


def test_session_closed_as_idle_is_reopened_on_the_next_frame(serve, client):
    served = serve(session_idle_timeout_s=0.2)
    policy = client(served.url())
    policy.infer(libero_obs([0.0, 0.0, 0.0]))
    wait_for(lambda: served.active_sessions == 0, what="the idle session to be closed")
    reply = policy.infer(libero_obs([5.0, 0.0, 0.0]))
    assert reply["actions"][0, 0] == 5 and reply["actions"][0, -1] == 1


def drive_concurrently(policies: list, steps: int) -> dict[int, list[float]]:
    """Each client on its own thread sends `steps` requests whose state names client and step;
    returns the first action of every reply, by client."""
    results: dict[int, list[float]] = {}

    def drive(index: int) -> None:
        results[index] = [
            float(
                policies[index].infer(libero_obs([index * 100.0 + step, 0.0, 0.0]))["actions"][0, 0]
            )
            for step in range(steps)
        ]

    threads = [
        threading.Thread(target=drive, args=(i,), name=f"openpi-client-{i}")
        for i in range(len(policies))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_eight_concurrent_clients_each_get_their_own_chunks(serve, client):
    served = serve(max_sessions=8)
    policies = [client(served.url()) for _ in range(8)]
    results = drive_concurrently(policies, 5)
    assert results == {i: [i * 100.0 + step for step in range(5)] for i in range(8)}


def test_eight_stock_clients_are_served_in_shared_forwards(serve, client):
    served = serve(
        max_sessions=8,
        scheduler="batch",
        max_wait_ms=20.0,
        policy_params={"delay_s": 0.03, "max_batch_size": 8},
    )
    policies = [client(served.url()) for _ in range(8)]
    results = drive_concurrently(policies, 4)
    assert results == {i: [i * 100.0 + step for step in range(4)] for i in range(8)}
    sizes = served.app.policy.batch_sizes
    assert max(sizes) > 1, sizes
    assert len(sizes) < 32, f"32 requests took {len(sizes)} forwards: {sizes}"


def test_startup_line_names_the_openpi_endpoints(serve):
    served = serve()
    assert f"openpi ws://127.0.0.1:{served.openpi.port}/," in served.app.startup_line()


def test_missing_api_key_variable_stops_the_server_from_starting(serve, monkeypatch):
    monkeypatch.delenv("POLICYLINK_TEST_UNSET_KEY", raising=False)
    with pytest.raises(ValueError, match=r"'POLICYLINK_TEST_UNSET_KEY'.*unset or empty"):
        serve(openpi={"api_key_env": "POLICYLINK_TEST_UNSET_KEY"})


def test_key_map_that_cannot_fit_the_policy_stops_the_server_from_starting(serve):
    with pytest.raises(ValueError, match="policy's state_dim is 3"):
        serve(openpi={"key_map": "droid"})


def test_drain_answers_the_request_in_flight_then_closes_the_connection(serve, client, tmp_path):
    started = tmp_path / "forward-started"
    served = serve(policy_params={"delay_s": 0.5, "started_file": str(started)})
    policy = client(served.url())
    policy.infer(libero_obs([0.0, 0.0, 0.0]))
    started.unlink()
    replies: list[object] = []
    in_flight = threading.Thread(
        target=lambda: replies.append(policy.infer(libero_obs([9.0, 0.0, 0.0]))),
        name="openpi-in-flight",
    )
    in_flight.start()
    wait_for(started.exists, what="the second forward to start")
    served.app.stop()
    in_flight.join(timeout=30)
    assert replies and replies[0]["actions"][0, 0] == 9
    with pytest.raises(ConnectionClosedOK) as closed:
        policy.infer(libero_obs([0.0, 0.0, 0.0]))
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
