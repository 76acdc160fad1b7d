"""The collector as a separate process over real DDS: episodes readable without ROS, and a
`kill -9` loses at most the unflushed tail, recovered and re-published on restart."""

from __future__ import annotations

import json
import os
import signal
import time

import numpy as np
import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import Point, PointStamped
from ros_helpers import Output
from sensor_msgs.msg import JointState
from std_msgs.msg import String, UInt8MultiArray
from trajectory_msgs.msg import JointTrajectory

from mbrl.data.episodes import read_episode
from mbrl.ros.graph import get_nodes
from mbrl.ros.msgs import float64_multiarray, joint_state_msg, joint_trajectory_msg
from mbrl.ros.recording import EpisodeRouter
from mbrl.ros.runner import GraphRunner
from mbrl.ros.sim_node import COMMAND_QOS
from mbrl.ros.topics import GOAL_QOS
from mbrl.ros.transport import (
    EPISODE_CONTROL_QOS,
    EPISODES_QOS,
    decode_episode_msg,
)

pytestmark = pytest.mark.ros

JOINTS = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll")


class Driver:
    """The test's side: plays arm and controller, and listens to episodes and diagnostics."""

    def __init__(self, name: str) -> None:
        self.node = rclpy.create_node(name)
        n = self.node
        self.states = n.create_publisher(JointState, "/joint_states", 200)
        self.commands = n.create_publisher(
            type(float64_multiarray([])), "/forward_position_controller/commands", COMMAND_QOS
        )
        self.goal = n.create_publisher(PointStamped, "/mbrl/goal", GOAL_QOS)
        self.control = n.create_publisher(String, "/mbrl/episode_control", EPISODE_CONTROL_QOS)
        self.trajectory = n.create_publisher(
            JointTrajectory, "/joint_trajectory_controller/joint_trajectory", COMMAND_QOS
        )
        self.episodes: list[UInt8MultiArray] = []
        self.diagnostics: list[dict] = []
        n.create_subscription(UInt8MultiArray, "/mbrl/episodes", self.episodes.append, EPISODES_QOS)
        n.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 50)

    def _on_diag(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name == "mbrl/collector":
                self.diagnostics.append({kv.key: kv.value for kv in status.values})

    def spin_until(self, predicate, timeout: float = 20.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            rclpy.spin_once(self.node, timeout_sec=0.02)
        return predicate()

    def wait_for_collector(self) -> None:
        assert self.spin_until(
            lambda: (
                self.control.get_subscription_count() > 0
                and self.commands.get_subscription_count() > 0
                and self.states.get_subscription_count() > 0
                and self.trajectory.get_subscription_count() > 0
                and bool(self.diagnostics)
            ),
            timeout=30.0,
        ), "collector not discovered"

    def event(self, event: str, episode_id: int, **extra) -> None:
        data = {"event": event, "episode_id": episode_id, "task": "reach", "mode": "explore"}
        self.control.publish(String(data=json.dumps({**data, **extra})))

    def ticks(self, q: np.ndarray, c: np.ndarray) -> None:
        """One joint state then one command per row; q, c (T, 5)."""
        for qk, ck in zip(q, c, strict=True):
            # the sim's order (and a gripper) on purpose: the collector reads by name
            names = [*JOINTS[::-1], "gripper"]
            self.states.publish(joint_state_msg(names, [*qk[::-1], 0.0], [*(2 * qk[::-1]), 0.0]))
            rclpy.spin_once(self.node, timeout_sec=0.005)
            self.commands.publish(float64_multiarray(ck))
            rclpy.spin_once(self.node, timeout_sec=0.005)


def _start(tmp_path, name="c", **overrides):
    output = Output()
    params = {"data_dir": str(tmp_path / name), "flush_period": 0.2, **overrides}
    runner = GraphRunner(get_nodes(["collector"]), overrides={"collector": params}, output=output)
    return runner.start(), output


def test_episode_is_published_and_readable_without_ros(ros_context, tmp_path) -> None:
    runner, output = _start(tmp_path)
    driver = Driver("test_collector_driver")
    try:
        driver.wait_for_collector()
        rng = np.random.default_rng(0)
        q, c = rng.uniform(-1, 1, (30, 5)), rng.uniform(-1, 1, (30, 5))
        driver.goal.publish(PointStamped(point=Point(x=0.1, y=0.2, z=0.3)))
        driver.event("start", 4)
        assert driver.spin_until(lambda: "episode 4 started" in output.text()), output.text()
        driver.ticks(q[:-1], c[:-1])
        # the last command as a JointTrajectory in another joint order: its first point counts
        names = list(JOINTS[::-1])
        driver.states.publish(joint_state_msg(JOINTS, q[-1], 2 * q[-1]))
        driver.trajectory.publish(
            joint_trajectory_msg(names, [0.05, 0.1], np.stack([c[-1][::-1], np.zeros(5)]))
        )
        rclpy.spin_once(driver.node, timeout_sec=0.005)
        driver.event("end", 4)
        assert driver.spin_until(lambda: bool(driver.episodes)), output.text()
        payload = decode_episode_msg(driver.episodes[0])
        assert (payload.episode_id, payload.complete, payload.num_messages) == (4, True, 61)
        received = tmp_path / "received.mcap"
        received.write_bytes(payload.data)
        for path in (received, tmp_path / "c" / "episodes" / "episode_000004.mcap"):
            ep = read_episode(path)  # plain mcap, no ROS
            assert ep.complete and ep.joint_names == JOINTS
            np.testing.assert_array_equal(ep.positions, q)
            np.testing.assert_array_equal(ep.velocities, 2 * q)
            np.testing.assert_array_equal(ep.commands, c)
            np.testing.assert_array_equal(ep.goals, [[0.1, 0.2, 0.3]])
            assert ep.metadata["task"] == "reach" and ep.metadata["episode_id"] == "4"
            # stamps are publication times: each state precedes its command
            assert np.all(ep.state_stamps < ep.command_stamps)
        runner.check()
    finally:
        driver.node.destroy_node()
        runner.shutdown()


def test_kill_9_loses_at_most_the_unflushed_tail(ros_context, tmp_path) -> None:
    runner, output = _start(tmp_path)
    driver = Driver("test_collector_killer")
    try:
        driver.wait_for_collector()
        rng = np.random.default_rng(1)
        q, c = rng.uniform(-1, 1, (50, 5)), rng.uniform(-1, 1, (50, 5))
        driver.event("start", 1)
        assert driver.spin_until(lambda: "episode 1 started" in output.text()), output.text()
        driver.ticks(q[:40], c[:40])
        # a state without wrist_roll is rejected by name, counted, and not recorded
        driver.states.publish(joint_state_msg(JOINTS[:4], q[0, :4]))

        def flushed(n: int) -> bool:
            d = driver.diagnostics[-1] if driver.diagnostics else {}
            return d.get("messages") == str(n) and d.get("flushed_messages") == str(n)

        # the flush timer writes the chunk although no further message arrives
        assert driver.spin_until(lambda: flushed(80)), driver.diagnostics[-1:]
        assert driver.diagnostics[-1]["rejected_messages"] == "1"
        assert "joint(s) ['wrist_roll'] missing" in output.text()
        driver.ticks(q[40:], c[40:])  # the unflushed tail
        os.kill(runner._procs[0].popen.pid, signal.SIGKILL)
        runner._procs[0].popen.wait()
    finally:
        runner.shutdown()

    path = tmp_path / "c" / "episodes" / "episode_000001.mcap"
    ep = read_episode(path)
    assert not ep.complete
    assert 40 <= len(ep.positions) <= 50 and 40 <= len(ep.commands) <= 50
    np.testing.assert_array_equal(ep.positions, q[: len(ep.positions)])
    np.testing.assert_array_equal(ep.commands, c[: len(ep.commands)])

    # a restarted collector re-publishes what it has, the cut episode marked incomplete
    runner, output = _start(tmp_path)
    try:
        assert driver.spin_until(lambda: bool(driver.episodes), timeout=30.0), output.text()
        payload = decode_episode_msg(driver.episodes[0])
        assert (payload.episode_id, payload.complete) == (1, False)
        assert payload.data == path.read_bytes()
        runner.check()
    finally:
        driver.node.destroy_node()
        runner.shutdown()


def test_router_assigns_by_message_time_not_processing_order(tmp_path) -> None:
    """Events processed ahead of a data backlog still delimit the right messages."""
    now = [0.0]
    router = EpisodeRouter(tmp_path, JOINTS, end_grace=0.3, clock=lambda: now[0])
    q = np.arange(5.0)
    router.goal(0.0, [0.1, 0.2, 0.3], "world")
    # episode 1 spans stamps [1, 2], episode 2 starts at 3; all events come first
    router.start(1, 1.0, {"episode_id": "1"})
    router.end(1, 2.0)
    router.start(2, 3.0, {"episode_id": "2"})
    for t in (0.5, 1.1, 1.5, 2.5, 3.1):  # the backlog of states, oldest first
        router.state(t, q + t, None)
    assert router.finished() == []  # no command after episode 1's end seen yet
    for t in (1.2, 1.6, 3.2):
        router.command(t, q)
    [done] = router.finished()  # a state and a command after its end: nothing more can come
    assert done.episode_id == 1 and done.complete
    ep = read_episode(done.writer.path)
    np.testing.assert_allclose(ep.state_stamps, [1.1, 1.5])
    np.testing.assert_allclose(ep.command_stamps, [1.2, 1.6])
    np.testing.assert_allclose(ep.goals, [[0.1, 0.2, 0.3]])  # the latched goal, at the start
    # a start without an end closes the open episode as incomplete; grace finishes it
    router.start(3, 4.0, {"episode_id": "3"})
    assert router.finished() == []
    now[0] = 0.31
    [two] = router.finished()
    assert (two.episode_id, two.complete, two.writer.num_messages) == (2, False, 3)
    assert not router.end(2, 5.0)  # no longer open
    assert [p.name for p in router.close_all()] == ["episode_000003.mcap"]


def test_an_end_that_counts_its_commands_waits_for_them_then_calls_a_gap_short(tmp_path) -> None:
    """The experiment's end event says how many commands it saw go out: the episode waits
    past end_grace for those still in flight, finishes as soon as they are in, and after
    end_timeout finishes `short` (the collector then rejects it: a stream with a gap)."""
    now = [0.0]
    router = EpisodeRouter(tmp_path, JOINTS, end_grace=0.3, end_timeout=5.0,
                           clock=lambda: now[0])  # fmt: skip
    q = np.zeros(5)
    router.start(1, 1.0, {"episode_id": "1"})
    router.state(1.1, q, None)
    router.command(1.2, q)
    assert router.end(1, 2.0, expected_commands=3)
    assert router.ended(1) and not router.end(1, 2.1, expected_commands=3)  # a resent end
    now[0] = 1.0  # past end_grace, two commands still to come: not finished
    assert router.finished() == []
    router.command(1.3, q)
    router.command(1.4, q)
    [done] = router.finished()  # all three recorded: finished at once
    assert (done.commands, done.short) == (3, False)
    router.start(2, 3.0, {"episode_id": "2"})
    router.command(3.1, q)
    router.end(2, 4.0, expected_commands=50)
    now[0] = 5.9
    assert router.finished() == []
    now[0] = 6.0  # end_timeout after the end: finished with the gap
    [gap] = router.finished()
    assert (gap.episode_id, gap.commands, gap.expected_commands, gap.short) == (2, 1, 50, True)


def test_the_start_event_goal_wins_over_the_previous_latched_goal(tmp_path) -> None:
    """The experiment publishes episode 2's goal on /goal, then its start event (with the
    goal); /goal is another topic, so the collector may process the start first, holding
    episode 1's goal. The episode must record its own goal (before: the previous one), and
    the late /goal message must not add a second one."""
    router = EpisodeRouter(tmp_path, JOINTS, end_grace=0.0)
    q = np.zeros(5)
    router.goal(0.5, [0.1, 0.1, 0.1], "base_link")  # episode 1's goal, latched
    router.start(1, 1.0, {"episode_id": "1"})
    router.end(1, 2.0)
    router.start(2, 3.0, {"episode_id": "2"}, goal=([0.2, 0.2, 0.2], "base_link"))
    router.goal(2.9, [0.2, 0.2, 0.2], "base_link")  # sent before the start, processed after
    router.state(3.1, q, None)
    router.command(3.2, q)
    router.end(2, 4.0)
    router.state(4.1, q, None)
    router.command(4.2, q)
    done = {r.episode_id: read_episode(r.writer.path) for r in router.finished()}
    np.testing.assert_allclose(done[1].goals, [[0.1, 0.1, 0.1]])
    np.testing.assert_allclose(done[2].goals, [[0.2, 0.2, 0.2]])
