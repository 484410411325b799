import threading

import numpy as np
import pytest

from policylink.client import ClientConfig, LocalEngine, Robot, RobotLayout, run_loop
from policylink.policy.base import ChunkBatch, Policy
from policylink.policy.registry import PolicyConfig, build_policy
from policylink.sim import (
    ACTION_NAMES,
    STATE_NAMES,
    CameraConfig,
    ManualClock,
    ReachTrackConfig,
    SimArm,
)
from policylink.sim.expert import ExpertPolicy, build
from policylink.sim.task import EpisodeResult
from policylink.wire import Observation

from .local_rollout import Rollout, to_wire

SMALL_TOP = {"name": "top", "height": 96, "width": 128}


@pytest.fixture(scope="module")
def expert() -> ExpertPolicy:
    return build(PolicyConfig(kind="sim_expert"))


def mean_completion(results: list[EpisodeResult]) -> float:
    assert all(result.success for result in results), results
    return float(np.mean([result.completion_s for result in results]))


def test_expert_solves_every_episode_when_chunks_arrive_on_time(expert: Policy):
    results = Rollout(delay=0).episodes(expert, count=8)
    assert mean_completion(results) < 6.0
    assert all(result.reach_s is not None and result.reach_s < 2.0 for result in results)


def test_trimming_the_stale_steps_of_a_late_chunk_keeps_the_arm_on_target(expert: Policy):
    trimmed = Rollout(delay=6, trim=True).episodes(expert, count=8)
    executed_late = Rollout(delay=6, trim=False).episodes(expert, count=8)
    assert mean_completion(trimmed) < 0.75 * mean_completion(executed_late)
    trimmed_error = np.mean([result.mean_tracking_error_m for result in trimmed])
    late_error = np.mean([result.mean_tracking_error_m for result in executed_late])
    assert trimmed_error < 0.6 * late_error


def test_executing_whole_chunks_then_waiting_is_slower_than_replanning(expert: Policy):
    replanning = Rollout(delay=3).episodes(expert, count=8)
    blocking = Rollout(delay=3, blocking=True).episodes(expert, count=8)
    assert mean_completion(blocking) > 1.5 * mean_completion(replanning)


def test_spec_matches_what_the_sim_arm_observes_and_accepts(expert: Policy):
    robot = SimArm(clock=ManualClock())
    spec = expert.spec
    assert spec.action_names == tuple(robot.action_features)
    assert spec.state_names == STATE_NAMES
    assert spec.state_dim == len(STATE_NAMES)
    assert [(c.name, c.height, c.width) for c in spec.cameras] == [("top", 480, 640)]
    assert spec.family == "policylink.sim_expert"
    assert spec.supports_rtc


def test_registry_builds_the_sim_expert_kind():
    policy = build_policy(PolicyConfig(kind="sim_expert", params={"chunk_size": 12}))
    assert isinstance(policy, ExpertPolicy)
    assert policy.spec.chunk_size == 12


def test_chunk_is_batch_shaped_and_answers_each_sample_for_itself(expert: Policy):
    clock = ManualClock()
    robots = [SimArm(cameras=(), seed=seed, clock=clock) for seed in (1, 2)]
    processor = expert.make_processor()
    samples = [processor.preprocess(to_wire(r, r.get_observation())) for r in robots]
    together = expert.predict_chunk(ChunkBatch(samples))
    alone = [expert.predict_chunk(ChunkBatch([sample]))[0] for sample in samples]
    assert together.shape == (2, 30, len(ACTION_NAMES))
    assert together.dtype == np.float32
    np.testing.assert_array_equal(together, np.stack(alone))
    assert not np.array_equal(together[0], together[1])


def test_steps_inside_the_inference_delay_repeat_the_robots_prefix(expert: Policy):
    robot = SimArm(cameras=(), clock=ManualClock())
    sample = expert.make_processor().preprocess(to_wire(robot, robot.get_observation()))
    prefix = np.full((10, 3), 0.25, dtype=np.float32)
    chunk = expert.predict_chunk(ChunkBatch([sample], [4], [prefix]))[0]
    np.testing.assert_array_equal(chunk[:4], prefix[:4])
    step = np.abs(np.diff(chunk[3:], axis=0)).max()
    assert step <= robot.task.geometry.joint_speed / robot.task.fps + 1e-6


def test_an_observation_with_the_wrong_state_length_is_refused_naming_the_field(expert: Policy):
    with pytest.raises(ValueError, match=r"observation\.state must hold 7"):
        expert.make_processor().preprocess(Observation(state=np.zeros(5, dtype=np.float32)))


def test_unknown_params_are_named_with_the_known_ones():
    with pytest.raises(ValueError, match=r"\['chunk'\].*chunk_size"):
        build(PolicyConfig(kind="sim_expert", params={"chunk": 10}))


def test_an_unknown_backbone_lists_the_choices():
    with pytest.raises(ValueError, match=r"huge.*tiny"):
        build(PolicyConfig(kind="sim_expert", preset="huge"))


def test_preset_and_backbone_param_must_agree():
    with pytest.raises(ValueError, match="disagree"):
        build(PolicyConfig(kind="sim_expert", preset="tiny", params={"backbone": "base"}))


def test_a_backbone_preset_adds_a_transformer_forward_without_changing_the_plan():
    cameras = [{"name": "top", "height": 96, "width": 128}]
    plain = build(PolicyConfig(kind="sim_expert", params={"cameras": cameras}))
    sized = build(PolicyConfig(kind="sim_expert", preset="tiny", params={"cameras": cameras}))
    robot = SimArm(cameras=(CameraConfig("top", 96, 128),), clock=ManualClock())
    sample = sized.make_processor().preprocess(to_wire(robot, robot.get_observation()))
    np.testing.assert_array_equal(
        sized.predict_chunk(ChunkBatch([sample])), plain.predict_chunk(ChunkBatch([sample]))
    )
    assert sized.backbone_parameters > 0 == plain.backbone_parameters


def test_expert_solves_an_episode_in_real_time_under_local_engine():
    robot = SimArm(ReachTrackConfig(track_s=1.0), cameras=(CameraConfig("top", 96, 128),))
    policy = build(PolicyConfig(kind="sim_expert", params={"cameras": [SMALL_TOP]}))
    engine = LocalEngine(policy, ClientConfig(fps=robot.task.fps), RobotLayout.of(robot))
    stop = threading.Event()
    stats = run_loop(
        robot,
        engine,
        robot.task.fps,
        duration_s=20.0,
        stop=stop,
        on_tick=lambda tick, raw, action: robot.episode_done and stop.set(),
    )
    assert stats.stopped_because == "stop requested"
    assert robot.results[-1].success
    assert isinstance(robot, Robot)
