"""The `lerobot` policy kind in-process: LeRobot's own rollout is the reference for every chunk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from policylink.policy.base import ChunkBatch
from policylink.policy.lerobot import LeRobotPolicy
from policylink.policy.registry import PolicyConfig, build_policy
from policylink.wire.messages import CameraSpec, Observation
from tests.lerobot import checkpoints
from tests.lerobot.checkpoints import ACTION_NAMES, CAMERA
from tests.lerobot.reference import lerobot_rollout, observation

pytest.importorskip("lerobot", reason="LeRobot lives in its own environment: make test-lerobot")

SEED = 7


def load(path: Path, **params: object) -> LeRobotPolicy:
    config = PolicyConfig(
        kind="lerobot", path=str(path), seed=SEED, params={"action_names": ACTION_NAMES, **params}
    )
    policy = build_policy(config)
    assert isinstance(policy, LeRobotPolicy)
    return policy


def served_chunk(policy: LeRobotPolicy, obs: Observation) -> np.ndarray:
    """The request path of one session: preprocess → chunk call → postprocess."""
    processor = policy.make_processor()
    chunk_model = policy.predict_chunk(ChunkBatch([processor.preprocess(obs)]))
    return processor.postprocess(chunk_model[0])


@pytest.fixture(scope="module")
def act(act_path: Path) -> LeRobotPolicy:
    return load(act_path)


@pytest.fixture(scope="module")
def diffusion(diffusion_path: Path) -> LeRobotPolicy:
    return load(diffusion_path, fixed_noise=True)


@pytest.fixture(scope="module")
def vqbet(vqbet_path: Path) -> LeRobotPolicy:
    return load(vqbet_path, fixed_noise=True)


def test_act_chunk_equals_lerobot_rollout_for_the_same_observation(act, act_path):
    obs = observation(1)
    expected = lerobot_rollout(act_path, obs, steps=act.spec.chunk_size)
    np.testing.assert_allclose(served_chunk(act, obs), expected, rtol=1e-5, atol=1e-5)


def test_act_batch_rows_equal_one_at_a_time_calls(act):
    processor = act.make_processor()
    samples = [processor.preprocess(observation(seed)) for seed in range(4)]
    together = act.predict_chunk(ChunkBatch(samples))
    alone = np.concatenate([act.predict_chunk(ChunkBatch([sample])) for sample in samples])
    assert together.shape == (4, act.spec.chunk_size, len(ACTION_NAMES))
    np.testing.assert_allclose(together, alone, rtol=1e-4, atol=1e-5)
    assert not np.allclose(together[0], together[1])


def test_capabilities_come_from_the_checkpoint_config(act, diffusion):
    assert act.spec.family == "lerobot.act"
    assert act.spec.action_names == tuple(ACTION_NAMES)
    assert act.spec.state_dim == checkpoints.STATE_DIM
    assert act.spec.cameras == (CameraSpec(CAMERA, 48, 64),)
    assert act.spec.chunk_size == 10
    assert not act.spec.supports_rtc
    assert diffusion.spec.family == "lerobot.diffusion"
    assert diffusion.spec.chunk_size == 4


@pytest.mark.parametrize("names", [ACTION_NAMES[:-1], [], [*ACTION_NAMES, "gripper"]])
def test_action_names_that_do_not_match_the_checkpoint_are_refused(act_path, names):
    config = PolicyConfig(kind="lerobot", path=str(act_path), params={"action_names": names})
    with pytest.raises(ValueError, match=r"policy\.params\.action_names lists .* has 6 dimensions"):
        build_policy(config)


def test_diffusion_chunk_equals_lerobot_rollout_from_a_fresh_reset(diffusion, diffusion_path):
    obs = observation(2)
    expected = lerobot_rollout(diffusion_path, obs, steps=diffusion.spec.chunk_size, seed=SEED)
    np.testing.assert_allclose(served_chunk(diffusion, obs), expected, rtol=1e-5, atol=1e-5)


def test_diffusion_chunk_does_not_depend_on_earlier_requests(diffusion):
    fresh = served_chunk(diffusion, observation(3))
    for seed in (4, 5):
        served_chunk(diffusion, observation(seed))
    assert np.array_equal(served_chunk(diffusion, observation(3)), fresh)
    assert not np.allclose(served_chunk(diffusion, observation(4)), fresh)


@pytest.mark.parametrize(
    ("policy_type", "reason"),
    [
        ("gaussian_actor", "raises NotImplementedError: it emits one action per call"),
        ("tdmpc", "warm-starts each plan from the previous call's"),
        ("lingbot_va", "executed actions and observed keyframes"),
        ("sac", "an RL algorithm"),
        ("sarm", "a reward model"),
        ("reward_classifier", "predicts rewards, not actions"),
    ],
)
def test_refused_policy_types_are_refused_with_the_reason(tmp_path, policy_type, reason):
    path = checkpoints.save_declared_type(tmp_path, policy_type)
    config = PolicyConfig(kind="lerobot", path=str(path), params={"action_names": ACTION_NAMES})
    with pytest.raises(ValueError, match=f"type '{policy_type}' cannot be served: .*{reason}"):
        build_policy(config)


def test_a_policy_type_nobody_verified_is_refused_after_parsing(tmp_path):
    from tests.lerobot.rtc_probe import RtcProbeConfig
    from tests.lerobot.rtc_probe.configuration_rtc_probe import POLICY_TYPE

    path = tmp_path / "probe"
    path.mkdir()
    RtcProbeConfig()._save_pretrained(path)
    config = PolicyConfig(kind="lerobot", path=str(path), params={"action_names": ACTION_NAMES})
    with pytest.raises(ValueError, match=f"'{POLICY_TYPE}' is not verified for serving"):
        build_policy(config)


def test_vqbet_chunk_equals_lerobot_rollout_from_a_fresh_reset(vqbet, vqbet_path):
    obs = observation(2)
    expected = lerobot_rollout(vqbet_path, obs, steps=vqbet.spec.chunk_size, seed=SEED)
    assert vqbet.spec.family == "lerobot.vqbet"
    assert vqbet.spec.max_batch_size == 1
    np.testing.assert_allclose(served_chunk(vqbet, obs), expected, rtol=1e-5, atol=1e-5)


def test_vqbet_chunk_does_not_inherit_an_earlier_requests_history(vqbet):
    fresh = served_chunk(vqbet, observation(3))
    for seed in (4, 5):
        served_chunk(vqbet, observation(seed))
    assert np.array_equal(served_chunk(vqbet, observation(3)), fresh)
    assert not np.allclose(served_chunk(vqbet, observation(4)), fresh)


def test_a_camera_frame_of_the_wrong_size_fails_that_request_only(act):
    processor = act.make_processor()
    state, _ = checkpoints.observation_arrays(0)
    small = np.zeros((24, 32, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match=r"camera 'top' sent uint8 \(24, 32, 3\)"):
        processor.preprocess(Observation(state=state, images={CAMERA: small}))
    assert served_chunk(act, observation(1)).shape == (10, len(ACTION_NAMES))


def test_a_checkpoint_directory_that_does_not_exist_is_named_in_the_error(tmp_path):
    missing = tmp_path / "checkpoints" / "last"
    config = PolicyConfig(kind="lerobot", path=str(missing), params={"action_names": ACTION_NAMES})
    with pytest.raises(ValueError, match=r"'.*/checkpoints/last' is not a checkpoint directory"):
        build_policy(config)


def test_a_bfloat16_act_runs_under_autocast_close_to_float32(act, act_path):
    config = PolicyConfig(kind="lerobot", path=str(act_path), params={"action_names": ACTION_NAMES})
    half = build_policy(config, "cpu", "bfloat16")
    obs = observation(1)
    full_chunk, half_chunk = served_chunk(act, obs), served_chunk(half, obs)
    assert half_chunk.dtype == np.float32
    assert not np.array_equal(half_chunk, full_chunk), "bfloat16 was not applied"
    np.testing.assert_allclose(half_chunk, full_chunk, atol=0.05 * np.abs(full_chunk).max())
