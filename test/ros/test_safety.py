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
    # NaN: the verdict names the joint, and q keeps b's last good reading (per joint)
    s = dog.observe(["a", "b", "c"], [1.5, math.nan, 3.0], [0, 0, 0], 1.05)
    assert s.state == safety.NAN and "'b'" in s.detail
    np.testing.assert_array_equal(s.q, [1.5, 2.0, 3.0])
    s = dog.observe(["a", "b", "c"], [1.5, 2.0, 3.0], [0, math.inf, 0], 1.06)
    assert s.state == safety.NAN
    # structurally broken: names and positions disagree
    s = dog.observe(["a", "b", "c"], [1.0, 2.0], [], 1.07)
    assert s.state == safety.BAD_NAMES and "3 names but 2 positions" in s.detail
    s = dog.observe(["a", "a", "c"], [1.0, 2.0, 3.0], [], 1.08)
    assert s.state == safety.BAD_NAMES and "twice" in s.detail
    # good again: recovers at once
    assert dog.observe(["a", "b", "c"], [1.1, 2.1, 3.1], [0, 0, 0], 1.2).ok
    # mis-named: messages keep coming but never name c; once c's reading is older than
    # stale_after, c is named with the expected list
    assert dog.observe(["a", "b", "wrist"], [1.0, 2.0, 3.0], [0, 0, 0], 1.3).ok
    s = dog.observe(["a", "b", "wrist"], [1.0, 2.0, 3.0], [0, 0, 0], 1.36)
    assert s.state == safety.BAD_NAMES and "['c']" in s.detail and "wrist" in s.detail
    assert dog.observe(["a", "b", "c"], [1.1, 2.1, 3.1], [0, 0, 0], 1.4).ok
    # stale: older than stale_after; the age is in the message; q is the last good one
    assert dog.status(1.54).ok
    s = dog.status(1.56)
    assert s.state == safety.STALE and "0.160 s" in s.detail
    np.testing.assert_array_equal(s.q, [1.1, 2.1, 3.1])
    assert dog.observe(["a", "b", "c"], [1.1, 2.1, 3.1], [0, 0, 0], 1.6).ok


def test_watchdog_merges_several_publishers_by_name_with_per_joint_staleness():
    """An arm driver for a, b and a second driver for c (plus a gripper-only driver): the
    state is merged by joint name; a reading of other joints only refreshes nothing."""
    dog = safety.JointStateWatchdog(JOINTS, stale_after=0.15)
    s = dog.observe(["a", "b"], [1.0, 2.0], [0, 0], 0.0)
    assert s.state == safety.NO_STATE or s.state == safety.BAD_NAMES
    assert s.q is None  # c never seen: nothing to plan from
    t = 0.0
    for _ in range(20):  # 3 publishers interleaved at 50 Hz, none of them has every joint
        t += 0.02
        assert dog.observe(["c"], [3.0], [0.0], t).state in (safety.OK, safety.BAD_NAMES)
        assert dog.observe(["gripper"], [0.5], [0.0], t).ok or t < 0.03
        assert dog.observe(["b", "a"], [2.0, 1.0], [0.0, 0.0], t).ok
    np.testing.assert_array_equal(dog.status(t).q, [1.0, 2.0, 3.0])
    # the c driver dies; the a/b driver and the gripper go on: c goes stale on its own
    for _ in range(10):
        t += 0.02
        dog.observe(["b", "a"], [2.0, 1.0], [0.0, 0.0], t)
        s = dog.observe(["gripper"], [0.5], [0.0], t)
    assert s.state == safety.BAD_NAMES and "['c'] missing" in s.detail


def _plausible_dog(confirm_after: float = 0.15) -> safety.JointStateWatchdog:
    p = safety.Plausibility(
        lower=np.full(3, -2.0), upper=np.full(3, 2.0), velocity=np.full(3, 1.0),
        period=0.05, confirm_after=confirm_after,
    )  # fmt: skip
    return safety.JointStateWatchdog(JOINTS, stale_after=0.15, plausible=p)


