"""`policylink rollout`: lerobot-rollout's flags drive a LeRobot robot against a served policy."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from policylink.net.ports import free_port
from tests.lerobot.checkpoints import ACTION_NAMES, CAMERA
from tests.lerobot.reference import lerobot_rollout, observation
from tests.lerobot.serving import POLICYLINK, ROOT

pytest.importorskip("lerobot", reason="LeRobot lives in its own environment: make test-lerobot")

PLUGIN = "tests.lerobot.sim_arm"
SIM_ARM = "policylink_sim_arm"
SEED = 6


def rollout(tmp_path: Path, *flags: str) -> tuple[subprocess.CompletedProcess, Path]:
    """`policylink rollout` with a simulated arm whose camera the policy calls `top`."""
    log = tmp_path / "actions.jsonl"
    command = [
        *(POLICYLINK, "rollout", f"--robot.type={SIM_ARM}", f"--robot_plugin={PLUGIN}"),
        *(f"--robot.seed={SEED}", f"--robot.action_log={log}"),
        *(f"--robot.calibration_dir={tmp_path}", "--jpeg_quality=0", *flags),
    ]
    # The repository first on the path: draccus installs a top-level `tests` package of its own.
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=180, check=False, env=env
    )
    return result, log


def executed(log: Path) -> np.ndarray:
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    return np.array([[row[name] for name in ACTION_NAMES] for row in rows])


def test_sync_inference_runs_lerobots_chunk_on_the_robot(tmp_path, act_server, act_path):
    result, log = rollout(
        tmp_path,
        *(f"--policy.path={act_path}", f"--server={act_server.endpoint}"),
        *("--inference.type=sync", "--task=pick up the cube", "--duration=4", "--fps=30"),
        *(f"--rename_map={json.dumps({'front': CAMERA})}", "--client_id=rollout-sync"),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    actions = executed(log)
    assert len(actions) >= 10, result.stdout
    expected = lerobot_rollout(act_path, observation(SEED), steps=10)
    np.testing.assert_allclose(actions[:10], expected, rtol=1e-5, atol=1e-4)


def test_rtc_inference_runs_the_background_engine(tmp_path, act_server, act_path):
    result, log = rollout(
        tmp_path,
        *(f"--policy.path={act_path}", f"--server={act_server.endpoint}"),
        *("--inference.type=rtc", "--inference.rtc.execution_horizon=5", "--duration=3"),
        *("--inference.queue_threshold=6", "--rename_map", json.dumps({"front": CAMERA})),
        "--client_id=rollout-rtc",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    actions = executed(log)
    assert len(actions) >= 30, result.stdout
    # Nothing moves before the first chunk, which answers the starting observation; the engine
    # skips the rows that went stale while it was computed, so the first action is one of them.
    chunk = lerobot_rollout(act_path, observation(SEED), steps=10)
    distance = np.abs(chunk - actions[0]).max(axis=1)
    assert distance.min() < 1e-3, f"first action {actions[0]} is no row of the chunk {chunk}"


def test_a_robot_without_the_policys_camera_stops_before_connecting(tmp_path, act_path):
    result, log = rollout(tmp_path, f"--policy.path={act_path}", "--server=tcp/127.0.0.1:9")
    assert result.returncode == 2
    assert "reads cameras ['top']; the robot has ['front']" in result.stderr
    assert "--rename_map" in result.stderr
    assert not log.exists()


def test_an_unreachable_server_is_named_by_the_rollout_command(tmp_path, act_path):
    """`rollout` shares `run`'s loop; its errors still say which command failed."""
    result, _ = rollout(
        tmp_path,
        *(f"--policy.path={act_path}", f"--server=tcp/127.0.0.1:{free_port()}"),
        *(f"--rename_map={json.dumps({'front': CAMERA})}", "--duration=1"),
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith("policylink rollout: "), result.stderr
    assert "policylink run:" not in result.stderr


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"strategy": {"type": "sentry"}}, "runs the 'base' strategy"),
        ({"inference": {"type": "async"}}, r"use one of \['rtc', 'sync'\]"),
        ({"inference": {"rtc": {"max_guidance_weight": 5.0}}}, "the server's business"),
        ({"device": "cuda"}, "--device set how the policy runs"),
        ({"duration": -1.0}, "--duration=-1.0"),
    ],
)
def test_flags_that_belong_elsewhere_are_refused_with_where_they_went(flags, message):
    import draccus

    from policylink.cli.rollout_flags import RolloutFlags, rollout_settings
    from policylink.client.lerobot_robot import register_robot_type

    register_robot_type(SIM_ARM, [PLUGIN])
    parsed = draccus.decode(RolloutFlags, {"robot": {"type": SIM_ARM}, **flags})
    with pytest.raises(ValueError, match=message):
        rollout_settings(parsed)


def test_lerobot_rollout_flags_map_onto_policylinks_client_settings():
    import draccus

    from policylink.cli.rollout_flags import RolloutFlags, rollout_settings
    from policylink.client.lerobot_robot import register_robot_type

    register_robot_type(SIM_ARM, [PLUGIN])
    flags = {
        "robot": {"type": SIM_ARM},
        "inference": {"type": "rtc", "rtc": {"execution_horizon": 12}, "queue_threshold": 15},
        "fps": 30.0,
        "duration": 0.0,
        "task": "fold",
        "server": "tcp/10.0.0.2:7447",
    }
    settings = rollout_settings(draccus.decode(RolloutFlags, flags))
    assert settings.engine == "async"
    assert settings.duration_s is None
    assert settings.client["rtc"] and settings.client["rtc_horizon"] == 12
    assert settings.client["buffer_time_s"] == pytest.approx(0.5)
    assert settings.client["endpoint"] == "tcp/10.0.0.2:7447"
    assert settings.client["task"] == "fold"
    sync = rollout_settings(draccus.decode(RolloutFlags, {"robot": {"type": SIM_ARM}}))
    assert sync.engine == "sync"
    assert not sync.client["rtc"]
