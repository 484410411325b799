"""`policylink run` and `policylink status` as a user runs them, against a real server."""

import json

from policylink.net.ports import free_port
from policylink.server.app import ServerApp

from .conftest import endpoint_of, expert_manifest, policylink

SMALL_ARM = ("run", "--robot", "sim:reach_track", "-o", "height=96", "-o", "width=128")


def test_status_prints_the_served_contract_and_load(expert_server):
    result = policylink("status", "--connect", endpoint_of(expert_server))
    assert result.returncode == 0, result.stderr
    assert "@policylink/sim-expert/main/reach_track" in result.stdout
    assert "shoulder.pos, elbow.pos, wrist.pos" in result.stdout
    assert "top 96x128" in result.stdout
    assert "0/8 sessions" in result.stdout


def test_status_as_json_carries_the_capabilities(expert_server):
    result = policylink("status", "--connect", endpoint_of(expert_server), "--json")
    assert result.returncode == 0, result.stderr
    [status] = json.loads(result.stdout)
    assert status["capabilities"]["chunk_size"] == 30
    assert status["load"] == 0.0


def test_status_for_a_namespace_nobody_serves_lists_what_is_served(expert_server):
    result = policylink("status", "--connect", endpoint_of(expert_server), "--model-id", "pi0")
    assert result.returncode == 2
    assert "this endpoint serves: sim-expert/main/reach_track" in result.stderr


def test_status_of_an_endpoint_where_nothing_listens_says_so():
    result = policylink("status", "--connect", f"tcp/127.0.0.1:{free_port()}", "--timeout", "0.5")
    assert result.returncode == 2
    assert "no Zenoh link" in result.stderr


def test_run_drives_a_simulated_arm_through_its_episodes(expert_server):
    result = policylink(*SMALL_ARM, "--connect", endpoint_of(expert_server), "--episodes", "1")
    assert result.returncode == 0, result.stderr
    assert "open with sim-expert@main, chunk 30, RTC replace" in result.stdout
    assert "episode 1 succeeded" in result.stdout
    assert "(1 episodes done)" in result.stdout


def test_run_against_a_namespace_nobody_serves_lists_what_is_served(expert_server):
    result = policylink(
        *SMALL_ARM,
        "--connect",
        endpoint_of(expert_server),
        "--model-id",
        "pi0",
        "--connect-timeout",
        "0.5",
    )
    assert result.returncode == 2
    assert "serves: --model-id sim-expert --revision main --task-slug reach_track" in result.stderr


def test_run_against_an_endpoint_where_nothing_listens_stops_before_moving():
    result = policylink(
        *SMALL_ARM, "--connect", f"tcp/127.0.0.1:{free_port()}", "--connect-timeout", "0.5"
    )
    assert result.returncode == 2
    assert "nothing is reachable" in result.stderr
    assert "episode" not in result.stdout


def test_run_with_a_robot_the_policy_does_not_fit_is_refused_with_the_reason(expert_server):
    result = policylink(
        "run", "--robot", "sim:reach_track", "--connect", endpoint_of(expert_server)
    )
    assert result.returncode == 2
    assert "refused this robot" in result.stderr
    assert "480x640 but the policy expects 96x128" in result.stderr


def test_run_drives_a_gymnasium_environment_episode_by_episode():
    app = ServerApp(
        expert_manifest(
            policy={"kind": "python", "factory": "tests.demo.cartpole_policy:build"},
            model_id="cartpole",
        )
    ).start()
    try:
        result = policylink(
            "run",
            "--robot",
            "gym:CartPole-v1",
            "-o",
            "max_episode_steps=15",
            "--connect",
            endpoint_of(app),
            "--episodes",
            "2",
        )
    finally:
        app.stop()
    assert result.returncode == 0, result.stderr
    assert "episode 1 " in result.stdout
    assert "episode 2 " in result.stdout
    assert "steps, return" in result.stdout
