"""Helpers for the ROS tests: a sink for the runner's output, a client node, a sim starter."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable

import numpy as np
import rclpy
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_srvs.srv import Trigger

from mbrl.config import ArmConfig
from mbrl.ros.graph import get_nodes
from mbrl.ros.msgs import float64_multiarray, joint_positions_by_name, joint_trajectory_msg
from mbrl.ros.runner import GraphRunner
from mbrl.ros.sim_node import COMMAND_QOS


class Output(io.TextIOBase):
    """A thread-safe text sink that keeps everything the runner forwards."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._parts: list[str] = []

    def write(self, text: str) -> int:
        with self._lock:
            self._parts.append(text)
        return len(text)

    def text(self) -> str:
        with self._lock:
            return "".join(self._parts)


class Client:
    """The test's side of the graph: a node that records /joint_states."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.states: list[JointState] = []
        node.create_subscription(JointState, "/joint_states", self.states.append, 200)

    def spin_until(self, predicate: Callable[[], bool], timeout: float = 15.0) -> bool:
        """Spin until `predicate()` holds; False on timeout (never a fixed sleep)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            rclpy.spin_once(self.node, timeout_sec=0.05)
        return predicate()

    def spin_for(self, seconds: float) -> None:
        """Spin for `seconds` of wall time (used only to observe that something does NOT move)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            rclpy.spin_once(self.node, timeout_sec=0.05)


def start_sim(overrides: dict | None = None) -> tuple[GraphRunner, Output]:
    """Start the sim node of the graph with parameter overrides; the caller shuts it down."""
    output = Output()
    runner = GraphRunner(get_nodes(["sim"]), overrides={"sim": overrides or {}}, output=output)
    runner.start()
    return runner, output


JOINTS = ArmConfig().joint_names
COMMANDS = "/forward_position_controller/commands"
TRAJECTORY = "/joint_trajectory_controller/joint_trajectory"


class Sim:
    """A running sim process plus the test's client node and its publishers."""

    def __init__(self, runner, output: Output, client: Client) -> None:
        self.runner, self.output, self.client = runner, output, client
        node = client.node
        self.commands = node.create_publisher(type(float64_multiarray([])), COMMANDS, COMMAND_QOS)
        self.trajectory = node.create_publisher(
            type(joint_trajectory_msg([], [], np.zeros((0, 0)))), TRAJECTORY, COMMAND_QOS
        )
        self.reset_client = node.create_client(Trigger, "/sim/reset")

    def q(self) -> np.ndarray:
        return joint_positions_by_name(self.client.states[-1], JOINTS)

    def wait_ready(self) -> None:
        ok = self.client.spin_until(
            lambda: (
                bool(self.client.states)
                and self.commands.get_subscription_count() > 0
                and self.trajectory.get_subscription_count() > 0
                and self.reset_client.service_is_ready()
            ),
            timeout=30.0,
        )
        self.runner.check()
        assert ok, f"sim not discovered in 30 s; its output:\n{self.output.text()}"

    def reset(self) -> None:
        future = self.reset_client.call_async(Trigger.Request())
        assert self.client.spin_until(future.done), "reset service did not answer"
        assert future.result().success
        n = len(self.client.states)
        self.client.spin_until(lambda: len(self.client.states) > n + 2)

    def settle(self, target: np.ndarray, tol: float = 0.02, timeout: float = 10.0) -> bool:
        return self.client.spin_until(
            lambda: np.max(np.abs(self.q() - target)) < tol, timeout=timeout
        )
