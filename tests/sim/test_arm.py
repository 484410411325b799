import numpy as np

from policylink.sim.arm import (
    ArmGeometry,
    end_effector,
    inverse_kinematics,
    joint_points,
    step_toward,
)

GEOMETRY = ArmGeometry()


def test_inverse_kinematics_reaches_every_point_of_the_workspace():
    rng = np.random.default_rng(0)
    radius = rng.uniform(GEOMETRY.min_reach + 0.01, GEOMETRY.max_reach - 0.01, 200)
    bearing = rng.uniform(-np.pi, np.pi, 200)
    points = np.stack([radius * np.cos(bearing), radius * np.sin(bearing)], axis=-1)
    joints = inverse_kinematics(GEOMETRY, points)
    reached = np.array([end_effector(GEOMETRY, q) for q in joints])
    np.testing.assert_allclose(reached, points, atol=1e-9)


def test_points_out_of_reach_are_projected_onto_the_workspace_edge():
    far = np.array([2.0, 0.0])
    joints = inverse_kinematics(GEOMETRY, far)
    reached = end_effector(GEOMETRY, joints)
    assert reached[0] < GEOMETRY.max_reach
    assert reached[0] > GEOMETRY.max_reach - 0.01
    assert abs(reached[1]) < 1e-9


def test_joint_points_start_at_the_base_and_chain_the_links():
    points = joint_points(GEOMETRY, np.zeros(3))
    np.testing.assert_allclose(points, [[0, 0], [0.35, 0], [0.65, 0], [0.75, 0]])


def test_a_servo_step_never_exceeds_the_speed_limit():
    current = np.array([0.0, 1.0, -1.0])
    target = np.array([3.0, 1.01, -2.0])
    moved = step_toward(current, target, max_step=0.05)
    np.testing.assert_allclose(moved, [0.05, 1.01, -1.05])
