"""The PyBullet arm as a ROS 2 node that looks like a ros2_control arm to everything else.

Publishes /joint_states, /clock (when use_sim_time), /cube_pose (push task) and
/robot_description; takes /<controller>/commands and /<trajectory controller>/joint_trajectory;
serves ~/reset. Interface reference: docs/ros_interface.md.
"""

from __future__ import annotations

import math
import sys

import numpy as np
from geometry_msgs.msg import PoseStamped
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rosgraph_msgs.msg import Clock as ClockMsg
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray, String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from mbrl.ros import topics
from mbrl.ros.msgs import (
    command_to_array,
    joint_state_msg,
    pose_stamped_msg,
    time_msg,
    trajectory_to_arrays,
)
from mbrl.ros.node_main import run_node
from mbrl.ros.params import SimNodeConfig, declare_config_parameters, read_config_parameters
from mbrl.ros.trajectory import TrajectorySampler
from mbrl.sim.arm import SimArm

# Commands must not be lost (a dropped lockstep command stalls the loop): reliable, depth 10,
# as ros2_control's command subscribers. Late joiners (rviz) get the URDF, as from
# robot_state_publisher.
COMMAND_QOS, LATCHED_QOS = topics.COMMAND_QOS, topics.LATCHED_QOS
RESET_PARAMETERS = {
    "reset_q": "joint positions (rad, arm order) the next ~/reset puts the arm at; [] = home",
    "reset_cube": "cube [x, y, z (m), yaw (rad)] after the next ~/reset; [] = its start",
}


