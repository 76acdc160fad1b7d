"""SimArm against real PyBullet: kinematics of the bundled URDF, the servo model, state,
several clients side by side, and other URDFs loaded by configuration alone."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from mbrl.config import ArmConfig, ConfigError, ServoConfig, load_arm_config
from mbrl.sim.arm import SimArm

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"


@pytest.fixture
def arm():
    with SimArm(seed=0) as a:
        yield a


def _servo(**kwargs) -> ArmConfig:
    return ArmConfig(servo=ServoConfig(**kwargs))


def test_bundled_arm_matches_so101_kinematics(arm):
    assert arm.joint_names == ArmConfig().joint_names
    np.testing.assert_allclose(arm.lower, [-1.91986, -1.74533, -1.69, -1.65806, -2.79253])
    np.testing.assert_allclose(arm.upper, [1.91986, 1.74533, 1.57, 1.65806, 2.79253])
    np.testing.assert_allclose(arm.velocity_limit, 4.71)  # STS3215 at 12 V
    np.testing.assert_allclose(arm.effort_limit, 2.94)
    # Zero pose is an "L": pan 0.095 + lift offset (0.0304, 0.0542), upper arm 0.1126 up and
    # 0.028 forward, then forearm 0.1349, wrist 0.0611 and gripper 0.098 along +x.
    arm.reset(np.zeros(5))
    expected = [0.0304 + 0.028 + 0.1349 + 0.0611 + 0.098, 0.0, 0.095 + 0.0542 + 0.11257]
    np.testing.assert_allclose(arm.ee_position(), expected, atol=1e-6)
    assert "so_arm" in arm.urdf_text and Path(arm.urdf_path).is_file()


def test_targets_are_clamped_and_bad_targets_rejected(arm):
    clamped = arm.set_position_targets(np.array([5.0, -5.0, 0.0, 0.0, 0.0]))
    np.testing.assert_allclose(clamped[:2], [arm.upper[0], arm.lower[1]])
    with pytest.raises(ValueError, match=r"shape \(4,\); expected \(5,\)"):
        arm.set_position_targets(np.zeros(4))
    with pytest.raises(ValueError, match="NaN/Inf"):
        arm.set_position_targets(np.array([0, 0, np.nan, 0, 0]))


def test_servo_tracks_a_target_within_its_velocity_limit(arm):
    target = arm.home + np.array([0.6, -0.3, 0.4, 0.3, 0.5])
    arm.set_position_targets(target)
    peak = 0.0
    for _ in range(20):  # 1 s
        arm.step()
        peak = max(peak, np.abs(arm.joint_velocities()).max())
    np.testing.assert_allclose(arm.joint_positions(), target, atol=0.01)
    assert peak <= arm.velocity_limit.max() * 1.05
    assert arm.time == pytest.approx(1.0)


def test_torque_limit_lets_a_weak_shoulder_sag():
    with SimArm(_servo(max_torque=0.05)) as weak, SimArm() as strong:
        for a in (weak, strong):
            # Upper arm leaning forward, forearm level: ~0.7 N m of gravity on the shoulder.
            a.reset(np.array([0.0, 0.9, -0.9, 0.0, 0.0]))
            a.step(10)
        assert abs(strong.joint_positions()[1] - 0.9) < 0.01
        assert weak.joint_positions()[1] > 1.0  # 0.05 N m cannot hold the arm up


def test_latency_delays_the_command_by_one_tick():
    with SimArm(_servo(latency_ticks=1)) as late, SimArm() as prompt:
        for a in (late, prompt):
            a.set_position_targets(a.home + np.array([0.3, 0, 0, 0, 0]))
            a.step()
        assert prompt.joint_positions()[0] > 0.1
        assert abs(late.joint_positions()[0]) < 1e-6
        late.step()
        assert late.joint_positions()[0] > 0.1


def test_backlash_dead_band_swallows_small_commands():
    with SimArm(_servo(backlash=0.1)) as a:
        a.set_position_targets(a.home + np.array([0.04, 0, 0, 0, 0]))
        a.step(5)
        assert abs(a.joint_positions()[0] - a.home[0]) < 1e-4  # inside the 0.05 half band
        a.set_position_targets(a.home + np.array([0.2, 0, 0, 0, 0]))
        a.step(5)
        assert a.joint_positions()[0] == pytest.approx(a.home[0] + 0.15, abs=2e-3)


def test_measurement_noise_is_seeded_and_fixed_within_a_tick():
    cfg = _servo(noise_std=0.01)
    with SimArm(cfg, seed=3) as a, SimArm(cfg, seed=3) as b, SimArm(cfg, seed=4) as c:
        np.testing.assert_array_equal(a.joint_positions(), a.joint_positions())
        a.step()
        b.step()
        c.step()
        np.testing.assert_array_equal(a.joint_positions(), b.joint_positions())
        assert not np.array_equal(a.joint_positions(), c.joint_positions())
        assert 0.001 < np.abs(a.joint_positions() - a.home).max() < 0.05


def test_save_restore_replays_bit_identically():
    cfg = _servo(noise_std=0.01, latency_ticks=1, backlash=0.02)
    with SimArm(cfg, with_cube=True, seed=1) as a:
        rng = np.random.default_rng(0)
        commands = a.home + rng.uniform(-0.5, 0.5, (15, 5))
        state = a.save_state()
        first = []
        for q in commands:
            a.set_position_targets(q)
            a.step()
            first.append(np.concatenate([a.joint_positions(), a.ee_position(), a.cube_pose()[0]]))
        a.restore_state(state)
        for q, expected in zip(commands, first, strict=True):
            a.set_position_targets(q)
            a.step()
            got = np.concatenate([a.joint_positions(), a.ee_position(), a.cube_pose()[0]])
            np.testing.assert_array_equal(got, expected)
        a.discard_state(state)
        with pytest.raises(KeyError, match="unknown state id"):
            a.restore_state(state)


def test_arms_in_one_process_are_independent():
    with SimArm() as a, SimArm() as b:
        assert a.client.id != b.client.id
        a.set_position_targets(a.home + 0.3)
        a.step(10)
        b.step(10)
        np.testing.assert_allclose(b.joint_positions(), b.home, atol=1e-3)
        assert np.abs(a.joint_positions() - a.home).min() > 0.2


def test_cube_pose_round_trip_and_render():
    with SimArm(with_cube=True) as a:
        a.set_cube_pose([0.2, 0.05, 0.02])
        pos, quat = a.cube_pose()
        np.testing.assert_allclose(pos, [0.2, 0.05, 0.02], atol=1e-9)
        np.testing.assert_allclose(quat, [0, 0, 0, 1], atol=1e-9)
        img = a.render(64, 48)
        assert img.shape == (48, 64, 3) and img.dtype == np.uint8 and img.std() > 5
    with SimArm() as a:
        assert a.cube_pose() is None
        with pytest.raises(RuntimeError, match="no cube"):
            a.set_cube_pose([0, 0, 0])


def test_collision_check_sees_self_and_table_contact(arm):
    assert not arm.in_collision()  # home
    arm.reset(np.array([0.0, 0.0, 1.57, 1.6, 0.0]))  # gripper folded back into the shoulder
    assert arm.ee_position()[2] > 0.1 and arm.in_collision()
    arm.reset(np.array([0.0, 1.7, 0.0, 0.0, 0.0]))  # arm pointed through the table
    assert arm.in_collision()


def test_close_is_idempotent():
    a = SimArm()
    a.close()
    a.close()


@pytest.mark.parametrize(
    ("config_file", "n_joints"),
    [("arm_iiwa.yaml", 7), ("arm_panda.yaml", 7), ("arm_so101.yaml", 5)],
)
def test_other_urdfs_load_by_configuration_alone(config_file, n_joints):
    config = load_arm_config(CONFIG_DIR / config_file)
    with SimArm(config) as a:
        assert len(a.joint_names) == n_joints and not a.in_collision()
        np.testing.assert_allclose(a.joint_positions(), a.home, atol=1e-9)
        start = a.ee_position()
        target = a.set_position_targets(a.home + 0.2)
        a.step(20)
        np.testing.assert_allclose(a.joint_positions(), target, atol=0.02)
        assert np.linalg.norm(a.ee_position() - start) > 0.02


def test_config_overrides_take_precedence_over_the_urdf():
    config = ArmConfig(velocity_limit=(1.0,) * 5, servo=ServoConfig(max_torque=1.5))
    with SimArm(config) as a:
        np.testing.assert_allclose(a.velocity_limit, 1.0)
        np.testing.assert_allclose(a.effort_limit, 1.5)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"joint_names": ("shoulder_pan", "elbow")}, r"\['elbow'\] are not revolute"),
        ({"ee_link": "hand"}, "arm.ee_link 'hand' is not a link"),
        ({"gripper_joints": ("claw",)}, r"arm.gripper_joints \['claw'\]"),
        ({"urdf": "ftp://x.urdf"}, "unknown scheme"),
        ({"urdf": "package://mbrl/missing.urdf"}, "does not exist"),
        ({"home": (0.0, 0.0, 3.0, 0.0, 0.0)}, r"outside the limits for joints \['elbow_flex'\]"),
        ({"position_lower": (1.0,) * 5, "position_upper": (0.0,) * 5}, "no usable position"),
    ],
)
def test_bad_configuration_names_the_problem(change, message):
    with pytest.raises(ConfigError, match=message):
        SimArm(dataclasses.replace(ArmConfig(), **change))


def test_pybullet_and_pytorch_kinematics_agree_on_the_bundled_urdf(arm):
    """mbrl.costs computes FK from the same URDF text with pytorch-kinematics; the two must
    put the EE at the same place, or planned costs would not match the simulated arm."""
    import pytorch_kinematics as pk
    import torch

    chain = pk.build_serial_chain_from_urdf(arm.urdf_text.encode(), "ee_tip")
    chain = chain.to(dtype=torch.float64)
    assert chain.get_joint_parameter_names() == list(arm.joint_names)
    rng = np.random.default_rng(0)
    for _ in range(20):
        q = rng.uniform(arm.lower, arm.upper)
        arm.reset(q)
        fk = chain.forward_kinematics(torch.from_numpy(q[None])).get_matrix()[0, :3, 3]
        np.testing.assert_allclose(fk.numpy(), arm.ee_position(), atol=1e-6)
