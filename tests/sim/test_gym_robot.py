import gymnasium
import numpy as np
import pytest
from gymnasium.wrappers import AddRenderObservation

from policylink.client import Robot
from policylink.sim.gym_robot import GymRobot


def balance(observation: dict) -> dict[str, float]:
    """Push the cart toward the side the pole leans to: enough to last a short episode."""
    angle, spin = observation["state.2"], observation["state.3"]
    return {"action": 1.0 if angle + 0.5 * spin > 0 else 0.0}


@pytest.fixture
def cartpole():
    env = gymnasium.make("CartPole-v1", render_mode="rgb_array", max_episode_steps=25)
    robot = GymRobot(env, seed=1)
    robot.connect()
    try:
        yield robot
    finally:
        robot.disconnect()


def test_vector_observations_become_state_and_the_render_becomes_a_camera(cartpole: GymRobot):
    observation = cartpole.get_observation()
    assert cartpole.state_names == ["state.0", "state.1", "state.2", "state.3"]
    assert cartpole.observation_features["camera"] == (400, 600, 3)
    assert isinstance(observation["state.2"], float)
    assert observation["camera"].dtype == np.uint8
    assert observation["camera"].shape == (400, 600, 3)


def test_a_discrete_action_space_is_one_action_feature(cartpole: GymRobot):
    assert cartpole.action_features == {"action": float}


def test_it_is_a_robot_the_client_can_drive(cartpole: GymRobot):
    assert isinstance(cartpole, Robot)


def test_each_action_steps_the_environment_once(cartpole: GymRobot):
    before = cartpole.get_observation()
    cartpole.send_action({"action": 1.0})
    after = cartpole.get_observation()
    assert after["state.1"] > before["state.1"]


def test_surviving_to_the_time_limit_is_a_success(cartpole: GymRobot):
    while not cartpole.episode_done:
        cartpole.send_action(balance(cartpole.get_observation()))
    result = cartpole.results[-1]
    assert result.success
    assert result.steps == 25
    assert result.total_reward == 25.0


def test_falling_over_is_a_failure_and_the_next_episode_starts_fresh(cartpole: GymRobot):
    while not cartpole.episode_done:
        cartpole.send_action({"action": 1.0})
    assert not cartpole.results[-1].success
    assert cartpole.results[-1].steps < 25
    cartpole.reset()
    assert not cartpole.episode_done
    assert abs(cartpole.get_observation()["state.2"]) < 0.05


def test_a_continuous_action_is_clipped_to_the_action_space():
    robot = GymRobot("Pendulum-v1")
    try:
        assert robot.action_features == {"action.0": float}
        assert robot.send_action({"action.0": 9.0}) == {"action.0": 2.0}
    finally:
        robot.disconnect()


def test_image_observations_are_used_as_cameras_directly():
    env = AddRenderObservation(
        gymnasium.make("CartPole-v1", render_mode="rgb_array"), render_only=False
    )
    robot = GymRobot(env)
    try:
        observation = robot.get_observation()
        assert robot.state_names == ["state.0", "state.1", "state.2", "state.3"]
        assert observation["pixels"].shape == (400, 600, 3)
        assert "camera" not in observation
    finally:
        robot.disconnect()


def test_an_action_missing_a_feature_is_refused_naming_it(cartpole: GymRobot):
    with pytest.raises(ValueError, match="'action'"):
        cartpole.send_action({"force": 1.0})


def test_an_environment_without_rgb_rendering_is_refused_with_the_fix():
    with pytest.raises(ValueError, match="render_mode='rgb_array'"):
        GymRobot(gymnasium.make("CartPole-v1"))
