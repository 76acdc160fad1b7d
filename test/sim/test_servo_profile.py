"""The realistic servo profile (STS3215 on the SO-101) against real PyBullet: encoder counts,
a tick of latency, backlash, lost reads, differenced velocities and the MJCF actuator's
torque-limited dynamics, and how an arm file or the command line selects it."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from mbrl.config import (
    ENCODER_TICK,
    SERVO_PROFILES,
    ArmConfig,
    ConfigError,
    ServoConfig,
    arm_from_options,
    from_dict,
)
from mbrl.sim.arm import SimArm

REALISTIC = SERVO_PROFILES["realistic"]


def _arm(servo: ServoConfig, seed: int = 0) -> SimArm:
    return SimArm(ArmConfig(servo=servo), seed=seed)


def _step_to(arm: SimArm, target: np.ndarray, ticks: int) -> list[np.ndarray]:
    out = []
    for _ in range(ticks):
        arm.set_position_targets(target)
        arm.step(1)
        out.append(arm.true_joint_positions())
    return out


def test_profiles_hold_the_sts3215_figures():
    assert REALISTIC.drive == "pd" and (REALISTIC.kp, REALISTIC.kv) == (998.22, 2.731)
    assert (REALISTIC.damping, REALISTIC.friction, REALISTIC.armature) == (0.60, 0.052, 0.028)
    assert REALISTIC.resolution == pytest.approx(0.0015, abs=1e-4) == ENCODER_TICK
    assert REALISTIC.backlash == pytest.approx(math.radians(1.0))
    assert REALISTIC.latency_ticks == 1 and 0 < REALISTIC.read_drop < 0.1
    assert REALISTIC.velocity == "difference"
    assert SERVO_PROFILES["ideal"] == ServoConfig()


def test_readings_are_whole_encoder_counts_and_the_ideal_profile_reads_the_truth():
    with _arm(REALISTIC) as arm, _arm(ServoConfig()) as ideal:
        for a in (arm, ideal):
            target = a.joint_positions() + np.array([0.3, -0.2, 0.25, 0.1, -0.4])
            _step_to(a, target, 10)
        counts = arm.joint_positions() / ENCODER_TICK
        np.testing.assert_allclose(counts, np.round(counts), atol=1e-9)
        assert (
            np.abs(arm.joint_positions() - arm.true_joint_positions()).max()
            <= (ENCODER_TICK / 2 + 1e-12)
            or arm.config.servo.read_drop > 0
        )
        np.testing.assert_array_equal(ideal.joint_positions(), ideal.true_joint_positions())


def test_a_command_takes_effect_one_tick_late_and_the_drive_is_torque_limited():
    servo = dataclasses.replace(REALISTIC, read_drop=0.0, backlash=0.0)
    with _arm(servo) as arm, _arm(ServoConfig()) as ideal:
        start = arm.true_joint_positions()
        target = start + np.array([0.0, 0.4, 0.0, 0.0, 0.0])
        real = np.array(_step_to(arm, target, 20))[:, 1] - start[1]
        perfect = np.array(_step_to(ideal, target, 1))[:, 1] - start[1]
    assert perfect[0] > 0.15  # the position constraint moves at once (at its 4.71 rad/s)
    assert abs(real[0]) < 0.01  # the servo has not seen the command yet
    # then accelerates at the torque limit (2.94 N m on ~0.03 kg m^2): 0.4 rad takes 2+ ticks
    assert 0.02 < real[1] < 0.3
    assert abs(real[-1] - 0.4) < 0.01  # and settles (MJCF kp 998 N m/rad against gravity)
    # the speed stays near the STS3215's no-load 4.7 rad/s (damping 0.6 against 2.94 N m)
    assert np.abs(np.diff(real)).max() / arm.config.control_period < 5.5


def test_backlash_leaves_a_dead_band_on_reversal():
    servo = dataclasses.replace(REALISTIC, read_drop=0.0, latency_ticks=0)
    with _arm(servo) as arm:
        q0 = arm.true_joint_positions()
        up = q0 + np.array([0.0, 0.0, 0.2, 0.0, 0.0])
        _step_to(arm, up, 15)
        high = arm.true_joint_positions()[2]
        # reversing by less than the band moves nothing; by more, the excess
        small = up - np.array([0.0, 0.0, 0.5 * servo.backlash, 0.0, 0.0])
        _step_to(arm, small, 15)
        assert abs(arm.true_joint_positions()[2] - high) < 2e-3
        _step_to(arm, up - np.array([0.0, 0.0, 0.1, 0.0, 0.0]), 15)
        moved = high - arm.true_joint_positions()[2]
        assert 0.1 - servo.backlash - 3e-3 < moved < 0.1 - servo.backlash / 2 + 3e-3


def test_lost_reads_repeat_the_previous_reading_and_velocity_is_a_difference():
    servo = dataclasses.replace(REALISTIC, read_drop=0.3)
    with _arm(servo, seed=3) as arm:
        q = arm.joint_positions()
        readings, speeds = [q], []
        for k in range(40):
            arm.set_position_targets(q + 0.05 * (k + 1) * np.array([1, -1, 1, 1, -1]))
            arm.step(1)
            readings.append(arm.joint_positions())
            speeds.append(arm.joint_velocities())
    moving = np.abs(np.diff(readings, axis=0)).max(axis=1)
    stale = np.flatnonzero(moving == 0.0)
    assert 4 <= len(stale) <= 24  # ~30 % of 40 ticks repeat their reading exactly
    # a good read after lost ones divides by the time since the last good read
    k = next(i for i in range(1, 40) if moving[i] > 0 and moving[i - 1] == 0)
    j = k  # readings[j]: the last good read before readings[k + 1]
    while j > 0 and moving[j - 1] == 0:
        j -= 1
    elapsed = (k + 1 - j) * arm.config.control_period
    np.testing.assert_allclose(speeds[k], (readings[k + 1] - readings[j]) / elapsed, atol=1e-9)


def test_save_restore_replays_the_realistic_servo_bit_for_bit():
    with _arm(REALISTIC, seed=1) as arm:
        target = arm.joint_positions() + 0.2
        _step_to(arm, target, 3)
        snap = arm.save_state()
        first = [(arm.step(1), arm.joint_positions(), arm.joint_velocities())[1:] for _ in range(8)]
        arm.restore_state(snap)
        again = [(arm.step(1), arm.joint_positions(), arm.joint_velocities())[1:] for _ in range(8)]
    for (q1, v1), (q2, v2) in zip(first, again, strict=True):
        np.testing.assert_array_equal(q1, q2)
        np.testing.assert_allclose(v1, v2, atol=1e-12)


def test_reading_faster_than_the_control_rate_leaves_the_motion_unchanged():
    """advance() in thirds of a tick (a 60 Hz joint-state broadcaster on 240 Hz physics)
    moves the arm bit for bit as step() does: the servo takes its target (latency,
    backlash) at the tick boundaries only; the reads in between show intermediate poses."""
    servo = dataclasses.replace(REALISTIC, read_drop=0.0, noise_std=0.0)
    with _arm(servo) as whole, _arm(servo) as thirds:
        start = whole.joint_positions()
        third = whole.config.substeps // 3
        for k in range(6):
            target = start + 0.1 * (k + 1) * (-1) ** k
            whole.set_position_targets(target)
            thirds.set_position_targets(target)
            whole.step(1)
            between = []
            for _ in range(3):
                thirds.advance(third)
                between.append(thirds.true_joint_positions())
            np.testing.assert_array_equal(thirds.true_joint_positions(),
                                          whole.true_joint_positions())  # fmt: skip
            assert thirds.time == whole.time
            assert not np.array_equal(between[0], between[2])  # the arm moved within the tick


def test_an_arm_file_selects_a_profile_by_name_and_changes_single_figures():
    arm = from_dict(ArmConfig, {"servo": "realistic"}, "arm")
    assert arm.servo == REALISTIC
    arm = from_dict(ArmConfig, {"servo": {"profile": "realistic", "read_drop": 0.0}}, "arm")
    assert arm.servo == dataclasses.replace(REALISTIC, read_drop=0.0)
    assert from_dict(ArmConfig, {"servo": {"backlash": 0.01}}, "arm").servo.drive == "position"
    with pytest.raises(ConfigError, match="arm.servo.profile 'cheap' unknown"):
        from_dict(ArmConfig, {"servo": "cheap"}, "arm")
    with pytest.raises(ConfigError, match="servo.drive"):
        ServoConfig(drive="torque")
    # the command line: --servo replaces the arm file's servo
    iiwa = arm_from_options("config/arm_iiwa.yaml", "realistic")
    assert iiwa.joint_names[0] == "lbr_iiwa_joint_1" and iiwa.servo == REALISTIC
    assert arm_from_options(None, None) == ArmConfig()
    with pytest.raises(ConfigError, match="servo profile 'x' unknown"):
        arm_from_options(None, "x")
