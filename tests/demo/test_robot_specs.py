import pytest

from policylink.cli.robots import make_robot, parse_options
from policylink.sim import SimArm
from policylink.sim.gym_robot import GymRobot


def test_sim_names_a_built_in_task_with_its_options():
    robot = make_robot("sim:reach_track", {"seed": 4, "height": 60, "width": 80})
    assert isinstance(robot, SimArm)
    assert robot.seed == 4
    assert robot.observation_features["top"] == (60, 80, 3)


def test_a_wrist_camera_option_adds_a_second_camera():
    robot = make_robot("sim:reach_track", {"wrist_camera": True})
    assert [c.config.name for c in robot.cameras] == ["top", "wrist"]


def test_gym_names_a_gymnasium_environment():
    robot = make_robot("gym:CartPole-v1", {"max_episode_steps": 10})
    try:
        assert isinstance(robot, GymRobot)
        assert robot.action_features == {"action": float}
    finally:
        robot.disconnect()


def test_a_factory_path_is_called_with_the_options():
    robot = make_robot("policylink.sim.catalog:make_sim_robot", {"task": "reach_track"})
    assert isinstance(robot, SimArm)


def test_a_factory_that_returns_no_robot_is_refused_with_the_interface_it_needs():
    with pytest.raises(ValueError, match=r"lacks.*observation_features"):
        make_robot("os:getcwd")


def test_an_unknown_form_lists_every_accepted_form():
    with pytest.raises(ValueError, match=r"sim:<task>.*gym:.*lerobot:.*package\.module:function"):
        make_robot("my_robot")


def test_an_unknown_sim_option_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown options \['colour'\].*wrist_camera"):
        make_robot("sim:reach_track", {"colour": "red"})


def test_an_unknown_sim_task_lists_the_tasks():
    with pytest.raises(ValueError, match="reach_track"):
        make_robot("sim:juggle")


def test_options_are_parsed_as_yaml_values():
    assert parse_options(["seed=3", "wrist_camera=true", "cameras={front: {fps: 30}}"]) == {
        "seed": 3,
        "wrist_camera": True,
        "cameras": {"front": {"fps": 30}},
    }


def test_an_option_without_a_value_is_refused_naming_the_flag():
    with pytest.raises(ValueError, match="--robot-option 'seed': use key=value"):
        parse_options(["seed"])
