"""The sim node in lockstep mode on sim time: one control period per command."""

from __future__ import annotations

import numpy as np
import pytest
import rclpy
from geometry_msgs.msg import PoseStamped
from ros_helpers import Client, Sim, start_sim
from rosgraph_msgs.msg import Clock

from mbrl.ros.msgs import float64_multiarray, joint_trajectory_msg, to_seconds

pytestmark = pytest.mark.ros


def test_lockstep_advances_one_period_per_command_on_sim_time(ros_context):
    runner, output = start_sim(
        {"timing": "lockstep", "use_sim_time": True, "idle_publish_rate_hz": 2.0, "with_cube": True}
    )
    client = Client(rclpy.create_node("test_lockstep_client"))
    try:
        clocks: list[Clock] = []
        client.node.create_subscription(Clock, "/clock", clocks.append, 10)
        cubes: list[PoseStamped] = []
        client.node.create_subscription(PoseStamped, "/cube_pose", cubes.append, 10)
        sim = Sim(runner, output, client)
        sim.wait_ready()
        t0 = to_seconds(client.states[-1].header.stamp)
        target = np.array([0.3, 0.0, 0.0, 0.0, 0.0])
        stamps = []
        for _ in range(40):  # 40 periods of 50 ms = 2 s of sim time, however long it takes
            n = len(client.states)
            sim.commands.publish(float64_multiarray(target))
            assert client.spin_until(
                lambda n=n: (
                    len(client.states) > n and to_seconds(client.states[-1].header.stamp) > t0
                )
            ), output.text()[-2000:]
            t0 = to_seconds(client.states[-1].header.stamp)
            stamps.append(t0)
        np.testing.assert_allclose(np.diff(stamps), 0.05, atol=1e-6)
        assert abs(sim.q()[0] - 0.3) < 0.02
        # The push task's cube: published with the joint states, same sim-time stamp, resting
        # on the table where the sim put it (0.2, 0, half its 4 cm size).
        assert client.spin_until(lambda: bool(cubes) and to_seconds(cubes[-1].header.stamp) >= t0)
        cube = cubes[-1]
        assert cube.header.frame_id == "world"
        p = cube.pose.position
        np.testing.assert_allclose([p.x, p.y, p.z], [0.2, 0.0, 0.02], atol=0.005)
        assert client.spin_until(
            lambda: bool(clocks) and to_seconds(clocks[-1].clock) >= stamps[-1]
        )
        # No commands, no motion: sim time stands still while idle.
        client.spin_for(1.0)
        assert to_seconds(client.states[-1].header.stamp) == pytest.approx(stamps[-1])
        # A trajectory is many periods of commands: it runs to its end at once, one state per
        # period, and ends on its last point.
        n = len(client.states)
        sim.trajectory.publish(
            joint_trajectory_msg(["shoulder_pan"], [0.5, 1.0], np.array([[0.0], [-0.2]]))
        )
        assert client.spin_until(lambda: len(client.states) >= n + 20)
        run = [m for m in client.states[n:] if to_seconds(m.header.stamp) > stamps[-1]]
        np.testing.assert_allclose(
            [to_seconds(m.header.stamp) for m in run[:20]],
            stamps[-1] + 0.05 * np.arange(1, 21),
            atol=1e-6,
        )
        runner.check()
    finally:
        client.node.destroy_node()
        runner.shutdown()
