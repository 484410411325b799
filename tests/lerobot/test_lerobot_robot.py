"""LeRobot robots as clients: built from a type and options, renamed, run by `policylink run`."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from policylink.client.lerobot_robot import lerobot_type, make_lerobot_robot
from tests.lerobot.checkpoints import ACTION_NAMES, CAMERA
from tests.lerobot.reference import lerobot_rollout, observation
from tests.lerobot.serving import POLICYLINK, ROOT

pytest.importorskip("lerobot", reason="LeRobot lives in its own environment: make test-lerobot")

PLUGIN = "tests.lerobot.sim_arm"
SIM_ARM = "policylink_sim_arm"


def sim_arm(tmp_path, rename_map=None, **options):
    options = {"calibration_dir": str(tmp_path / "calibration"), **options}
    return make_lerobot_robot(SIM_ARM, options, plugins=[PLUGIN], rename_map=rename_map)


def test_robot_spec_names_a_lerobot_type():
    assert lerobot_type("lerobot:so101_follower") == "so101_follower"
    assert lerobot_type("sim") is None
    with pytest.raises(ValueError, match="names no robot type"):
        lerobot_type("lerobot:")


def test_a_plugin_robot_is_built_from_its_type_and_options(tmp_path):
    from lerobot.robots import Robot

    robot = sim_arm(tmp_path, seed=3, camera="wrist")
    assert isinstance(robot.robot, Robot)
    assert robot.robot.config.seed == 3
    assert list(robot.observation_features) == [*ACTION_NAMES, "wrist"]
    assert list(robot.action_features) == ACTION_NAMES


@pytest.mark.parametrize("source", ["front", "observation.images.front"])
def test_rename_map_puts_robot_keys_under_the_policys_names(tmp_path, source):
    robot = sim_arm(tmp_path, rename_map={source: f"observation.images.{CAMERA}"})
    assert list(robot.observation_features) == [*ACTION_NAMES, CAMERA]
    robot.connect()
    try:
        frame = robot.get_observation()
    finally:
        robot.disconnect()
    assert set(frame) == {*ACTION_NAMES, CAMERA}
    assert frame[CAMERA].shape == (48, 64, 3)


def test_rename_map_naming_a_key_the_robot_lacks_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"rename_map renames \['side'\], which robot"):
        sim_arm(tmp_path, rename_map={"side": CAMERA})


def test_options_that_do_not_fit_the_robot_config_are_refused(tmp_path):
    with pytest.raises(ValueError, match="do not fit SimArmConfig"):
        sim_arm(tmp_path, gripper_force=3.0)


def test_an_unknown_robot_type_is_refused_with_the_known_types():
    with pytest.raises(
        ValueError, match=r"'no_such_arm' is unknown; known types: \[.*so101_follower"
    ):
        make_lerobot_robot("no_such_arm")


def test_finding_a_builtin_robot_type_loads_no_policy_code():
    probe = (
        "import sys\n"
        "from policylink.client.lerobot_robot import find_robot_config\n"
        "print(find_robot_config('so101_follower').__name__)\n"
        "print(sorted(m for m in sys.modules if m.startswith('lerobot.policies')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    config_name, policy_modules = result.stdout.splitlines()[-2:]
    assert config_name.endswith("Config")
    assert policy_modules == "[]"


def test_a_lerobot_robot_runs_under_policylink_run(tmp_path, act_server, act_path):
    log = tmp_path / "actions.jsonl"
    command = [
        *(POLICYLINK, "run", "--robot", f"lerobot:{SIM_ARM}", "--robot-plugin", PLUGIN),
        *("-o", "seed=6", "-o", f"action_log={log}", "-o", f"calibration_dir={tmp_path}"),
        *("--rename-map", json.dumps({"front": CAMERA}), "--connect", act_server.endpoint),
        *("--client-id", "cli-arm", "--jpeg-quality", "0", "--duration", "4"),
    ]
    # The repository first on the path: draccus installs a top-level `tests` package of its own.
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=180, check=False, env=env
    )
    assert result.returncode == 0, result.stdout + result.stderr
    executed = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(executed) >= 10, result.stdout
    rows = np.array([[row[name] for name in ACTION_NAMES] for row in executed[:10]])
    expected = lerobot_rollout(act_path, observation(6), steps=10)
    np.testing.assert_allclose(rows, expected, rtol=1e-5, atol=1e-4)


@pytest.mark.skipif(
    importlib.util.find_spec("scservo_sdk") is not None, reason="the Feetech driver is installed"
)
def test_a_builtin_robot_with_cameras_decodes_and_names_its_missing_driver(tmp_path):
    options = {
        "port": "/dev/ttyACM0",
        "id": "arm1",
        "calibration_dir": str(tmp_path),
        "cameras": {
            "front": {"type": "opencv", "index_or_path": 0, "width": 640, "height": 480, "fps": 30}
        },
    }
    with pytest.raises(ValueError, match=r"'so101_follower' needs a driver that is not installed"):
        make_lerobot_robot("so101_follower", options)
