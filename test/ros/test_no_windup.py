"""No wind-up against a blocked arm: the mpc_controller node drives the PyBullet sim (real
processes over DDS) towards a goal under the table, so the table blocks the arm; for the 2 s
(40 ticks) the arm stays blocked, no command leads the measured position by more than one
tick's increment (arm.max_increment), so nothing is stored up that would jump free.

Lockstep (the sim advances one period per command and the controller ticks on each new joint
state) pairs command k exactly with the joint state k it was computed from. The test sends
command 0 itself (hold the start pose: the sim stands still until a command arrives, and the
controller has already seen the start state); every later command is the controller's."""

from __future__ import annotations

import numpy as np
import pytest
import rclpy
import torch
from diagnostic_msgs.msg import DiagnosticArray
from ros_helpers import COMMANDS, JOINTS, Client, Output
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import SetBool

from mbrl.config import ArmConfig
from mbrl.costs.kinematics import ForwardKinematics
from mbrl.ros.graph import get_nodes
from mbrl.ros.msgs import float64_multiarray, joint_positions_by_name, to_seconds
from mbrl.ros.runner import GraphRunner

pytestmark = pytest.mark.ros
GOAL_UNDER_TABLE = [0.22, 0.05, -0.10]  # m; the table top is z = 0
TICKS = 60  # 3 s of sim time: the arm reaches the table, then stays pressed on it
BLOCKED_TICKS = 40  # the 2 s of the issue


def test_command_never_leads_a_blocked_arm_by_more_than_one_increment(ros_context):
    arm = ArmConfig()
    output = Output()
    runner = GraphRunner(
        get_nodes(["sim", "mpc_controller"]),
        overrides={
            "sim": {"timing": "lockstep", "seed": 0},
            "mpc_controller": {
                "timing": "lockstep",
                "trigger": "joint_states",
                "start_enabled": False,  # lockstep runs at ~1 kHz: enable once all is seen
                # no heartbeat hold under a loaded machine: one command per new state only
                "stale_periods": 100,
                "goal": GOAL_UNDER_TABLE,
                "viz_every": 0,
                # a small iCEM budget: the test is about the command
                "agent.params": "{planner_config: {num_samples: 20, iterations: 2}}",
            },
        },
        output=output,
    )
    runner.start()
    client = Client(rclpy.create_node("test_no_windup_client"))
    commands: list[np.ndarray] = []
    sub = client.node.create_subscription(
        Float64MultiArray, COMMANDS, lambda m: commands.append(np.array(m.data)), 500
    )
    nudge = client.node.create_publisher(Float64MultiArray, COMMANDS, 10)
    controller_ok: list[bool] = []
    client.node.create_subscription(
        DiagnosticArray,
        "/diagnostics",
        lambda m: controller_ok.extend(
            any(v.key == "safety" and v.value == "ok" for v in s.values)
            for s in m.status
            if s.name == "mbrl/mpc_controller"
        ),
        10,
    )
    enable = client.node.create_client(SetBool, "/mpc_controller/enable")
    try:
        ready = client.spin_until(
            lambda: (
                bool(client.states)
                and any(controller_ok)  # the controller has seen the start state
                and sub.get_publisher_count() > 1  # the controller and this test
                and nudge.get_subscription_count() > 1  # the sim and this test
            ),
            timeout=60.0,
        )
        assert ready and enable.wait_for_service(timeout_sec=30.0), output.text()[-3000:]
        future = enable.call_async(SetBool.Request(data=True))
        assert client.spin_until(future.done) and future.result().success
        nudge.publish(float64_multiarray(joint_positions_by_name(client.states[-1], JOINTS)))
        ok = client.spin_until(lambda: len(commands) >= TICKS, timeout=120.0)
        runner.check()
        assert ok, f"{len(commands)} commands in 120 s\n{output.text()[-3000:]}"
    finally:
        client.node.destroy_node()
        runner.shutdown()

    # One new sim-time stamp per command: state k (by stamp) is what command k was made from.
    by_stamp: dict[float, np.ndarray] = {}
    for msg in client.states:
        by_stamp.setdefault(to_seconds(msg.header.stamp), joint_positions_by_name(msg, JOINTS))
    stamps = sorted(by_stamp)
    np.testing.assert_allclose(np.diff(stamps[: TICKS + 1]), arm.control_period, atol=1e-6)
    q = np.stack([by_stamp[t] for t in stamps[:TICKS]])  # (TICKS, nj) rad
    c = np.stack(commands[:TICKS])  # (TICKS, nj) rad

    # The table blocks the arm: the measured end effector stays on it while, over the last
    # 2 s, the commanded pose would put it into the table (the controller keeps pushing).
    fk = ForwardKinematics(arm.urdf, arm.ee_link, arm.joint_names, dtype=torch.float64)
    ee_z = fk(torch.as_tensor(q)).numpy()[:, 2]
    commanded_z = fk(torch.as_tensor(c)).numpy()[-BLOCKED_TICKS:, 2]
    assert ee_z.min() > -0.01, ee_z
    assert np.mean(commanded_z < ee_z[-BLOCKED_TICKS:] - 0.005) > 0.75, commanded_z

    lead = np.abs(c - q)  # (TICKS, nj)
    worst = np.unravel_index(lead.argmax(), lead.shape)
    assert lead.max() <= arm.max_increment + 1e-9, (
        f"command leads the measured position by {lead.max():.3f} rad on "
        f"{JOINTS[worst[1]]} at tick {worst[0]} (bound {arm.max_increment} rad, one tick's "
        f"increment): the command winds up; q around it {q[worst[0] - 2 : worst[0] + 2, worst[1]]}"
        f", commands {c[worst[0] - 2 : worst[0] + 2, worst[1]]}\n"
        + "\n".join(line for line in output.text().splitlines() if "mpc_controller" in line)[-3000:]
    )
