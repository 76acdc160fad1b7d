"""The sim node over real DDS: a separate process, real PyBullet, talked to with rclpy."""

from __future__ import annotations

import numpy as np
import pytest
import rclpy
from ros_helpers import Client, Sim, start_sim
from std_msgs.msg import String

from mbrl.config import ArmConfig
from mbrl.ros.msgs import (
    float64_multiarray,
    joint_positions_by_name,
    joint_trajectory_msg,
    joint_velocities_by_name,
    to_seconds,
)
from mbrl.ros.sim_node import LATCHED_QOS

pytestmark = pytest.mark.ros

JOINTS = ArmConfig().joint_names
# Limits of the bundled URDF (src/mbrl/assets/so_arm.urdf).
LOWER = np.array([-1.91986, -1.74533, -1.69, -1.65806, -2.79253])
UPPER = np.array([1.91986, 1.74533, 1.57, 1.65806, 2.79253])
# Slower than the URDF's 4.71 rad/s: the servo limit comes from the parameter, and a bad
# command surely arrives mid-move even on a loaded machine.
VELOCITY_LIMIT = 1.0


@pytest.fixture(scope="module")
def sim(ros_context):
    runner, output = start_sim({"timing": "realtime", "arm.servo.max_velocity": VELOCITY_LIMIT})
    try:
        client = Client(rclpy.create_node("test_sim_client"))
        s = Sim(runner, output, client)
        s.wait_ready()
        yield s
        runner.check()  # the node must have survived every test
    finally:
        runner.shutdown()


def test_joint_states_name_every_joint_with_stamps(sim):
    msg = sim.client.states[-1]
    assert list(msg.name) == [*JOINTS, "gripper"]
    assert len(msg.position) == len(msg.velocity) == 6
    assert to_seconds(msg.header.stamp) > 1e9  # wall-clock stamps in realtime mode
    stamps = [to_seconds(m.header.stamp) for m in sim.client.states[-5:]]
    assert np.all(np.diff(stamps) > 0)


def test_robot_description_is_latched_for_late_joiners(sim):
    got: list[String] = []
    sim.client.node.create_subscription(String, "/robot_description", got.append, LATCHED_QOS)
    assert sim.client.spin_until(lambda: bool(got))
    assert '<robot name="so_arm">' in got[0].data


def test_command_moves_arm_to_target_within_servo_limits(sim):
    sim.reset()
    target = np.array([0.6, -0.4, 0.5, 0.3, -0.8])
    start = len(sim.client.states)
    sim.commands.publish(float64_multiarray(target))
    assert sim.settle(target), f"arm at {sim.q()}, commanded {target}"
    motion = np.array([joint_positions_by_name(m, JOINTS) for m in sim.client.states[start:]])
    speeds = np.abs([joint_velocities_by_name(m, JOINTS) for m in sim.client.states[start:]])
    assert np.all(motion >= LOWER - 1e-3) and np.all(motion <= UPPER + 1e-3)
    assert speeds.max() <= VELOCITY_LIMIT * 1.05
    assert speeds.max() > 0.8 * VELOCITY_LIMIT  # it really moved, as fast as allowed


def test_command_outside_limits_is_clamped(sim):
    sim.reset()
    target = np.array([3.0, 0.0, 0.0, 0.0, -9.0])
    sim.commands.publish(float64_multiarray(target))
    clamped = np.clip(target, LOWER, UPPER)
    assert sim.settle(clamped, tol=0.03), f"arm at {sim.q()}, expected {clamped}"
    assert "outside the joint limits" in sim.output.text()


def test_joint_trajectory_is_followed(sim):
    sim.reset()
    q0 = sim.q()
    names = ["shoulder_pan", "elbow_flex"]
    times = [1.0, 2.0]
    waypoints = np.array([[0.5, 0.4], [-0.3, 0.8]])
    start = len(sim.client.states)
    sim.trajectory.publish(joint_trajectory_msg(names, times, waypoints))
    final = q0.copy()
    final[[0, 2]] = waypoints[-1]
    assert sim.settle(final, tol=0.02), f"arm at {sim.q()}, trajectory ends at {final}"
    # The pan joint went out to the first waypoint before coming back: the path was followed,
    # not just the end point.
    pan = [joint_positions_by_name(m, ["shoulder_pan"])[0] for m in sim.client.states[start:]]
    assert max(pan) > 0.4
    # Joints not named in the trajectory held still.
    others = np.array(
        [joint_positions_by_name(m, JOINTS)[[1, 3, 4]] for m in sim.client.states[start:]]
    )
    assert np.max(np.abs(others - q0[[1, 3, 4]])) < 0.02


@pytest.mark.parametrize(
    "bad, reason",
    [
        ([0.1, 0.2, 0.3], "has 3 values; expected 5 joints"),
        ([0.1, float("nan"), 0.3, 0.0, 0.0], "NaN/Inf"),
        ("unknown_joint", "unknown joint(s) ['tool_spin']"),
        ("unordered", "time_from_start must be >= 0 and increasing"),
    ],
)
def test_bad_command_is_rejected_and_arm_holds(sim, bad, reason):
    sim.reset()
    far = np.array([1.5, 0.0, 0.0, 0.0, 2.5])  # a long move, so it is still going when ...
    sim.commands.publish(float64_multiarray(far))
    assert sim.client.spin_until(lambda: abs(sim.q()[0]) > 0.3)
    if isinstance(bad, list):  # ... the bad command arrives
        sim.commands.publish(float64_multiarray(bad))
    elif bad == "unknown_joint":
        sim.trajectory.publish(joint_trajectory_msg(["tool_spin"], [1.0], np.array([[0.1]])))
    else:
        msg = joint_trajectory_msg(["shoulder_pan"], [1.0, 0.5], np.array([[0.1], [0.2]]))
        sim.trajectory.publish(msg)
    assert sim.client.spin_until(lambda: reason in sim.output.text()), sim.output.text()[-2000:]
    assert "holding the arm still" in sim.output.text()
    # Held: it stops short of the far target and stays where it stopped.
    sim.client.spin_for(0.5)
    held = sim.q()
    sim.client.spin_for(1.0)
    assert np.max(np.abs(sim.q() - held)) < 0.01
    assert abs(sim.q()[0] - far[0]) > 0.3
    sim.output._parts.clear()


def test_reset_returns_home(sim):
    away = np.array([0.5, -0.3, 0.4, 0.2, 0.5])
    sim.commands.publish(float64_multiarray(away))
    assert sim.settle(away), f"arm at {sim.q()}, commanded {away}"
    sim.reset()
    home = (LOWER + UPPER) / 2
    assert np.max(np.abs(sim.q() - home)) < 0.02
