"""Node `feetech_bridge`: an SO-101 (Feetech STS3215 servos) on ROS 2 without ros2_control.

Speaks the ros2_control topics the rest of the graph uses: publishes /joint_states (by
name, rad, from one sync read per cycle at state_rate_hz) and takes position commands on
/<controller_name>/commands (Float64MultiArray), clamped to the calibrated limits and sync-
written as Goal_Position. On a dead bus it holds (writes nothing) and says so on /diagnostics
and in the log. The bus and the hold logic live in mbrl.real (ROS-free).
Tested only against a byte-level servo emulator on a pseudo-terminal, never on hardware.
"""

from __future__ import annotations

import sys
import time

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray

from mbrl.real.bridge import HELD, Bridge, FeetechBridgeConfig
from mbrl.real.feetech_bus import BusError
from mbrl.ros import topics
from mbrl.ros.msgs import joint_state_msg
from mbrl.ros.node_main import run_node
from mbrl.ros.params import declare_config_parameters, read_config_parameters
from mbrl.ros.transport import diagnostics_msg

COMMAND_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
STATE_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


class FeetechBridge(Node):
    """Node `feetech_bridge`; see the module docstring and FeetechBridgeConfig.

    One single-threaded executor runs every callback, so serial I/O never overlaps.
    """

    def __init__(self, **node_kwargs) -> None:
        super().__init__("feetech_bridge", **node_kwargs)
        declare_config_parameters(self, FeetechBridgeConfig)
        self.cfg: FeetechBridgeConfig = read_config_parameters(self, FeetechBridgeConfig)
        self.bridge = Bridge(self.cfg)
        self.bridge.connect()  # a BusError here ends the node with the motor named
        self._state = self.bridge.state
        self._previous: tuple[float, np.ndarray] | None = None
        self._rejected = 0
        self._last_error = ""
        self._joint_pub = self.create_publisher(JointState, topics.JOINT_STATES, STATE_QOS)
        self._diag_pub = self.create_publisher(DiagnosticArray, topics.DIAGNOSTICS, 10)
        topic = topics.command_topic(self.cfg.controller_name)
        self.create_subscription(Float64MultiArray, topic, self._on_command, COMMAND_QOS)
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self.create_timer(1.0 / self.cfg.state_rate_hz, self._on_timer, clock=steady)
        self.create_timer(self.cfg.diagnostics_period, self._publish_diagnostics, clock=steady)
        self.get_logger().info(
            f"{len(self.bridge.names)} servos on {self.bridge.port}: {list(self.bridge.names)}; "
            f"/joint_states at {self.cfg.state_rate_hz:g} Hz, commands on {topic}"
        )

    def _on_timer(self) -> None:
        now = time.monotonic()
        q = self.bridge.read(now)
        self._report_state()
        if q is None:
            return
        qdot = np.zeros_like(q)  # the servos report positions; velocity by differencing
        if self._previous is not None and now > self._previous[0]:
            qdot = (q - self._previous[1]) / (now - self._previous[0])
        self._previous = (now, q)
        stamp = self.get_clock().now().to_msg()
        self._joint_pub.publish(joint_state_msg(self.bridge.names, q, qdot, stamp))

    def _on_command(self, msg: Float64MultiArray) -> None:
        try:
            written = self.bridge.command(np.asarray(msg.data, dtype=float))
        except (ValueError, BusError) as exc:
            self._rejected += 1
            self._last_error = str(exc)
            self.get_logger().error(f"command not written: {exc}", throttle_duration_sec=1.0)
            return
        if written is None:
            self._rejected += 1
            self.get_logger().warning(
                f"command dropped: holding ({self.bridge.detail})", throttle_duration_sec=1.0
            )

    def _report_state(self) -> None:
        state = self.bridge.state
        if state == self._state:
            return
        self._state = state
        self._previous = None  # no velocity across a gap
        if state == HELD:
            self.get_logger().error(self.bridge.detail)
        else:
            self.get_logger().info(f"bus {self.bridge.port} answers again: publishing states")
        self._publish_diagnostics()

    def _publish_diagnostics(self) -> None:
        stats = self.bridge.bus.stats
        values = {
            "state": self.bridge.state,
            "port": self.bridge.port,
            "reads": stats.reads,
            "read_retries": stats.retries,
            "failed_reads": stats.failed_reads,
            "writes": stats.writes,
            "clamped_commands": self.bridge.clamped,
            "rejected_commands": self._rejected,
            "last_bus_error": stats.last_error,
            "last_error": self._last_error,
        }
        if self.bridge.state == HELD:
            level, message = DiagnosticStatus.ERROR, self.bridge.detail
        elif stats.retries or self._rejected:
            level, message = DiagnosticStatus.WARN, "ok (with read retries or rejected commands)"
        else:
            level, message = DiagnosticStatus.OK, "ok"
        stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(
            diagnostics_msg(stamp, "mbrl/feetech_bridge", level, message, values)
        )

    def close(self) -> None:
        """Close the port; the servos keep holding their last goal (torque stays on, so the
        arm does not drop)."""
        self.bridge.close()
        self.destroy_node()


def main(args: list[str] | None = None) -> int:
    """Entry point (`feetech_bridge` / `python -m mbrl.ros.feetech_bridge --ros-args ...`)."""
    try:
        return run_node("feetech_bridge", FeetechBridge, args)
    except BusError as exc:
        print(f"feetech_bridge: {exc}", file=sys.stderr)
        return 1


__all__ = ["FeetechBridge", "main"]

if __name__ == "__main__":
    sys.exit(main())