def test_watchdog_rejects_absurd_and_jumped_states():
    dog = _plausible_dog()
    assert dog.observe(JOINTS, [0.0, 0.0, 0.0], [0, 0, 0], 0.0).ok
    # finite but absurd: 1e300 rad, a velocity 100x the limit
    s = dog.observe(JOINTS, [1e300, 0.0, 0.0], [0, 0, 0], 0.05)
    assert s.state == safety.OUT_OF_RANGE and "'a'" in s.detail and "1e+300" in s.detail
    np.testing.assert_array_equal(s.q, [0.0, 0.0, 0.0])
    s = dog.observe(JOINTS, [0.0, 0.0, 0.0], [0, 100.0, 0], 0.1)
    assert s.state == safety.OUT_OF_RANGE and "'b'" in s.detail
    assert dog.observe(JOINTS, [0.05, 0.0, 0.0], [0, 0, 0], 0.15).ok  # 1 rad/s: possible
    # 2 rad in one period at 1 rad/s: impossible; the last good reading is kept (to hold)
    s = dog.observe(JOINTS, [0.05, 2.0, 0.0], [0, 0, 0], 0.2)
    assert s.state == safety.JUMP and "'b' jumped +2.0000 rad" in s.detail
    np.testing.assert_array_equal(s.q, [0.05, 0.0, 0.0])
    # the attack: a crafted pose alternating with NaN and the true pose, for ever;
    # the crafted pose is never accepted
    t = 0.2
    for k in range(60):
        t += 0.01
        q = [[0.05, 2.0, 0.0], [0.05, math.nan, 0.0], [0.05, 0.0, 0.0]][k % 3]
        s = dog.observe(JOINTS, q, [0, 0, 0], t)
        assert s.q is None or abs(s.q[1]) < 0.1
    # a jumped position that persists (3+ readings over confirm_after) is where the arm is
    for _ in range(5):
        t += 0.05
        s = dog.observe(JOINTS, [0.05, 1.0, 0.0], [0, 0, 0], t)
    assert s.ok and s.q[1] == 1.0


def test_watchdog_rebase_accepts_a_jump_when_commanding_starts():
    dog = _plausible_dog(confirm_after=10.0)
    dog.observe(JOINTS, [0.0, 0.0, 0.0], [0, 0, 0], 0.0)
    assert dog.observe(JOINTS, [1.0, -1.0, 0.5], [0, 0, 0], 0.05).state == safety.JUMP
    dog.rebase()  # (a sim reset while disabled, then ~/enable)
    s = dog.status(0.06)
    assert s.ok
    np.testing.assert_array_equal(s.q, [1.0, -1.0, 0.5])


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


def test_every_command_is_rate_limited_against_the_last_command_sent():
    lim = safety.CommandLimiter(np.full(2, -3.0), np.full(2, 3.0), np.full(2, 2.0), period=0.05)
    assert lim.hold_command(0.0) is None  # nothing sent since start: nothing to hold
    # the first command starts from the measured position
    np.testing.assert_allclose(lim.command(np.array([1.0, 0.0]), np.zeros(2), 0.0), [0.1, 0.0])
    # later ones from the last command sent, whatever the measured state claims (2 rad away)
    np.testing.assert_allclose(
        lim.command(np.array([2.0, 0.0]), np.array([2.0, 0.0]), 0.05), [0.2, 0.0]
    )
    # a hold repeats the last command: no jump toward a (crafted) measured position
    np.testing.assert_allclose(lim.hold_command(0.1), [0.2, 0.0])
    # restart after the hold: still from the last command
    np.testing.assert_allclose(lim.command(np.array([-2.0, 0.0]), np.ones(2), 0.15), [0.1, 0.0])
    # disabled and re-enabled: from the measured position again
    lim.forget()
    np.testing.assert_allclose(lim.command(np.array([3.0, 1.0]), np.ones(2), 0.2), [1.1, 1.0])
    with pytest.raises(ValueError, match="finite"):
        lim.command(np.array([math.nan, 0.0]), np.zeros(2), 0.25)


def test_timed_limiter_bounds_speed_whatever_the_command_rate():
    """Real time: 200 commands/s (a tick driven by a fast joint-state publisher) still move
    at most the speed limit over any window."""
    lim = safety.CommandLimiter(np.full(1, -9.0), np.full(1, 9.0), np.full(1, 1.0), 0.05, True)
    sent = [lim.command(np.array([9.0]), np.zeros(1), 0.0)[0]]
    times = [0.0]
    for k in range(1, 200):
        times.append(k * 0.005)
        sent.append(lim.command(np.array([9.0]), np.zeros(1), times[-1])[0])
    for i in range(len(sent)):
        for j in range(i, len(sent)):
            assert abs(sent[j] - sent[i]) <= 1.0 * (times[j] - times[i]) + 1e-9 + (i == 0) * 0.05
    # untimed (lockstep): one period's step per command
    lim = safety.CommandLimiter(np.full(1, -9.0), np.full(1, 9.0), np.full(1, 1.0), 0.05)
    lim.command(np.array([9.0]), np.zeros(1), 0.0)
    assert lim.command(np.array([9.0]), np.zeros(1), 0.0)[0] == pytest.approx(0.1)
