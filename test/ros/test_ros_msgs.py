"""Message <-> array conversion, validation and trajectory interpolation (no DDS needed)."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("rclpy")

from sensor_msgs.msg import JointState  # noqa: E402
from trajectory_msgs.msg import JointTrajectory  # noqa: E402

from mbrl.ros.msgs import (  # noqa: E402
    command_to_array,
    duration_msg,
    float64_multiarray,
    joint_positions_by_name,
    joint_state_msg,
    joint_trajectory_msg,
    joint_velocities_by_name,
    pose_stamped_msg,
    time_msg,
    to_seconds,
    trajectory_to_arrays,
)
from mbrl.ros.trajectory import TrajectorySampler  # noqa: E402

JOINTS = ("a", "b", "c")


def test_time_round_trip_keeps_nanoseconds():
    for seconds in (0.0, 0.05, 1.999999999, 1234567.123456789):
        assert to_seconds(time_msg(seconds)) == pytest.approx(seconds, abs=1e-9)
    d = duration_msg(2.5)
    assert (d.sec, d.nanosec) == (2, 500_000_000)


def test_joint_state_is_read_by_name_not_position():
    msg = joint_state_msg(["c", "gripper", "a", "b"], np.array([3.0, 9.0, 1.0, 2.0]))
    np.testing.assert_array_equal(joint_positions_by_name(msg, JOINTS), [1.0, 2.0, 3.0])


def test_velocities_are_read_by_name_too():
    msg = joint_state_msg(["b", "a", "c"], np.zeros(3), np.array([2.0, 1.0, 3.0]))
    np.testing.assert_array_equal(joint_velocities_by_name(msg, JOINTS), [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="3 names but 0 velocity values"):
        joint_velocities_by_name(joint_state_msg(JOINTS, np.zeros(3)), JOINTS)


def test_joint_state_errors_name_the_problem():
    msg = joint_state_msg(["a", "c"], np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match=r"\['b'\] missing from joint_states; expected 3 joints"):
        joint_positions_by_name(msg, JOINTS)
    with pytest.raises(ValueError, match=r"NaN/Inf for \['b'\]"):
        joint_positions_by_name(joint_state_msg(JOINTS, np.array([0, math.nan, 0])), JOINTS)
    short = JointState(name=list(JOINTS), position=[0.0])
    with pytest.raises(ValueError, match="3 names but 1 position values"):
        joint_positions_by_name(short, JOINTS)


def test_command_validation():
    np.testing.assert_array_equal(
        command_to_array(float64_multiarray([1, 2, 3]), JOINTS), [1, 2, 3]
    )
    with pytest.raises(ValueError, match=r"has 2 values; expected 3 joints \['a', 'b', 'c'\]"):
        command_to_array(float64_multiarray([1, 2]), JOINTS)
    with pytest.raises(ValueError, match=r"NaN/Inf for \['c'\]"):
        command_to_array(float64_multiarray([1, 2, math.inf]), JOINTS)


def test_trajectory_round_trip():
    positions = np.array([[0.0, 1.0], [0.5, 2.0]])
    velocities = np.array([[0.1, 0.2], [0.0, 0.0]])
    msg = joint_trajectory_msg(["b", "a"], [0.5, 1.25], positions, velocities)
    traj = trajectory_to_arrays(msg, JOINTS)
    assert traj.joint_names == ("b", "a")
    np.testing.assert_allclose(traj.times, [0.5, 1.25])
    np.testing.assert_array_equal(traj.positions, positions)
    np.testing.assert_array_equal(traj.velocities, velocities)
    assert (
        trajectory_to_arrays(joint_trajectory_msg(["a"], [1.0], np.ones((1, 1))), JOINTS).velocities
        is None
    )


@pytest.mark.parametrize(
    "names, times, positions, match",
    [
        (["a", "x"], [1.0], [[0, 0]], r"unknown joint\(s\) \['x'\]"),
        (["a", "a"], [1.0], [[0, 0]], "duplicates"),
        (["a"], [1.0, 1.0], [[0], [1]], "increasing"),
        (["a"], [2.0, 1.0], [[0], [1]], "increasing"),
        (["a", "b"], [1.0], [[0]], "point 0 has 1 positions; expected 2"),
        (["a"], [1.0], [[math.nan]], "NaN/Inf"),
        ([], [1.0], [[]], "unknown joint"),
    ],
)
def test_bad_trajectories_are_rejected(names, times, positions, match):
    msg = JointTrajectory()
    msg.joint_names = names
    full = joint_trajectory_msg(["_"] * len(positions[0]), times, np.array(positions, dtype=float))
    msg.points = full.points
    with pytest.raises(ValueError, match=match):
        trajectory_to_arrays(msg, JOINTS)


def test_empty_trajectory_is_rejected():
    with pytest.raises(ValueError, match="no points"):
        trajectory_to_arrays(JointTrajectory(joint_names=["a"]), JOINTS)


def test_pose_stamped():
    msg = pose_stamped_msg(np.array([1.0, 2.0, 3.0]), np.array([0, 0, 0, 1.0]), "world")
    assert (msg.pose.position.z, msg.pose.orientation.w, msg.header.frame_id) == (3.0, 1.0, "world")


def test_linear_sampler_starts_at_current_position_and_holds_at_the_end():
    sampler = TrajectorySampler(
        np.array([0.0, 1.0]), np.array([1.0, 3.0]), np.array([[1.0, 1.0], [3.0, -1.0]])
    )
    np.testing.assert_allclose(sampler.sample(0.0), [0.0, 1.0])
    np.testing.assert_allclose(sampler.sample(0.5), [0.5, 1.0])
    np.testing.assert_allclose(sampler.sample(2.0), [2.0, 0.0])
    np.testing.assert_allclose(sampler.sample(10.0), [3.0, -1.0])
    assert sampler.duration == 3.0


def test_cubic_sampler_matches_positions_and_velocities_at_the_knots():
    times = np.array([0.0, 1.0, 2.0])
    positions = np.array([[0.0], [1.0], [0.0]])
    velocities = np.array([[0.0], [0.0], [0.0]])
    sampler = TrajectorySampler(np.zeros(1), times, positions, velocities)
    for t, q in zip(times, positions, strict=True):
        np.testing.assert_allclose(sampler.sample(t), q, atol=1e-12)
    # Hermite with zero end velocities is the smoothstep 3s^2 - 2s^3 on each segment.
    np.testing.assert_allclose(sampler.sample(0.25), [3 * 0.25**2 - 2 * 0.25**3])
    eps = 1e-6
    slope = (sampler.sample(1.0 + eps) - sampler.sample(1.0 - eps)) / (2 * eps)
    np.testing.assert_allclose(slope, [0.0], atol=1e-5)
