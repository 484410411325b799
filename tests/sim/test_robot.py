import numpy as np
import pytest

from policylink.sim import (
    ACTION_NAMES,
    STATE_NAMES,
    CameraConfig,
    ManualClock,
    ReachTrackConfig,
    SimArm,
)

DT = 1 / 30


def red_pixels(image: np.ndarray) -> np.ndarray:
    mask = (image[..., 0] > 200) & (image[..., 1] < 80) & (image[..., 2] < 80)
    return np.argwhere(mask)


def test_observation_holds_joint_state_target_and_one_image_per_camera():
    cameras = (CameraConfig("top"), CameraConfig("wrist", 240, 320, view="wrist"))
    robot = SimArm(cameras=cameras, clock=ManualClock())
    observation = robot.get_observation()
    assert list(robot.observation_features) == [*STATE_NAMES, "top", "wrist"]
    assert all(isinstance(observation[name], float) for name in STATE_NAMES)
    assert observation["top"].shape == (480, 640, 3)
    assert observation["wrist"].shape == (240, 320, 3)
    assert observation["top"].dtype == np.uint8
    assert robot.observation_features["wrist"] == (240, 320, 3)


def test_action_features_are_the_joint_position_targets():
    assert list(SimArm(clock=ManualClock()).action_features) == list(ACTION_NAMES)


def test_top_camera_shows_the_target_on_the_side_where_it_is():
    robot = SimArm(clock=ManualClock(), seed=3)
    observation = robot.get_observation()
    blob = red_pixels(observation["top"])
    assert len(blob) > 50
    column = blob[:, 1].mean()
    # y points left, so a target with positive y is drawn left of the base's column.
    assert (column < 320) == (observation["target.y"] > 0)


def test_joints_move_toward_the_command_no_faster_than_joint_speed():
    clock = ManualClock()
    robot = SimArm(cameras=(), clock=clock)
    start = robot.get_observation()
    robot.send_action({name: start[name] + 1.0 for name in ACTION_NAMES})
    clock.advance(2 * DT)
    moved = robot.get_observation()
    step = robot.task.geometry.joint_speed * DT
    for name in ACTION_NAMES:
        assert moved[name] - start[name] == pytest.approx(2 * step)


def test_simulated_time_follows_the_clock_not_the_calls():
    clock = ManualClock()
    robot = SimArm(cameras=(), clock=clock)
    robot.get_observation()
    clock.advance(10 * DT)
    robot.get_observation()
    assert robot.episode.steps == 10


def test_periods_that_pass_without_an_action_are_counted():
    clock = ManualClock()
    robot = SimArm(cameras=(), clock=clock)
    hold = {name: value for name, value in robot.get_observation().items() if name in ACTION_NAMES}
    for _ in range(5):
        robot.send_action(hold)
        clock.advance(DT)
    clock.advance(7 * DT)
    robot.get_observation()
    robot.reset()
    assert robot.results[-1].steps_without_action == 7


def test_an_arm_that_is_never_commanded_fails_at_the_time_limit():
    clock = ManualClock()
    robot = SimArm(ReachTrackConfig(max_episode_s=2.0), cameras=(), clock=clock)
    robot.get_observation()
    clock.advance(5.0)
    assert robot.episode_done
    result = robot.results[-1]
    assert not result.success
    assert result.completion_s is None
    assert result.duration_s == pytest.approx(2.0)


def test_the_target_stands_still_until_reached():
    clock = ManualClock()
    robot = SimArm(cameras=(), clock=clock)
    first = robot.get_observation()
    clock.advance(1.0)
    later = robot.get_observation()
    assert (later["target.x"], later["target.y"]) == (first["target.x"], first["target.y"])
    assert later["target.vx"] == later["target.vy"] == 0.0


def test_the_same_seed_replays_the_same_episodes():
    def targets(seed: int) -> list[tuple[float, float]]:
        robot = SimArm(cameras=(), seed=seed, clock=ManualClock())
        points = []
        for _ in range(3):
            robot.reset()
            observation = robot.get_observation()
            points.append((observation["target.x"], observation["target.y"]))
        return points

    assert targets(7) == targets(7)
    assert targets(7) != targets(8)
    assert len(set(targets(7))) == 3


def test_an_action_missing_a_joint_is_refused_with_its_name():
    robot = SimArm(cameras=(), clock=ManualClock())
    with pytest.raises(ValueError, match=r"wrist\.pos"):
        robot.send_action({"shoulder.pos": 0.0, "elbow.pos": 0.0})


def test_a_non_finite_joint_target_is_refused():
    robot = SimArm(cameras=(), clock=ManualClock())
    with pytest.raises(ValueError, match="non-finite"):
        robot.send_action({"shoulder.pos": float("nan"), "elbow.pos": 0.0, "wrist.pos": 0.0})


def test_camera_names_must_be_unique():
    with pytest.raises(ValueError, match="unique"):
        SimArm(cameras=(CameraConfig("top"), CameraConfig("top")))


def test_an_unknown_camera_view_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="wrist"):
        CameraConfig("side", view="side")
