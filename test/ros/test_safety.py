"""The controller's safety rules and exploration without ROS: watchdog verdicts, command
limits, state layouts, coloured exploration noise."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mbrl.ros import safety

JOINTS = ("a", "b", "c")


def test_watchdog_verdicts_and_recovery():
    dog = safety.JointStateWatchdog(JOINTS, stale_after=0.15)
    assert dog.status(0.0).state == safety.NO_STATE
    # by name: order and extra joints in the message do not matter
    s = dog.observe(["c", "gripper", "a", "b"], [3.0, 9.0, 1.0, 2.0], [0.3, 0, 0.1, 0.2], 1.0)
    assert s.ok
    np.testing.assert_array_equal(s.q, [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(s.qdot, [0.1, 0.2, 0.3])
    # NaN: the verdict names the joint, and q stays the last good reading (what to hold)
    s = dog.observe(["a", "b", "c"], [1.5, math.nan, 3.0], [0, 0, 0], 1.05)
    assert s.state == safety.NAN and "'b'" in s.detail
    np.testing.assert_array_equal(s.q, [1.0, 2.0, 3.0])
    s = dog.observe(["a", "b", "c"], [1.5, 2.0, 3.0], [0, math.inf, 0], 1.06)
    assert s.state == safety.NAN
    # mis-named: a missing joint is named with the expected list
    s = dog.observe(["a", "b", "wrist"], [1.0, 2.0, 3.0], [0, 0, 0], 1.1)
    assert s.state == safety.BAD_NAMES and "['c']" in s.detail and "wrist" in s.detail
    s = dog.observe(["a", "b", "c"], [1.0, 2.0], [], 1.12)
    assert s.state == safety.BAD_NAMES
    # good again: recovers at once
    assert dog.observe(["a", "b", "c"], [1.1, 2.1, 3.1], [0, 0, 0], 1.2).ok
    # stale: older than stale_after; the age is in the message; q is the last good one
    assert dog.status(1.34).ok
    s = dog.status(1.36)
    assert s.state == safety.STALE and "0.160 s" in s.detail
    np.testing.assert_array_equal(s.q, [1.1, 2.1, 3.1])
    assert dog.observe(["a", "b", "c"], [1.1, 2.1, 3.1], [0, 0, 0], 1.4).ok


def test_watchdog_finite_differences_without_velocities():
    dog = safety.JointStateWatchdog(JOINTS, stale_after=1.0)
    dog.observe(JOINTS, [0.0, 0.0, 0.0], [], 0.0)
    s = dog.observe(JOINTS, [0.1, -0.2, 0.0], [], 0.05)
    np.testing.assert_allclose(s.qdot, [2.0, -4.0, 0.0])


def test_watchdog_rejects_bad_settings():
    with pytest.raises(ValueError, match="stale_after"):
        safety.JointStateWatchdog(JOINTS, 0.0)
    with pytest.raises(ValueError, match="at least one joint"):
        safety.JointStateWatchdog((), 1.0)


def test_command_limiter_clamps_speed_then_position():
    lim = safety.CommandLimiter(np.array([-1.0, -1.0]), np.array([1.0, 1.0]),
                                np.array([2.0, 4.0]), period=0.05)  # fmt: skip
    np.testing.assert_allclose(lim.max_step, [0.1, 0.2])
    # 0.5 rad in one tick is too fast: limited to 0.1 / 0.2 rad from the previous command
    np.testing.assert_allclose(lim.clamp(np.array([0.5, -0.5]), np.zeros(2)), [0.1, -0.2])
    # near a stop the position limit wins
    np.testing.assert_allclose(lim.clamp(np.array([1.3, 0.0]), np.array([0.95, 0.0])), [1.0, 0.0])
    np.testing.assert_allclose(lim.clamp(np.array([5.0, -5.0]), None), [1.0, -1.0])
    np.testing.assert_allclose(lim.hold(np.array([1.2, 0.3])), [1.0, 0.3])
    with pytest.raises(ValueError, match="finite"):
        lim.clamp(np.array([math.nan, 0.0]), None)
    with pytest.raises(ValueError, match="2 finite"):
        lim.clamp(np.zeros(3), None)
    with pytest.raises(ValueError, match="lower < upper"):
        safety.CommandLimiter(np.ones(2), np.zeros(2), np.ones(2), 0.05)
