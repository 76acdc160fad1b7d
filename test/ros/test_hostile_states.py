"""The controller against hostile /joint_states over real DDS (issue 16, part 1): a crafted
pose alternating with NaN, a second partial publisher, a joint-state flood driving the tick.
The test node is the arm; every command the controller sends is checked against the speed
limit of the last command sent."""

from __future__ import annotations

import math
import threading
import time

import numpy as np
import pytest
import rclpy
from ros_helpers import JOINTS
from sensor_msgs.msg import JointState
from test_mpc_controller import Graph

from mbrl.ros.msgs import joint_state_msg

pytestmark = pytest.mark.ros
MAX_VELOCITY = 0.3  # rad/s: the real-arm limit of the issue (0.015 rad per 50 ms tick)
STEP = MAX_VELOCITY * 0.05
GOOD = np.array([0.1, -0.2, 0.3, 0.0, 0.05])


class Publisher:
    """Publishes /joint_states from its own thread (not starved by the test's spin loop):
    `frame(k)` -> (names, positions) or None, at `rate_hz`, until the node is destroyed."""

    def __init__(self, node, rate_hz: float, frame) -> None:
        self.pub = node.create_publisher(JointState, "/joint_states", 10)
        self.frame, self.count, self.period = frame, 0, 1.0 / rate_hz
        self._stop = threading.Event()
        PUBLISHERS.append(self)
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        next_time = time.monotonic()
        while not self._stop.is_set():
            found = self.frame(self.count)
            self.count += 1
            if found is not None:
                names, q = found
                stamp = rclpy.clock.Clock().now().to_msg()  # a new stamp: a new tick (trigger)
                try:
                    self.pub.publish(joint_state_msg(list(names), q, np.zeros(len(q)), stamp))
                except Exception:  # the node is being destroyed at the end of the test
                    return
            next_time += self.period
            self._stop.wait(max(0.0, next_time - time.monotonic()))

    def stop(self) -> None:
        self._stop.set()


PUBLISHERS: list[Publisher] = []


@pytest.fixture(autouse=True)
def _stop_publishers():
    yield
    while PUBLISHERS:
        PUBLISHERS.pop().stop()


def _commands(g: Graph) -> np.ndarray:
    return np.array([c.data for c in g.commands])


def _controller(overrides: dict, name: str) -> Graph:
    ctl = {"mode": "explore", "max_velocity": MAX_VELOCITY, **overrides}
    return Graph(["mpc_controller"], {"mpc_controller": ctl}, name)


def test_crafted_pose_alternating_with_nan_never_moves_the_arm_fast(ros_context):
    """The issue's attack: the true arm at 20 Hz, an attacker at 50 Hz alternating a pose
    2 rad away with NaN. Today a hold commands the crafted pose (a 2 rad jump)."""
    g = _controller({}, "test_hostile_alternating")
    try:
        node = g.client.node
        Publisher(node, 20.0, lambda k: (JOINTS, GOOD))
        g.wait(lambda: len(g.commands) > 10, what="commands from the true arm's states")
        crafted = GOOD + np.array([0.0, 2.0, 0.0, 0.0, 0.0])
        nan = GOOD.copy()
        nan[2] = math.nan
        attacker = Publisher(node, 50.0, lambda k: (JOINTS, crafted if k % 2 else nan))
        n = len(g.commands)
        g.wait(lambda: attacker.count > 100 and len(g.commands) > n + 40, what="the attack")
        cmds = _commands(g)
        steps = np.abs(np.diff(cmds, axis=0)).max(axis=1)
        assert steps.max() <= STEP + 1e-9, f"a command moved {steps.max():.4f} rad in one tick"
        assert np.abs(cmds - GOOD).max() < 0.1 + 1e-9  # never toward the crafted pose
        # (Whether a tick ever sees the attack and holds depends on the phase of the two
        # publishers against the tick's period boundary: the true arm's fresh state, merged
        # by name, can be the newest reading at every tick. A clean-clone run on 2026-12-02
        # saw 0 holds; the limits above hold either way.)
        g.runner.check()
    finally:
        g.close()


def test_partial_second_publisher_is_merged_by_name(ros_context):
    """A gripper driver and a wrist driver beside the arm driver: no holds (today: a hold
    on almost every tick, because each message lacks the other driver's joints)."""
    g = _controller({}, "test_hostile_merge")
    try:
        node = g.client.node
        Publisher(node, 20.0, lambda k: (JOINTS[:4], GOOD[:4]))
        Publisher(node, 20.0, lambda k: (JOINTS[4:], GOOD[4:]))
        Publisher(node, 60.0, lambda k: (["gripper"], np.array([0.2])))
        g.wait(lambda: len(g.commands) > 40, what="commands")
        g.wait(lambda: int(g.diag().get("ticks", 0)) > 40, what="diagnostics after 40 ticks")
        d = g.diag()
        assert d["safety"] == "ok" and int(d["holds"]) <= 2, (
            d["holds"],
            d["ticks"],
            g.output.text()[-1500:],
        )
    finally:
        g.close()


def test_joint_state_flood_does_not_drive_the_command_rate(ros_context):
    """trigger: joint_states with a 200 Hz publisher: at most 2 ticks per period, and the
    commands move no faster than the speed limit over any 0.5 s window."""
    g = _controller({"trigger": "joint_states"}, "test_hostile_flood")
    try:
        Publisher(g.client.node, 200.0, lambda k: (JOINTS, GOOD))
        g.wait(lambda: len(g.commands) > 5, what="first commands")
        t0, n0 = time.monotonic(), len(g.commands)
        g.client.spin_for(2.0)
        rate = (len(g.commands) - n0) / (time.monotonic() - t0)
        assert rate <= 2 * 20.0 * 1.15, f"{rate:.0f} commands/s"
        cmds = _commands(g)
        per_window = int(0.5 * rate) + 1  # commands in 0.5 s at the measured rate
        for i in range(0, len(cmds) - per_window):
            moved = np.abs(cmds[i : i + per_window] - cmds[i]).max()
            assert moved <= MAX_VELOCITY * 0.5 * 1.15 + STEP, f"{moved:.4f} rad in 0.5 s"
    finally:
        g.close()


def test_lockstep_sim_does_not_wedge_on_a_huge_trajectory(ros_context):
    """One trajectory with time_from_start 1e9 s: refused (named), and the next command steps
    the lockstep sim as usual (before: it stepped 2e10 periods, for ever)."""
    from ros_helpers import Client, Sim, start_sim

    from mbrl.ros.msgs import float64_multiarray, joint_trajectory_msg, to_seconds

    runner, output = start_sim({"timing": "lockstep", "idle_publish_rate_hz": 5.0})
    client = Client(rclpy.create_node("test_huge_trajectory_client"))
    try:
        sim = Sim(runner, output, client)
        sim.wait_ready()
        sim.trajectory.publish(joint_trajectory_msg(list(JOINTS), [1e9], GOOD[None]))
        assert client.spin_until(lambda: "trajectory lasts 1e+09 s" in output.text(), 20.0)
        t0 = to_seconds(client.states[-1].header.stamp)
        sim.commands.publish(float64_multiarray(GOOD))
        assert client.spin_until(
            lambda: to_seconds(client.states[-1].header.stamp) > t0, timeout=10.0
        ), output.text()[-2000:]
        runner.check()
    finally:
        client.node.destroy_node()
        runner.shutdown()