class SimNode(Node):
    """Node `sim`: owns one SimArm and steps it in real time or in lockstep with commands."""

    def __init__(self, **node_kwargs) -> None:
        super().__init__("sim", **node_kwargs)
        declare_config_parameters(self)
        self.config: SimNodeConfig = read_config_parameters(self)
        cfg = self.config
        self.arm = SimArm(cfg.arm, with_cube=cfg.with_cube, seed=None if cfg.seed < 0 else cfg.seed)
        self.joints = cfg.controller_joints
        # controller order -> index into the arm's joint order
        self._index = np.array([self.arm.joint_names.index(j) for j in self.joints])
        self._target = self.arm.set_position_targets(self.arm.joint_positions())
        self._trajectory: tuple[TrajectorySampler, np.ndarray, float] | None = None
        self._cube_home = self.arm.cube_pose()
        self._sim_time_stamps = cfg.timing == "lockstep" or self.get_parameter("use_sim_time").value
        self._command_topic = topics.command_topic(cfg.controller_name)
        self._trajectory_topic = topics.trajectory_topic(cfg.trajectory_controller_name)

        # Every callback that touches the sim shares ONE mutually exclusive group: a PyBullet
        # client is not thread-safe, so commands, ticks and resets must never overlap, even if
        # this node is spun by a MultiThreadedExecutor next to other nodes.
        group = MutuallyExclusiveCallbackGroup()
        # /joint_states reliable, volatile, as joint_state_broadcaster. Depth 10 as there, but
        # in lockstep a trajectory publishes one state per period in a burst, and reliable
        # delivery only covers what is still in the writer's history: keep the burst.
        depth = topics.stream_depth(cfg.timing)
        self._joint_pub = self.create_publisher(JointState, topics.JOINT_STATES, depth)
        self._clock_pub = (
            self.create_publisher(ClockMsg, topics.CLOCK, 10)
            if self.get_parameter("use_sim_time").value
            else None
        )
        self._cube_pub = (
            self.create_publisher(PoseStamped, topics.OBJECT_POSE, depth) if cfg.with_cube else None
        )
        self.create_subscription(
            Float64MultiArray, self._command_topic, self._on_command, COMMAND_QOS,
            callback_group=group,
        )  # fmt: skip
        self.create_subscription(
            JointTrajectory, self._trajectory_topic, self._on_trajectory, COMMAND_QOS,
            callback_group=group,
        )  # fmt: skip
        self.create_service(Trigger, "~/reset", self._on_reset, callback_group=group)
        # Where the next ~/reset puts the arm and the cube (an episode start of
        # mbrl.costs.tasks, set by the experiment node); empty = home and the cube's start.
        for name, text in RESET_PARAMETERS.items():
            self.declare_parameter(
                name, None, ParameterDescriptor(description=text, dynamic_typing=True)
            )
        if cfg.publish_robot_description:
            self._description_pub = self.create_publisher(
                String, topics.ROBOT_DESCRIPTION, LATCHED_QOS
            )
            self._description_pub.publish(String(data=self.arm.urdf_text))
        # Timers run on the steady clock: with use_sim_time the node clock only moves when we
        # publish /clock, so a ROS-time timer would never fire.
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        period = cfg.state_substeps / cfg.arm.physics_rate_hz  # between published states
        if cfg.timing == "realtime":
            self.create_timer(period, self._tick, callback_group=group, clock=steady)
        elif cfg.idle_publish_rate_hz > 0:
            self.create_timer(
                1.0 / cfg.idle_publish_rate_hz, self._publish_state, callback_group=group,
                clock=steady,
            )  # fmt: skip
        self._publish_state()
        self.get_logger().info(
            f"{cfg.timing} sim of {cfg.arm.urdf} at {cfg.arm.control_rate_hz:g} Hz"
            + (f" (joint states at {cfg.state_rate_hz:g} Hz)" if cfg.state_rate_hz else "")
            + "; joints "
            f"{list(self.joints)}; commands on {self._command_topic}, trajectories on "
            f"{self._trajectory_topic}"
        )

    # -- commands -------------------------------------------------------------------------
    def _on_command(self, msg: Float64MultiArray) -> None:
        try:
            q = command_to_array(msg, self.joints)
        except ValueError as exc:
            self._reject(self._command_topic, exc)
        else:
            self._trajectory = None  # a direct command pre-empts a running trajectory
            target = self._target.copy()
            target[self._index] = q
            self._apply(target)
        if self.config.timing == "lockstep":
            self._tick()

    def _on_trajectory(self, msg: JointTrajectory) -> None:
        try:
            traj = trajectory_to_arrays(msg, self.joints)
        except ValueError as exc:
            self._reject(self._trajectory_topic, exc)
            if self.config.timing == "lockstep":
                self._tick()
            return
        index = np.array([self.arm.joint_names.index(n) for n in traj.joint_names])
        sampler = TrajectorySampler(
            self._target[index], traj.times, traj.positions, traj.velocities
        )
        self._trajectory = (sampler, index, self.arm.time)
        self.get_logger().info(
            f"following a {len(traj.times)}-point trajectory of {sampler.duration:.2f} s "
            f"for {list(traj.joint_names)}"
        )
        if self.config.timing == "lockstep":
            # A trajectory is a command for many periods: run it to the end at once.
            for _ in range(max(1, math.ceil(sampler.duration / self.config.arm.control_period))):
                self._tick()

    def _reject(self, topic: str, exc: Exception) -> None:
        self.get_logger().error(f"rejected command on {topic}: {exc}; holding the arm still")
        self._trajectory = None
        self._apply(self.arm.joint_positions())

    def _apply(self, target: np.ndarray) -> None:
        """Send (nj,) rad in arm order to the servos, clamped to the joint limits."""
        clamped = self.arm.set_position_targets(target)
        if not np.allclose(clamped, target):
            outside = [
                self.arm.joint_names[i] for i in np.flatnonzero(~np.isclose(clamped, target))
            ]
            self.get_logger().warning(
                f"command for {outside} outside the joint limits; clamped to "
                f"{np.round(clamped, 4).tolist()}",
                throttle_duration_sec=2.0,
            )
        self._target = clamped

    # -- time -----------------------------------------------------------------------------
    def _tick(self) -> None:
        """Advance to the next state (one control period, or 1 / state_rate_hz; following
        any trajectory) and publish it."""
        substeps = self.config.state_substeps
        if self._trajectory is not None:
            sampler, index, start = self._trajectory
            t = self.arm.time + substeps / self.config.arm.physics_rate_hz - start
            target = self._target.copy()
            target[index] = sampler.sample(t)
            self._apply(target)
            if t >= sampler.duration - 1e-9:
                self._trajectory = None
        self.arm.advance(substeps)
        self._publish_state()

    def _publish_state(self) -> None:
        if self._sim_time_stamps:
            stamp = time_msg(self.arm.time)
        else:
            stamp = self.get_clock().now().to_msg()
        if self._clock_pub is not None:
            # /clock first, so a subscriber on sim time never sees a state from its future.
            self._clock_pub.publish(ClockMsg(clock=time_msg(self.arm.time)))
        names = self.arm.joint_names + self.config.arm.gripper_joints
        position = np.concatenate([self.arm.joint_positions(), self._gripper_positions()])
        velocity = np.concatenate(
            [self.arm.joint_velocities(), np.zeros(len(self.config.arm.gripper_joints))]
        )
        self._joint_pub.publish(joint_state_msg(names, position, velocity, stamp))
        if self._cube_pub is not None:
            pose = self.arm.cube_pose()
            if pose is not None:
                self._cube_pub.publish(pose_stamped_msg(*pose, self.config.frame_id, stamp))

    def _gripper_positions(self) -> np.ndarray:
        """Positions of the gripper joints, rad: SimArm holds them closed at 0 (the tasks push)."""
        return np.zeros(len(self.config.arm.gripper_joints))

    # -- services -------------------------------------------------------------------------
    def _reset_values(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(q (nj,) or None, cube [x, y, z, yaw] or None) from the reset parameters."""
        out = []
        for name, size in (("reset_q", len(self.arm.joint_names)), ("reset_cube", 4)):
            value = np.asarray(list(self.get_parameter(name).value or []), dtype=float)
            if value.size == 0:
                out.append(None)
            elif value.shape != (size,) or not np.all(np.isfinite(value)):
                raise ValueError(f"parameter {name} = {value.tolist()}; expected {size} finite")
            else:
                out.append(value)
        return out[0], out[1]

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        self._trajectory = None
        try:
            q0, cube = self._reset_values()
        except ValueError as exc:
            response.success, response.message = False, str(exc)
            return response
        self.arm.reset(q0)
        if cube is not None and self._cube_home is not None:
            quat = self.arm.client.getQuaternionFromEuler((0.0, 0.0, float(cube[3])))
            self.arm.set_cube_pose(cube[:3], quat)
        elif self._cube_home is not None:
            self.arm.set_cube_pose(*self._cube_home)
        self._target = self.arm.set_position_targets(self.arm.joint_positions())
        self._publish_state()
        response.success = True
        response.message = f"arm at home {np.round(self._target, 4).tolist()}"
        self.get_logger().info(f"reset: {response.message}")
        return response

    def close(self) -> None:
        """Release the physics client and the node."""
        self.arm.close()
        self.destroy_node()


def main(args: list[str] | None = None) -> int:
    """Entry point (`sim_node` / `python -m mbrl.ros.sim_node --ros-args ...`)."""
    return run_node("sim", SimNode, args)


if __name__ == "__main__":
    sys.exit(main())
