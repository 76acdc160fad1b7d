"""The sim publishing joint states faster than the control rate, as a ros2_control
joint_state_broadcaster does (its own module: the sim fixture of test_ros_sim_node would
publish beside it on the same domain)."""

from __future__ import annotations

import numpy as np
import pytest
import rclpy
from ros_helpers import JOINTS, Client, Sim, start_sim

from mbrl.ros.msgs import float64_multiarray, joint_positions_by_name, to_seconds

pytestmark = pytest.mark.ros


def test_states_at_50_hz_between_20_hz_control_ticks(ros_context):
    """state_rate_hz 50 (a ros2_control joint_state_broadcaster's rate) on 300 Hz physics:
    states come 20 ms apart and show the arm moving between two control ticks."""
    runner, output = start_sim({"timing": "realtime", "state_rate_hz": 50.0,
                                "arm.physics_rate_hz": 300.0})  # fmt: skip
    client = Client(rclpy.create_node("test_sim_50hz_client"))
    try:
        sim = Sim(runner, output, client)
        sim.wait_ready()
        home = joint_positions_by_name(client.states[-1], JOINTS)
        first = len(client.states)
        sim.commands.publish(float64_multiarray(home + 0.5))
        client.spin_for(1.0)
        runner.check()
        stamps = np.array([to_seconds(m.header.stamp) for m in client.states[first:]])
        assert abs(np.median(np.diff(stamps)) - 0.02) < 0.004, np.diff(stamps)
        # while the arm moves, every state is a new reading (a 20 Hz state republished at
        # 50 Hz would repeat itself in 3 of 5 pairs)
        q = np.array([joint_positions_by_name(m, JOINTS) for m in client.states[first:]])
        step = np.abs(np.diff(q, axis=0)).max(axis=1)
        start = int(np.argmax(step > 1e-4))  # the first state after the command took effect
        assert (step[start : start + 6] > 1e-4).all(), step[:20]
    finally:
        client.node.destroy_node()
        runner.shutdown()
